/* ONNX import: PyTorch-exported fixtures (data/fixtures/onnx, written by
 * scripts/fixtures/make_onnx_fixtures.py) match PyTorch's outputs and keep
 * PyTorch's names; malformed, truncated, mutated and cyclic files are errors,
 * never crashes. Round trips through export: tests/lua/test_onnx.lua. */
#include <stdlib.h>
#include "test.h"
#include "qlab/alloc.h"
#include "qlab/onnx.h"
#include "qlab/rng.h"

#define FIX "data/fixtures/onnx/"

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* (and the QOperator model, against the ONNX formulas) */
TEST(onnx_pytorch_fixtures_match) {
    static const char *const cases[] = {FIX "cnn_bn_residual", FIX "lstm", FIX "qoperator"};
    for (int i = 0; i < 3; i++) {
        char op[64], msg[512];
        ql_onnx_test_result r = ql_onnx_run_test(cases[i], op, sizeof op, msg, sizeof msg);
        CHECK_MSG(r == QL_ONNX_TEST_PASS, "%s: %s", cases[i], msg);
    }
}

TEST(onnx_import_keeps_pytorch_names) {
    ql_graph *g = NULL;
    ql_onnx_import o = {0};
    CHECK_OK(ql_onnx_load(FIX "cnn_bn_residual/model.onnx", &g, &o));
    if (!g) return;
    CHECK(o.opset == 13 && o.in_layout == QL_ONNX_NCHW && o.out_layout == QL_ONNX_PLAIN);
    CHECK(ql_graph_find(g, "conv1") > 0 && ql_graph_find(g, "bn2") > 0 && ql_graph_find(g, "fc") > 0);
    CHECK(ql_graph_param(g, "conv1.weight") && ql_graph_param(g, "bn1.running_var") && ql_graph_param(g, "fc.bias"));
    CHECK(g->nodes[0].out_ndim == 3 && g->nodes[0].out_shape[0] == 28 && g->nodes[0].out_shape[2] == 1);
    int relu6 = 0;
    for (int i = 0; i < g->nnodes; i++) relu6 += g->nodes[i].op == QL_OP_RELU6;
    CHECK(relu6 == 1);
    ql_graph_free(g);
    CHECK_OK(ql_onnx_load(FIX "lstm/model.onnx", &g, &o));
    if (g) CHECK(ql_graph_find(g, "fc") > 0 && g->nodes[g->output].op == QL_OP_LINEAR);
    ql_graph_free(g);
}

static void expect_error(const char *path, const char *a, const char *b) {
    ql_graph *g = NULL;
    ql_status st = ql_onnx_load(path, &g, NULL);
    CHECK_MSG(st != QL_OK && !g, "%s loaded", path);
    CHECK_MSG(strstr(ql_last_error(), a) && strstr(ql_last_error(), b), "%s: '%s' lacks '%s' / '%s'", path,
              ql_last_error(), a, b);
    ql_graph_free(g);
}

TEST(onnx_bad_files_are_clear_errors) {
    expect_error(FIX "bad_cycle.onnx", "cycle", "Add");
    expect_error(FIX "bad_dangling.onnx", "'nowhere' is not produced by any node", "lost");
    expect_error(FIX "bad_op.onnx", "swish", "HardSwish, opset 14");
    expect_error("data/fixtures/observers.safetensors", "not an ONNX model", "observers");
    expect_error(FIX "does_not_exist.onnx", "cannot open", "does_not_exist");
}

TEST(onnx_truncated_files_fail) {
    size_t len;
    uint8_t *b = slurp(FIX "cnn_bn_residual/model.onnx", &len);
    CHECK(b != NULL);
    if (!b) return;
    int loaded = 0;
    for (size_t n = 0; n < len; n += 37) {
        ql_graph *g = NULL;
        if (ql_onnx_load_mem(b, n, &g, NULL) == QL_OK) loaded++;
        ql_graph_free(g);
    }
    CHECK_MSG(loaded == 0, "%d truncated files loaded", loaded);
    free(b);
}

/* Random byte changes: whatever loads must also run. */
TEST(onnx_mutated_files_never_crash) {
    size_t len;
    uint8_t *b = slurp(FIX "cnn_bn_residual/model.onnx", &len), *m = b ? malloc(len) : NULL;
    CHECK(m != NULL);
    if (!m) { free(b); return; }
    ql_rng r;
    ql_rng_seed(&r, 7);
    ql_tensor *x = ql_tensor_new4(QL_DTYPE_F32, 2, 28, 28, 1);
    for (int it = 0; it < 300; it++) {
        memcpy(m, b, len);
        for (int k = 0; k < 1 + it % 4; k++) m[ql_rng_below(&r, len)] = (uint8_t)ql_rng_u64(&r);
        ql_graph *g = NULL;
        if (ql_onnx_load_mem(m, len, &g, NULL) == QL_OK) {
            const ql_tensor *y;
            (void)ql_graph_forward(g, x, &y, 0);
        }
        ql_graph_free(g);
    }
    ql_tensor_free(x);
    free(b);
    free(m);
}
