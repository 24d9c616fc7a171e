/* ONNX layouts <-> qlab layouts of a batch, and one ONNX backend test
 * (model.onnx + test_data_set_N/input_K.pb, output_K.pb) run on qlab. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "io/onnx_internal.h"

/* (A,B,C,D) element (a,b,c,d) -> dst laid out as dims permuted by perm (4-D views of both). */
static ql_tensor *permute(const ql_tensor *t, int nd, const int64_t *dims, const int *perm) {
    int64_t od[4], s[4];
    for (int i = 0; i < 4; i++) od[i] = dims[perm[i]];
    ql_tensor *o = ql_tensor_new(t->dtype, nd, od);
    if (!o) return NULL;
    o->scale = t->scale;
    o->zero_point = t->zero_point;
    size_t es = ql_dtype_size(t->dtype);
    s[3] = 1;
    for (int i = 2; i >= 0; i--) s[i] = s[i + 1] * dims[i + 1];
    const char *src = t->data;
    char *dst = o->data;
    int64_t k = 0, i[4];
    for (i[0] = 0; i[0] < od[0]; i[0]++)
        for (i[1] = 0; i[1] < od[1]; i[1]++)
            for (i[2] = 0; i[2] < od[2]; i[2]++)
                for (i[3] = 0; i[3] < od[3]; i[3]++, k++) {
                    int64_t off = 0;
                    for (int d = 0; d < 4; d++) off += i[d] * s[perm[d]];
                    memcpy(dst + k * es, src + off * es, es);
                }
    return o;
}

static ql_tensor *convert(const ql_tensor *t, ql_onnx_layout l, int to_engine) {
    int64_t d[4] = {1, 1, 1, 1};
    if (l == QL_ONNX_NCHW && t->ndim == 4) {
        static const int to[4] = {0, 2, 3, 1}, from[4] = {0, 3, 1, 2};
        for (int i = 0; i < 4; i++) d[i] = t->shape[i];
        return permute(t, 4, d, to_engine ? to : from);
    }
    if (l == QL_ONNX_TNF && t->ndim == 3) {
        static const int swap[4] = {1, 0, 2, 3};
        for (int i = 0; i < 3; i++) d[i] = t->shape[i];
        return permute(t, 3, d, swap);
    }
    if (l == QL_ONNX_C11 && to_engine && t->ndim == 4) {
        ql_tensor *o = ql_tensor_clone(t);
        int64_t s[2] = {t->shape[0], t->shape[1]};
        if (o && ql_tensor_reshape(o, 2, s) != QL_OK) { ql_tensor_free(o); return NULL; }
        return o;
    }
    return ql_tensor_clone(t);   /* same element order */
}

ql_tensor *ql_onnx_to_engine(const ql_tensor *t, ql_onnx_layout l) { return convert(t, l, 1); }
ql_tensor *ql_onnx_from_engine(const ql_tensor *t, ql_onnx_layout l) { return convert(t, l, 0); }

/* ---- one backend test ------------------------------------------------------------- */

typedef struct {
    ql_tensor *in[8];
    char *name[8];
    int nin;
} tc_inputs;

static void inputs_free(tc_inputs *t) {
    for (int i = 0; i < t->nin; i++) { ql_tensor_free(t->in[i]); ql_free(t->name[i]); }
    t->nin = 0;
}

static ql_status read_set(const char *set, const char *what, tc_inputs *t) {
    char p[1200];
    for (int i = 0; i < 8; i++) {
        snprintf(p, sizeof p, "%s/%s_%d.pb", set, what, i);
        FILE *fp = fopen(p, "rb");
        if (!fp) break;
        fclose(fp);
        QL_TRY(ql_onnx_read_tensor(p, &t->in[i], &t->name[i]));
        t->nin = i + 1;
    }
    return t->nin ? QL_OK : ql_error(QL_EFORMAT, "%s: no %s_0.pb", set, what);
}

/* Names of the model's graph inputs, in order (the .pb files may carry no names). */
static int graph_inputs(const char *model, char names[8][128], char *op, size_t oplen) {
    uint8_t *buf;
    size_t len;
    if (onnx_read_file(model, &buf, &len) != QL_OK) return -1;
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    ql_free(buf);
    if (!m || !m->graph) { if (m) onnx__model_proto__free_unpacked(m, NULL); return -1; }
    int n = 0;
    for (size_t i = 0; i < m->graph->n_input && n < 8; i++) {
        int init = 0;
        for (size_t k = 0; k < m->graph->n_initializer; k++)
            if (!strcmp(m->graph->initializer[k]->name, m->graph->input[i]->name)) init = 1;
        if (!init) snprintf(names[n++], 128, "%s", m->graph->input[i]->name);
    }
    snprintf(op, oplen, "?");
    for (size_t i = 0; i < m->graph->n_node; i++)
        if (m->graph->node[i]->op_type && strcmp(m->graph->node[i]->op_type, "Constant")) {
            snprintf(op, oplen, "%s", m->graph->node[i]->op_type);
            break;
        }
    onnx__model_proto__free_unpacked(m, NULL);
    return n;
}

static int compare(const ql_tensor *got, const ql_tensor *want, char *msg, size_t len) {
    if (got->numel != want->numel) {
        snprintf(msg, len, "output has %lld elements, expected %lld", (long long)got->numel, (long long)want->numel);
        return 0;
    }
    int ints = want->dtype != QL_DTYPE_F32;
    if (ints && got->dtype != want->dtype) {
        snprintf(msg, len, "output is %s, expected %s", ql_dtype_name(got->dtype), ql_dtype_name(want->dtype));
        return 0;
    }
    for (int64_t k = 0; k < want->numel; k++) {
        double a = onnx_tensor_get(got, k), b = onnx_tensor_get(want, k);
        double tol = ints ? 1.0 : 1e-3 + 1e-3 * fabs(b);
        if (!(fabs(a - b) <= tol) && !(isnan(a) && isnan(b))) {
            snprintf(msg, len, "output[%lld] = %g, expected %g", (long long)k, a, b);
            return 0;
        }
    }
    return 1;
}

ql_onnx_test_result ql_onnx_run_test(const char *dir, char *op, size_t oplen, char *msg, size_t msglen) {
    char model[1100], names[8][128];
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    msg[0] = 0;
    int ngi = graph_inputs(model, names, op, oplen);
    if (ngi < 0) { snprintf(msg, msglen, "cannot read %s", model); return QL_ONNX_TEST_FAIL; }
    if (ngi == 0) { snprintf(msg, msglen, "the graph has no run-time input"); return QL_ONNX_TEST_UNSUPPORTED; }
    ql_onnx_test_result res = QL_ONNX_TEST_PASS;
    int sets = 0;
    for (int s = 0; s < 16 && res == QL_ONNX_TEST_PASS; s++) {
        char set[1200];
        snprintf(set, sizeof set, "%s/test_data_set_%d", dir, s);
        DIR *d = opendir(set);
        if (!d) break;
        closedir(d);
        sets++;
        tc_inputs in = {0}, out = {0};
        ql_status rs = read_set(set, "input", &in);
        if (rs == QL_OK) rs = read_set(set, "output", &out);
        if (rs != QL_OK) {
            /* data qlab cannot hold (float16, strings, sequences, optionals ...): unsupported
             * when the model itself is refused for another reason than its input count */
            snprintf(msg, msglen, "data set %s: %s", set, ql_last_error());
            inputs_free(&in); inputs_free(&out);
            ql_graph *g = NULL;
            ql_status st = ql_onnx_load(model, &g, NULL);
            ql_graph_free(g);
            int unsup = rs == QL_EUNSUPPORTED || (st == QL_EUNSUPPORTED && !strstr(ql_last_error(), "take one input"));
            if (st == QL_EUNSUPPORTED && unsup) snprintf(msg, msglen, "%s", ql_last_error());
            return unsup ? QL_ONNX_TEST_UNSUPPORTED : QL_ONNX_TEST_FAIL;
        }
        /* input 0 runs; the others (weights passed as inputs) are bound as constants */
        ql_onnx_binding b[8];
        int nb = 0;
        for (int i = 1; i < in.nin && i < ngi; i++) b[nb++] = (ql_onnx_binding){names[i], in.in[i]};
        ql_onnx_import o = {.bind = b, .nbind = nb};
        ql_graph *g = NULL;
        ql_status st = ql_onnx_load(model, &g, &o);
        if (st != QL_OK) {
            snprintf(msg, msglen, "%s", ql_last_error());
            res = st == QL_EUNSUPPORTED ? QL_ONNX_TEST_UNSUPPORTED : QL_ONNX_TEST_FAIL;
        } else if (in.in[0]->dtype != QL_DTYPE_F32) {
            snprintf(msg, msglen, "the run-time input is %s (qlab models take f32)", ql_dtype_name(in.in[0]->dtype));
            res = QL_ONNX_TEST_UNSUPPORTED;
        } else {
            ql_tensor *x = ql_onnx_to_engine(in.in[0], o.in_layout);
            const ql_tensor *y = NULL;
            if (!x || ql_graph_forward(g, x, &y, 0) != QL_OK) {
                snprintf(msg, msglen, "forward: %s", ql_last_error());
                res = QL_ONNX_TEST_FAIL;
            } else {
                ql_tensor *yo = ql_onnx_from_engine(y, o.out_layout);
                if (!yo || !compare(yo, out.in[0], msg, msglen)) res = QL_ONNX_TEST_FAIL;
                ql_tensor_free(yo);
            }
            ql_tensor_free(x);
        }
        ql_graph_free(g);
        inputs_free(&in);
        inputs_free(&out);
    }
    if (!sets && res == QL_ONNX_TEST_PASS) { snprintf(msg, msglen, "no test_data_set_0"); res = QL_ONNX_TEST_FAIL; }
    return res;
}
