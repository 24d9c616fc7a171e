/* .qlm files: round trips, every malformed graph rejected with a useful
 * message, state_dict loading, truncated and corrupted files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test.h"
#include "qlab/alloc.h"
#include "qlab/graph.h"
#include "qlab/model_file.h"
#include "qlab/rng.h"
#include "qlab/safetensors.h"

/* From test_graph.c. */
ql_graph *test_build_resnet(int with_bn);
ql_graph *test_build_lstm(void);
ql_tensor *test_random(int ndim, const int64_t *shape, float scale);

static void tmp_path(char *buf, size_t n, const char *what) {
    snprintf(buf, n, "/tmp/qlab_test_mf_%ld_%s", (long)getpid(), what);
}

static void check_same_outputs(ql_graph *a, ql_graph *b, int ndim, const int64_t *xs) {
    ql_tensor *x = test_random(ndim, xs, 1.0f);
    const ql_tensor *out;
    CHECK_OK(ql_graph_forward(a, x, &out, 0));
    ql_tensor *ya = ql_tensor_clone(out);
    CHECK_OK(ql_graph_forward(b, x, &out, 0));
    CHECK(ya && ql_tensor_same_shape(ya, out) && !memcmp(ya->data, out->data, ql_tensor_bytes(ya)));
    ql_tensor_free(ya);
    ql_tensor_free(x);
}

TEST(model_file_round_trip) {
    char path[256];
    tmp_path(path, sizeof path, "rt.qlm");
    ql_graph *g = test_build_resnet(1), *h = NULL;
    strcpy(g->nodes[3].precision, "f32");
    CHECK_OK(ql_model_save(g, path));
    CHECK_OK(ql_model_load(path, &h));
    if (h) {
        int64_t xs[4] = {3, 8, 8, 3};
        check_same_outputs(g, h, 4, xs);
        char *ja = ql_graph_to_json(g), *jb = ql_graph_to_json(h);
        CHECK(ja && jb && !strcmp(ja, jb));
        ql_free(ja);
        ql_free(jb);
        CHECK(h->version > 0);
    }
    /* the file is a plain safetensors state_dict with PyTorch names and layouts */
    ql_st_file *f = NULL;
    CHECK_OK(ql_st_read(path, &f));
    const ql_st_entry *e = f ? ql_st_find(f, "layer1.0.conv1.weight") : NULL;
    CHECK(e && e->dtype == QL_DTYPE_F32 && e->ndim == 4 && e->shape[0] == 16 && e->shape[1] == 8 &&
          e->shape[2] == 3 && e->shape[3] == 3);
    CHECK(f && ql_st_find(f, "bn1.running_mean") && ql_st_meta(f, "qlab.graph"));
    ql_st_free(f);
    ql_graph_free(h);
    ql_graph_free(g);

    g = test_build_lstm();
    CHECK_OK(ql_model_save(g, path));
    CHECK_OK(ql_model_load(path, &h));
    if (h) {
        int64_t xs[3] = {2, 5, 4};
        check_same_outputs(g, h, 3, xs);
    }
    ql_graph_free(h);
    ql_graph_free(g);
    unlink(path);
}

TEST(model_file_json_round_trip) {
    ql_graph *g = test_build_resnet(0), *h = NULL;
    char *j = ql_graph_to_json(g);
    CHECK(j && strstr(j, "\"format\":\"qlab.graph\"") && strstr(j, "\"output\":\"fc\""));
    CHECK(j && strstr(j, "\"input\":[8,8,3]"));
    CHECK_OK(ql_graph_from_json(j, &h));
    CHECK(h && h->nnodes == g->nnodes && ql_graph_param_count(h) == ql_graph_param_count(g));
    for (int i = 0; h && i < g->nnodes; i++)
        CHECK(!memcmp(&h->nodes[i].a, &g->nodes[i].a, sizeof(ql_attrs)) && h->nodes[i].op == g->nodes[i].op);
    ql_free(j);
    ql_graph_free(h);
    /* nodes may come in any order; they are sorted topologically, and scalar kernels are accepted */
    const char *shuffled =
        "{\"format\":\"qlab.graph\",\"version\":1,\"input\":[6,6,2],\"output\":\"fc\",\"nodes\":["
        "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"gap\"],\"attrs\":{\"out_ch\":3}},"
        "{\"name\":\"gap\",\"op\":\"global_avgpool\",\"inputs\":[\"sum\"]},"
        "{\"name\":\"sum\",\"op\":\"add\",\"inputs\":[\"c\",\"r\"]},"
        "{\"name\":\"r\",\"op\":\"relu\",\"inputs\":[\"c\"],\"precision\":\"f32\"},"
        "{\"name\":\"c\",\"op\":\"conv2d\",\"inputs\":[\"input\"],"
        " \"attrs\":{\"kernel\":3,\"padding\":[1,1],\"out_ch\":4,\"bias\":false}}]}";
    CHECK_OK(ql_graph_from_json(shuffled, &h));
    if (h) {
        CHECK(!strcmp(h->nodes[1].name, "c") && !strcmp(h->nodes[h->output].name, "fc"));
        CHECK(h->nodes[1].a.kernel[1] == 3 && h->nodes[1].a.in_ch == 2 && !ql_graph_param(h, "c.bias"));
    }
    ql_graph_free(h);
    ql_graph_free(g);
}

/* A file with the given graph JSON (or none) and the given tensors. */
static void write_file(const char *path, const char *json, ql_tensor **ts, const char **names, int n) {
    ql_st_writer *w = ql_st_writer_new();
    for (int i = 0; i < n; i++) CHECK_OK(ql_st_writer_add(w, names[i], ts[i]));
    if (json) CHECK_OK(ql_st_writer_meta(w, "qlab.graph", json));
    CHECK_OK(ql_st_writer_write(w, path));
    ql_st_writer_free(w);
}

static void expect_load_error(const char *path, const char *msg) {
    ql_graph *g = (ql_graph *)1;
    int64_t before = ql_mem_current();
    ql_status st = ql_model_load(path, &g);
    CHECK_MSG(st != QL_OK && g == NULL, "loading should fail with '%s'", msg);
    CHECK_MSG(strstr(ql_last_error(), msg) != NULL, "error '%s' lacks '%s'", ql_last_error(), msg);
    CHECK(ql_mem_current() == before);
}

#define HEAD "{\"format\":\"qlab.graph\",\"version\":1,\"input\":[4],\"output\":\"fc\",\"nodes\":["
#define FC "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"input\"],\"attrs\":{\"out_ch\":3}}"

TEST(model_file_rejects_bad_graphs) {
    char path[256];
    tmp_path(path, sizeof path, "bad.qlm");
    int64_t ws[2] = {3, 4}, bs[1] = {3};
    ql_tensor *w = test_random(2, ws, 1.0f), *b = test_random(1, bs, 1.0f);
    ql_tensor *ts[2] = {w, b};
    const char *names[2] = {"fc.weight", "fc.bias"};
    static const struct { const char *json, *msg; } cases[] = {
        {NULL, "not a qlab model: no qlab.graph metadata; use load_state_dict"},
        {"{\"format\":\"qlab.graph\",", "not valid JSON"},
        {"[1,2]", "not an object"},
        {"{\"format\":\"onnx\",\"version\":1,\"input\":[4],\"output\":\"fc\",\"nodes\":[]}", "\"format\""},
        {"{\"format\":\"qlab.graph\",\"version\":2,\"input\":[4],\"output\":\"fc\",\"nodes\":[]}", "version"},
        {"{\"format\":\"qlab.graph\",\"version\":1,\"input\":[0],\"output\":\"fc\",\"nodes\":[]}", "positive"},
        {"{\"format\":\"qlab.graph\",\"version\":1,\"input\":[4],\"output\":\"fc\"}", "\"nodes\""},
        {HEAD FC ",{\"name\":\"x\",\"op\":\"conv3d\",\"inputs\":[\"fc\"]}]}", "node 'x': unknown op 'conv3d'"},
        {HEAD "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"nope\"],\"attrs\":{\"out_ch\":3}}]}",
         "node 'fc': unknown input 'nope'"},
        {HEAD FC "," FC "]}", "duplicate node name 'fc'"},
        {HEAD FC ",{\"name\":\"input\",\"op\":\"relu\",\"inputs\":[\"fc\"]}]}", "reserved"},
        {HEAD FC ",{\"name\":\"a\",\"op\":\"relu\",\"inputs\":[\"c\"]},{\"name\":\"b\",\"op\":\"relu\",\"inputs\":[\"a\"]},"
              "{\"name\":\"c\",\"op\":\"add\",\"inputs\":[\"b\",\"fc\"]}]}",
         "cycle: 'a' -> 'b' -> 'c' -> 'a'"},
        {HEAD FC ",{\"name\":\"s\",\"op\":\"relu\",\"inputs\":[\"s\"]}]}", "node 's': is its own input"},
        {"{\"format\":\"qlab.graph\",\"version\":1,\"input\":[6,6,2],\"output\":\"c\",\"nodes\":["
         "{\"name\":\"c\",\"op\":\"conv2d\",\"inputs\":[\"input\"],\"attrs\":{\"kernel\":[0,3],\"out_ch\":4}}]}",
         "node 'c': conv2d kernel must be >= 1"},
        {"{\"format\":\"qlab.graph\",\"version\":1,\"input\":[6,6,2],\"output\":\"c\",\"nodes\":["
         "{\"name\":\"c\",\"op\":\"conv2d\",\"inputs\":[\"input\"],\"attrs\":{\"kernel\":3,\"padding\":-1,\"out_ch\":4}}]}",
         "padding must be >= 0"},
        {"{\"format\":\"qlab.graph\",\"version\":1,\"input\":[6,6,2],\"output\":\"c\",\"nodes\":["
         "{\"name\":\"c\",\"op\":\"conv2d\",\"inputs\":[\"input\"],\"attrs\":{\"kernel\":3,\"groups\":3,\"out_ch\":6}}]}",
         "groups=3 must divide in_ch=2"},
        {HEAD "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"input\"],\"attrs\":{\"out_ch\":3,\"in_ch\":5}}]}",
         "node 'fc': linear expects 5 input features, got 4"},
        {HEAD "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"input\"],\"attrs\":{\"out_ch\":\"3\"}}]}",
         "attribute 'out_ch' must be an integer"},
        {HEAD "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"input\"],\"attrs\":{\"out_ch\":3.5}}]}",
         "attribute 'out_ch' must be an integer"},
        {HEAD "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"input\"],\"attrs\":{\"out_chan\":3}}]}",
         "unknown attribute 'out_chan'"},
        {HEAD "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"input\",\"input\"],\"attrs\":{\"out_ch\":3}}]}",
         "linear takes 1 input, got 2"},
        {HEAD "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":\"input\",\"attrs\":{\"out_ch\":3}}]}", "\"inputs\""},
        {HEAD "{\"op\":\"linear\",\"inputs\":[\"input\"]}]}", "has no \"name\""},
        {HEAD "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"input\"],\"colour\":1}]}", "unknown key 'colour'"},
        {"{\"format\":\"qlab.graph\",\"version\":1,\"input\":[4],\"output\":\"zz\",\"nodes\":[" FC "]}",
         "\"output\" names 'zz'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_file(path, cases[i].json, ts, names, 2);
        expect_load_error(path, cases[i].msg);
    }
    /* the graph is right, the tensors are not */
    const char *good = HEAD FC "]}";
    write_file(path, good, ts, names, 1);
    expect_load_error(path, "parameter 'fc.bias' of node 'fc' is missing");
    int64_t ws2[2] = {3, 5};
    ql_tensor *w2 = test_random(2, ws2, 1.0f), *bi = ql_tensor_new(QL_DTYPE_S32, 1, bs), *extra = test_random(1, bs, 1.0f);
    ql_tensor *t2[3] = {w2, b};
    write_file(path, good, t2, names, 2);
    expect_load_error(path, "size mismatch for fc.weight: the file has (3,5), the model expects (3,4)");
    ql_tensor *t3[2] = {w, bi};
    write_file(path, good, t3, names, 2);
    expect_load_error(path, "tensor 'fc.bias' is I32, the model expects F32");
    ql_tensor *t4[3] = {w, b, extra};
    const char *n4[3] = {"fc.weight", "fc.bias", "fc.running_mean"};
    write_file(path, good, t4, n4, 3);
    expect_load_error(path, "tensor 'fc.running_mean' in the file is not a parameter");
    write_file(path, good, ts, names, 2);
    ql_graph *g = NULL;
    CHECK_OK(ql_model_load(path, &g));
    CHECK(g && !memcmp(ql_f32(ql_graph_param(g, "fc.weight")->value), w->data, ql_tensor_bytes(w)));
    ql_graph_free(g);
    ql_tensor_free(w); ql_tensor_free(b); ql_tensor_free(w2); ql_tensor_free(bi); ql_tensor_free(extra);
    unlink(path);
}

TEST(model_file_load_state_dict) {
    char path[256];
    tmp_path(path, sizeof path, "sd.safetensors");
    ql_graph *src = test_build_resnet(1), *g = test_build_resnet(1);
    ql_seed(99);
    ql_graph_init_params(g, ql_rng_global());   /* different values from src */
    /* every parameter but two, plus one stranger */
    ql_st_writer *w = ql_st_writer_new();
    int64_t ss[1] = {7};
    ql_tensor *stranger = test_random(1, ss, 1.0f);
    for (int i = 0; i < src->nnodes; i++)
        for (int k = 0; k < src->nodes[i].nparams; k++) {
            ql_param *p = &src->nodes[i].params[k];
            if (strcmp(p->name, "fc.bias") && strcmp(p->name, "bn1.running_var")) CHECK_OK(ql_st_writer_add(w, p->name, p->value));
        }
    CHECK_OK(ql_st_writer_add(w, "head.weight", stranger));
    CHECK_OK(ql_st_writer_write(w, path));
    ql_st_writer_free(w);
    int n = -1;
    uint64_t v = g->version;
    float keep = ql_f32(ql_graph_param(g, "conv1.weight")->value)[0];
    CHECK(ql_model_load_state_dict(g, path, 1, &n) == QL_EFORMAT && n == 0);
    CHECK_MSG(strstr(ql_last_error(), "2 missing: bn1.running_var, fc.bias") &&
              strstr(ql_last_error(), "1 unexpected: head.weight"), "%s", ql_last_error());
    CHECK(ql_f32(ql_graph_param(g, "conv1.weight")->value)[0] == keep);   /* nothing copied */
    CHECK_OK(ql_model_load_state_dict(g, path, 0, &n));
    CHECK(n == 20 && g->version != v);
    CHECK(!memcmp(ql_graph_param(g, "layer1.0.conv2.weight")->value->data,
                  ql_graph_param(src, "layer1.0.conv2.weight")->value->data, 16 * 16 * 9 * sizeof(float)));
    CHECK(memcmp(ql_graph_param(g, "fc.bias")->value->data, ql_graph_param(src, "fc.bias")->value->data,
                 5 * sizeof(float)) != 0);
    /* a shape mismatch fails even when not strict */
    w = ql_st_writer_new();
    int64_t fs[2] = {5, 8};
    ql_tensor *fcw = test_random(2, fs, 1.0f);
    CHECK_OK(ql_st_writer_add(w, "fc.weight", fcw));
    CHECK_OK(ql_st_writer_write(w, path));
    ql_st_writer_free(w);
    CHECK(ql_model_load_state_dict(g, path, 0, &n) == QL_ESHAPE);
    CHECK_MSG(strstr(ql_last_error(), "size mismatch for fc.weight: the file has (5,8), the model expects (5,16)"),
              "%s", ql_last_error());
    /* a .qlm is a state_dict too */
    CHECK_OK(ql_model_save(src, path));
    CHECK_OK(ql_model_load_state_dict(g, path, 1, &n));
    CHECK(n == 22);
    int64_t xs[4] = {2, 8, 8, 3};
    check_same_outputs(src, g, 4, xs);
    ql_tensor_free(stranger);
    ql_tensor_free(fcw);
    ql_graph_free(src);
    ql_graph_free(g);
    unlink(path);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    if (b && fread(b, 1, *n, f) != *n) { free(b); b = NULL; }
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, n, f);
    fclose(f);
}

TEST(model_file_truncated_and_corrupted) {
    char path[256], cut[256];
    tmp_path(path, sizeof path, "full.qlm");
    tmp_path(cut, sizeof cut, "cut.qlm");
    ql_graph *g = test_build_lstm(), *h = NULL;
    CHECK_OK(ql_model_save(g, path));
    size_t n = 0;
    unsigned char *b = slurp(path, &n);
    CHECK(b && n > 64);
    if (!b) { ql_graph_free(g); return; }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)b[i] << (8 * i);
    int64_t m0 = ql_mem_current();
    int bad = 0;
    /* every cut inside the header, a spread of cuts in the data */
    for (size_t k = 0; k < n; k += (k < hlen + 16) ? 1 : 97) {
        spit(cut, b, k);
        if (ql_model_load(cut, &h) == QL_OK) bad++;
        ql_graph_free(h);
        h = NULL;
    }
    CHECK_MSG(bad == 0, "%d truncated files loaded", bad);
    CHECK(ql_mem_current() == m0);
    /* flipped bytes in the header: an error or a model, never a crash */
    ql_rng r;
    ql_rng_seed(&r, 7);
    unsigned char *c = malloc(n);
    for (int t = 0; t < 300; t++) {
        memcpy(c, b, n);
        for (int f = 0; f < 3; f++) c[8 + ql_rng_below(&r, hlen)] = (unsigned char)ql_rng_below(&r, 256);
        spit(cut, c, n);
        if (ql_model_load(cut, &h) == QL_OK) {
            int64_t xs[3] = {1, 5, 4};
            ql_tensor *x = test_random(3, xs, 1.0f);
            const ql_tensor *out;
            (void)ql_graph_forward(h, x, &out, 0);
            ql_tensor_free(x);
        }
        ql_graph_free(h);
        h = NULL;
    }
    CHECK(ql_mem_current() == m0);
    spit(cut, b, n);
    CHECK_OK(ql_model_load(cut, &h));
    ql_graph_free(h);
    free(b);
    free(c);
    ql_graph_free(g);
    unlink(path);
    unlink(cut);
}

/* A quantized output's code range (reduce_range: 0..127) is part of the file:
 * kept through a round trip, applied by the node, checked when read. */
#define QHEAD "{\"format\":\"qlab.graph\",\"version\":1,\"input\":[4],\"output\":\"dq\",\"nodes\":["
#define QDQ(qp) QHEAD "{\"name\":\"q\",\"op\":\"quantize\",\"inputs\":[\"input\"],\"qparams\":" qp "}," \
    "{\"name\":\"dq\",\"op\":\"dequantize\",\"inputs\":[\"q\"]}]}"

TEST(model_file_qparams_code_range) {
    ql_graph *g = NULL;
    CHECK_OK(ql_graph_from_json(QDQ("{\"scale\":0.5,\"zero_point\":10,\"qmin\":0,\"qmax\":127}"), &g));
    if (g) {
        CHECK(g->nodes[1].out_qmin == 0 && g->nodes[1].out_qmax == 127);
        int64_t xs[2] = {1, 4};
        ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 2, xs);
        const float in[4] = {1000.0f, 2.0f, -1000.0f, 58.5f};
        memcpy(x->data, in, sizeof in);
        const ql_tensor *y;
        CHECK_OK(ql_graph_forward(g, x, &y, 0));
        // codes: 127 (not 255), 14, 0, 127 -> (q - 10) * 0.5
        const float *o = ql_f32(y);
        CHECK(o[0] == 58.5f && o[1] == 2.0f && o[2] == -5.0f && o[3] == 58.5f);
        char *j = ql_graph_to_json(g);
        CHECK(j && strstr(j, "\"qmin\":0") && strstr(j, "\"qmax\":127"));
        ql_graph *h = NULL;
        CHECK_OK(ql_graph_from_json(j, &h));
        CHECK(h && h->nodes[1].out_qmax == 127);
        ql_graph_free(h);
        ql_free(j);
        ql_tensor_free(x);
    }
    ql_graph_free(g);
    // the full range is the default and is not written
    g = NULL;
    CHECK_OK(ql_graph_from_json(QDQ("{\"scale\":0.5,\"zero_point\":10}"), &g));
    char *j = g ? ql_graph_to_json(g) : NULL;
    CHECK(g && g->nodes[1].out_qmin == 0 && g->nodes[1].out_qmax == 255 && j && !strstr(j, "qmax"));
    ql_free(j);
    ql_graph_free(g);
    static const char *const bad[] = {
        QDQ("{\"scale\":0.5,\"zero_point\":10,\"qmax\":300}"),
        QDQ("{\"scale\":0.5,\"zero_point\":10,\"qmin\":11}"),
        QDQ("{\"scale\":0.5,\"zero_point\":10,\"qmax\":9}"),
        QDQ("{\"scale\":0.5,\"zero_point\":10,\"qmax\":127.5}"),
        QDQ("{\"scale\":0.5,\"zero_point\":10,\"qmin\":5,\"qmax\":5}"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        g = NULL;
        CHECK_MSG(ql_graph_from_json(bad[i], &g) != QL_OK && !g, "accepted %s", bad[i]);
        CHECK(strstr(ql_last_error(), "qmin") || strstr(ql_last_error(), "qmax"));
    }
    g = NULL;
    CHECK(ql_graph_from_json(QDQ("{\"scale\":0.5,\"zero_point\":10,\"bits\":7}"), &g) != QL_OK && !g);
    CHECK(strstr(ql_last_error(), "unknown \"qparams\" key 'bits'") != NULL);
}
