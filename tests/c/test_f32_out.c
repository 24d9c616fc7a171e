/* A quantized linear that writes f32 straight from its s32 accumulator
 * (attr f32_out) against a float simulation of acc * sx * sw[n] + bias, and
 * the older form (u8 output, then a dequantize node) still loading and
 * running as the requantization defines it. Both through the .qlm JSON. */
#include <math.h>
#include <string.h>
#include "test.h"
#include "qlab/alloc.h"
#include "qlab/graph.h"
#include "qlab/model_file.h"
#include "qlab/quant.h"

#define HEAD(out) "{\"format\":\"qlab.graph\",\"version\":1,\"input\":[4],\"output\":\"" out "\",\"nodes\":[" \
    "{\"name\":\"q\",\"op\":\"quantize\",\"inputs\":[\"input\"],\"qparams\":{\"scale\":0.05,\"zero_point\":100}},"
static const char *const old_form = HEAD("dq")
    "{\"name\":\"fc\",\"op\":\"qlinear\",\"inputs\":[\"q\"],\"attrs\":{\"in_ch\":4,\"out_ch\":3,\"bias\":true},"
    "\"qparams\":{\"scale\":0.1,\"zero_point\":50}},"
    "{\"name\":\"dq\",\"op\":\"dequantize\",\"inputs\":[\"fc\"]}]}";
static const char *const new_form = HEAD("fc")
    "{\"name\":\"fc\",\"op\":\"qlinear\",\"inputs\":[\"q\"],\"attrs\":{\"in_ch\":4,\"out_ch\":3,\"bias\":true,\"f32_out\":true}}]}";

static const int8_t W[3][4] = {{127, -3, 40, -128}, {5, 6, -7, 8}, {-90, 90, 1, -1}};
static const float SW[3] = {0.01f, 0.02f, 0.004f}, BIAS[3] = {0.3f, -1.25f, 0.0371f};
static const float X[2][4] = {{1.0f, -2.0f, 0.5f, 3.3f}, {-5.0f, 0.01f, 2.2f, -0.7f}};

static void set_params(ql_graph *g) {
    memcpy(ql_graph_param(g, "fc.weight")->value->data, W, sizeof W);
    memcpy(ql_graph_param(g, "fc.weight_scale")->value->data, SW, sizeof SW);
    memset(ql_graph_param(g, "fc.weight_zero_point")->value->data, 0, 3 * sizeof(int32_t));
    memcpy(ql_graph_param(g, "fc.bias")->value->data, BIAS, sizeof BIAS);
    g->version++;
}

// the u8 code of x as the quantize node makes it (scale 0.05, zero 100)
static int32_t code(float x) {
    float v = nearbyintf(x / 0.05f) + 100;
    return v < 0 ? 0 : v > 255 ? 255 : (int32_t)v;
}

static int32_t acc(int r, int n) {
    int32_t s = 0;
    for (int k = 0; k < 4; k++) s += (code(X[r][k]) - 100) * W[n][k];
    return s;
}

static ql_tensor *run(ql_graph *g) {
    int64_t xs[2] = {2, 4};
    ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 2, xs);
    memcpy(x->data, X, sizeof X);
    const ql_tensor *y = NULL;
    CHECK_OK(ql_graph_forward(g, x, &y, 0));
    ql_tensor *c = y ? ql_tensor_clone(y) : NULL;
    ql_tensor_free(x);
    return c;
}

TEST(f32_out_matches_the_accumulator_times_the_scales) {
    ql_graph *g = NULL;
    CHECK_OK(ql_graph_from_json(new_form, &g));
    if (!g) return;
    int fc = ql_graph_find(g, "fc");
    CHECK(g->nodes[fc].out_dtype == QL_DTYPE_F32 && g->nodes[fc].a.f32_out);
    set_params(g);
    ql_tensor *y = run(g);
    CHECK(y && y->dtype == QL_DTYPE_F32 && y->numel == 6);
    for (int r = 0; y && r < 2; r++)
        for (int n = 0; n < 3; n++) {
            double want = (double)acc(r, n) * 0.05 * SW[n] + BIAS[n];
            CHECK_NEAR(ql_f32(y)[r * 3 + n], want, 1e-6);
        }
    // written back with the flag and no output qparams, and read back the same
    char *j = ql_graph_to_json(g);
    CHECK(j && strstr(j, "\"f32_out\":true"));
    ql_graph *h = NULL;
    CHECK_OK(ql_graph_from_json(j, &h));
    if (h) {
        set_params(h);
        ql_tensor *z = run(h);
        CHECK(z && y && !memcmp(z->data, y->data, 6 * sizeof(float)));
        ql_tensor_free(z);
    }
    ql_graph_free(h);
    ql_free(j);
    ql_tensor_free(y);
    ql_graph_free(g);
}

TEST(f32_out_old_files_with_a_trailing_dequantize_still_run) {
    ql_graph *g = NULL;
    CHECK_OK(ql_graph_from_json(old_form, &g));
    if (!g) return;
    CHECK(g->nodes[ql_graph_find(g, "fc")].out_dtype == QL_DTYPE_U8);
    set_params(g);
    ql_tensor *y = run(g);
    CHECK(y && y->dtype == QL_DTYPE_F32 && y->numel == 6);
    for (int r = 0; y && r < 2; r++)
        for (int n = 0; n < 3; n++) {   // requantized: bias in accumulator units, then to codes of scale 0.1
            float sb = 0.05f * SW[n];
            int32_t a = acc(r, n) + (int32_t)nearbyintf(BIAS[n] / sb);
            float v = nearbyintf((float)a * (sb / 0.1f)) + 50;
            v = v < 0 ? 0 : v > 255 ? 255 : v;
            CHECK_NEAR(ql_f32(y)[r * 3 + n], (v - 50) * 0.1f, 1e-6);
        }
    ql_tensor_free(y);
    ql_graph_free(g);
}

TEST(f32_out_fold_dequantize_turns_the_old_form_into_the_new) {
    ql_graph *g = NULL;
    CHECK_OK(ql_graph_from_json(old_form, &g));
    if (!g) return;
    set_params(g);
    ql_tensor *before = run(g);   // builds the packed u8 kernel first: the fold must rebuild it
    int n = -1, nodes = g->nnodes;
    CHECK_OK(ql_fold_dequantize(g, &n));
    CHECK(n == 1 && g->nnodes == nodes - 1);
    int fc = ql_graph_find(g, "fc");
    CHECK(fc >= 0 && g->output == fc && ql_graph_find(g, "dq") < 0 && g->nodes[fc].out_dtype == QL_DTYPE_F32);
    ql_tensor *y = run(g);
    for (int r = 0; y && r < 2; r++)
        for (int k = 0; k < 3; k++)
            CHECK_NEAR(ql_f32(y)[r * 3 + k], (double)acc(r, k) * 0.05 * SW[k] + BIAS[k], 1e-6);
    CHECK_OK(ql_fold_dequantize(g, &n));   // nothing left to fold
    CHECK(n == 0);
    ql_tensor_free(before);
    ql_tensor_free(y);
    ql_graph_free(g);
}
