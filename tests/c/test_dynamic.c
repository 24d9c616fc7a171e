/* Dynamic INT8 linear / LSTM against a float simulation of the same
 * quantization written here (per-call u8 qparams from the data's range,
 * per-row s8 weights, dequantize, compute in double); f16 / bf16 linear and
 * conv nodes against FP32 nodes holding the rounded weights, on every half
 * GEMM path the CPU has; quantize_dynamic's errors and files. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include "test.h"
#include "qlab/half.h"
#include "qlab/model_file.h"
#include "qlab/observer.h"
#include "qlab/qdynamic.h"
#include "qlab/quant.h"
#include "qlab/rng.h"

static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)ql_rng_uniform(ql_rng_global()); }

static void fill(ql_tensor *t, float lo, float hi) {
    for (int64_t i = 0; i < t->numel; i++) ql_f32(t)[i] = rndf(lo, hi);
}

// the simulation's view of dynamic quantization: codes of x (rows x cols,
// stride ldx) dequantized into xd, from the range of x stretched to hold 0
static void dyn_quant_sim(int64_t rows, int cols, const float *x, int64_t ldx, double *xd) {
    float lo = 0, hi = 0, s;
    int32_t z;
    for (int64_t i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) { lo = fminf(lo, x[i * ldx + j]); hi = fmaxf(hi, x[i * ldx + j]); }
    ql_qparams_from_range(lo, hi, 0, 255, 0, QL_DTYPE_U8, &s, &z);
    for (int64_t i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double q = nearbyintf(x[i * ldx + j] / s) + z;   // x / s in float, as PyTorch
            q = q < 0 ? 0 : q > 255 ? 255 : q;
            xd[i * cols + j] = (q - z) * s;
        }
}

// per-row symmetric s8 weights (scale = max|w| / 127.5) dequantized; the
// largest |w| lands on 127.5 give or take an ulp, so w / s is rounded in float
// as the library (and PyTorch) does
static void weight_sim(int rows, int cols, const float *w, double *wd) {
    for (int r = 0; r < rows; r++) {
        float m = 0;
        for (int j = 0; j < cols; j++) m = fmaxf(m, fabsf(w[r * cols + j]));
        float s = m / 127.5f;
        if (!(s > FLT_EPSILON)) s = FLT_EPSILON;
        for (int j = 0; j < cols; j++) {
            double q = nearbyintf(w[r * cols + j] / s);
            q = q < -128 ? -128 : q > 127 ? 127 : q;
            wd[r * cols + j] = q * s;
        }
    }
}

static ql_graph *one_linear(int k, int n, int act) {
    int64_t in[1] = {k};
    ql_graph *g = ql_graph_new(1, in);
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = n;
    a.act = act;
    int zero = 0;
    ql_graph_add(g, "fc", QL_OP_LINEAR, &zero, 1, &a);
    ql_graph_init_params(g, ql_rng_global());
    fill(g->nodes[1].params[1].value, -0.5f, 0.5f);
    return g;
}

TEST(dynamic_linear_matches_float_simulation) {
    static const struct { int64_t m; int k, n, act; float lo, hi; } cases[] = {
        {1, 128, 10, 0, -3, 3}, {64, 128, 10, 0, -1, 4}, {5, 33, 17, 1, 0.5f, 2},   // all positive: range holds 0
        {3, 7, 64, 0, -2, -0.25f}, {200, 300, 40, 0, -10, 10},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int64_t m = cases[c].m;
        int k = cases[c].k, n = cases[c].n;
        ql_graph *g = one_linear(k, n, cases[c].act), *d = NULL;
        CHECK_OK(ql_quantize_dynamic(g, NULL, QL_DTYPE_S8, &d));
        if (!d) { ql_graph_free(g); continue; }
        CHECK(d->nodes[1].op == QL_OP_DLINEAR && !strcmp(d->nodes[1].precision, "dyn8"));
        CHECK(d->nodes[1].params[0].value->dtype == QL_DTYPE_S8 && d->nodes[1].params[2].value->dtype == QL_DTYPE_S32);
        ql_tensor *x = ql_tensor_new4(QL_DTYPE_F32, m, k, 1, 1);
        CHECK_OK(ql_tensor_reshape(x, 2, (int64_t[]){m, k}));
        fill(x, cases[c].lo, cases[c].hi);
        const ql_tensor *y;
        CHECK_OK(ql_graph_forward(d, x, &y, 0));
        double *xd = malloc(sizeof(double) * m * k), *wd = malloc(sizeof(double) * n * k);
        dyn_quant_sim(m, k, ql_f32(x), k, xd);
        weight_sim(n, k, ql_f32(g->nodes[1].params[0].value), wd);
        const float *b = ql_f32(g->nodes[1].params[1].value);
        double worst = 0, scale = 0;
        for (int64_t i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = b[j];
                for (int kk = 0; kk < k; kk++) s += xd[i * k + kk] * wd[(int64_t)j * k + kk];
                if (cases[c].act && s < 0) s = 0;
                worst = fmax(worst, fabs(ql_f32(y)[i * n + j] - s));
                scale = fmax(scale, fabs(s));
            }
        CHECK_MSG(worst <= 1e-5 * fmax(1, scale), "case %zu: max error %.3g (outputs up to %.3g)", c, worst, scale);
        // the input graph is untouched
        CHECK(g->nodes[1].op == QL_OP_LINEAR && g->nodes[1].params[0].value->dtype == QL_DTYPE_F32);
        free(xd); free(wd);
        ql_tensor_free(x);
        ql_graph_free(d);
        ql_graph_free(g);
    }
}

TEST(dynamic_linear_kernel_strides) {
    // rows read at a stride (the LSTM's h_{t-1}) and written at a stride: same values as dense
    const int k = 20, n = 12;
    const int64_t m = 6, ldx = 31, ldy = 15;
    int8_t w[12 * 20];
    float ws_[12], b[12], x[6 * 31], y0[6 * 12], y1[6 * 15];
    for (int i = 0; i < n * k; i++) w[i] = (int8_t)((i * 37) % 255 - 127);
    for (int j = 0; j < n; j++) { ws_[j] = rndf(0.001f, 0.02f); b[j] = rndf(-1, 1); }
    for (int i = 0; i < m * ldx; i++) x[i] = rndf(-2, 3);
    float dense[6 * 20];
    for (int64_t i = 0; i < m; i++) memcpy(dense + i * k, x + i * ldx, sizeof(float) * k);
    ql_dlinear *l = ql_dlinear_new(k, n, w, ws_, b, ql_isa_active());
    CHECK(l != NULL);
    if (!l) return;
    void *ws = malloc(ql_dlinear_workspace(l, m));
    for (int i = 0; i < m * ldy; i++) y1[i] = 777.0f;
    ql_dlinear_forward(l, m, dense, k, y0, n, ws);
    ql_dlinear_forward(l, m, x, ldx, y1, ldy, ws);
    long bad = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < ldy; j++) bad += j < n ? y1[i * ldy + j] != y0[i * n + j] : y1[i * ldy + j] != 777.0f;
    CHECK_MSG(bad == 0, "%ld strided outputs differ", bad);
    free(ws);
    ql_dlinear_free(l);
}

static float sigm(float v) { return 1.0f / (1.0f + expf(-v)); }

// the dynamic LSTM simulated: each layer's input sequence quantized at once,
// h_{t-1} quantized per step over the batch, gates in float
static void dlstm_sim(const ql_node *n, int N, int T, const float *x, float *y) {
    const int H = n->a.out_ch, L = n->a.layers, P = n->a.bias ? 4 : 2;
    float *in = malloc(sizeof(float) * N * T * (n->a.in_ch > H ? n->a.in_ch : H));
    float *h = malloc(sizeof(float) * N * T * H), *c = malloc(sizeof(float) * N * H);
    double *gates = malloc(sizeof(double) * N * T * 4 * H), *hd = malloc(sizeof(double) * N * H);
    memcpy(in, x, sizeof(float) * N * T * n->a.in_ch);
    for (int l = 0; l < L; l++) {
        int I = l ? H : n->a.in_ch;
        const ql_param *p = &n->params[l * P];
        double *xd = malloc(sizeof(double) * N * T * I), *wi = malloc(sizeof(double) * 4 * H * I),
               *wh = malloc(sizeof(double) * 4 * H * H);
        dyn_quant_sim((int64_t)N * T, I, in, I, xd);
        weight_sim(4 * H, I, ql_f32(p[0].value), wi);
        weight_sim(4 * H, H, ql_f32(p[1].value), wh);
        for (int r = 0; r < N * T; r++)
            for (int j = 0; j < 4 * H; j++) {
                double s = n->a.bias ? (double)ql_f32(p[2].value)[j] + ql_f32(p[3].value)[j] : 0;
                for (int kk = 0; kk < I; kk++) s += xd[(int64_t)r * I + kk] * wi[(int64_t)j * I + kk];
                gates[(int64_t)r * 4 * H + j] = s;
            }
        for (int t = 0; t < T; t++) {
            if (t > 0) dyn_quant_sim(N, H, h + (t - 1) * H, (int64_t)T * H, hd);
            for (int s = 0; s < N; s++) {
                double *a = gates + ((int64_t)s * T + t) * 4 * H;
                for (int j = 0; j < 4 * H && t > 0; j++)
                    for (int kk = 0; kk < H; kk++) a[j] += hd[s * H + kk] * wh[(int64_t)j * H + kk];
                for (int j = 0; j < H; j++) {
                    float ig = sigm((float)a[j]), fg = sigm((float)a[H + j]), gg = tanhf((float)a[2 * H + j]),
                          og = sigm((float)a[3 * H + j]);
                    c[s * H + j] = (t ? fg * c[s * H + j] : 0.0f) + ig * gg;
                    h[((int64_t)s * T + t) * H + j] = og * tanhf(c[s * H + j]);
                }
            }
        }
        memcpy(in, h, sizeof(float) * N * T * H);
        free(xd); free(wi); free(wh);
    }
    memcpy(y, h, sizeof(float) * N * T * H);
    free(in); free(h); free(c); free(gates); free(hd);
}

TEST(dynamic_lstm_matches_float_simulation) {
    static const struct { int n, t, in, hidden, layers, bias; } cases[] = {
        {1, 28, 28, 128, 1, 1}, {4, 28, 28, 128, 1, 1}, {3, 5, 7, 6, 2, 1}, {2, 4, 9, 5, 3, 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        int64_t ins[2] = {cases[ci].t, cases[ci].in};
        ql_graph *g = ql_graph_new(2, ins), *d = NULL;
        ql_attrs a;
        ql_attrs_default(&a);
        a.out_ch = cases[ci].hidden;
        a.layers = cases[ci].layers;
        a.bias = cases[ci].bias;
        int zero = 0;
        CHECK(ql_graph_add(g, "lstm", QL_OP_LSTM, &zero, 1, &a) == 1);
        ql_graph_init_params(g, ql_rng_global());
        CHECK_OK(ql_quantize_dynamic(g, NULL, QL_DTYPE_S8, &d));
        if (!d) { ql_graph_free(g); continue; }
        CHECK(d->nodes[1].op == QL_OP_DLSTM);
        CHECK(ql_graph_param(d, "lstm.weight_ih_l0_scale") && ql_graph_param(d, "lstm.weight_hh_l0_zero_point"));
        CHECK(ql_graph_param(d, "lstm.weight_hh_l0")->value->dtype == QL_DTYPE_S8);
        int N = cases[ci].n, T = cases[ci].t, H = cases[ci].hidden;
        ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 3, (int64_t[]){N, T, cases[ci].in});
        fill(x, -1.5f, 2.5f);
        const ql_tensor *yd, *yf;
        CHECK_OK(ql_graph_forward(d, x, &yd, 0));
        float *sim = malloc(sizeof(float) * N * T * H), *ydc = malloc(sizeof(float) * N * T * H);
        memcpy(ydc, ql_f32(yd), sizeof(float) * N * T * H);
        dlstm_sim(&g->nodes[1], N, T, ql_f32(x), sim);
        CHECK_OK(ql_graph_forward(g, x, &yf, 0));
        double worst = 0, vs_fp32 = 0;
        for (int64_t i = 0; i < (int64_t)N * T * H; i++) {
            worst = fmax(worst, fabs(ydc[i] - sim[i]));
            vs_fp32 = fmax(vs_fp32, fabs(ydc[i] - ql_f32(yf)[i]));
        }
        CHECK_MSG(worst < 1e-5, "case %zu: dynamic LSTM differs from its simulation by %.3g", ci, worst);
        CHECK_MSG(vs_fp32 < 0.05, "case %zu: dynamic LSTM differs from FP32 by %.3g", ci, vs_fp32);
        free(sim); free(ydc);
        ql_tensor_free(x);
        ql_graph_free(d);
        ql_graph_free(g);
    }
}

/* ---- f16 / bf16 nodes --------------------------------------------------------- */
static void round_weights(ql_graph *g, ql_dtype d) {
    for (int i = 1; i < g->nnodes; i++) {
        ql_node *n = &g->nodes[i];
        if (!n->nparams) continue;
        ql_tensor *w = n->params[0].value;
        uint16_t *h = malloc(2 * (size_t)w->numel);
        ql_f32_to_half(d, w->numel, ql_f32(w), h);
        ql_half_to_f32(d, w->numel, h, ql_f32(w));
        free(h);
    }
    g->version++;
}

static void round_bf16(ql_tensor *x) {
    for (int64_t i = 0; i < x->numel; i++) ql_f32(x)[i] = ql_bf16_to_f32_ref(ql_f32_to_bf16_ref(ql_f32(x)[i]));
}

typedef struct { int h, w, c, oc, k, stride, pad, dil, groups, act; } conv_case;

static ql_graph *one_conv(const conv_case *cc) {
    int64_t in[3] = {cc->h, cc->w, cc->c};
    ql_graph *g = ql_graph_new(3, in);
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = cc->oc;
    a.kernel[0] = a.kernel[1] = cc->k;
    a.stride[0] = a.stride[1] = cc->stride;
    a.padding[0] = a.padding[1] = cc->pad;
    a.dilation[0] = a.dilation[1] = cc->dil;
    a.groups = cc->groups;
    a.act = cc->act;
    int zero = 0;
    ql_graph_add(g, "conv", QL_OP_CONV2D, &zero, 1, &a);
    ql_graph_init_params(g, ql_rng_global());
    fill(g->nodes[1].params[1].value, -0.5f, 0.5f);
    return g;
}

// g (one conv or linear) converted to dtype d, run on every available forced
// path and batch; compared with the FP32 node on the rounded weights (and, on
// the DPBF16 paths, the input rounded to bf16). gemm: the node runs the half
// GEMM (grouped convs widen their weights for the FP32 kernel instead)
static void check_half_node(ql_graph *g, ql_dtype d, int gemm, const char *what) {
    ql_graph *h = NULL, *ref = ql_graph_clone(g);
    CHECK_OK(ql_quantize_dynamic(g, NULL, d, &h));
    if (!h || !ref) { ql_graph_free(h); ql_graph_free(ref); return; }
    CHECK(h->nodes[1].params[0].value->dtype == d && !strcmp(h->nodes[1].precision, ql_dtype_name(d)));
    round_weights(ref, d);
    for (int p = QL_HGEMM_AUTO; p < QL_HGEMM_PATHS; p++) {
        if (p != QL_HGEMM_AUTO && !ql_hgemm_path_available(d, (ql_hgemm_path)p)) continue;
        ql_hgemm_force((ql_hgemm_path)p);
        ql_graph_release(h);   /* packed state rebuilt under the forced path */
        for (int64_t batch = 1; batch <= 5; batch += 4) {
            int64_t shape[4] = {batch};
            for (int i = 0; i < g->nodes[0].out_ndim; i++) shape[i + 1] = g->nodes[0].out_shape[i];
            ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, g->nodes[0].out_ndim + 1, shape);
            fill(x, -2, 2);
            const ql_tensor *y;
            CHECK_OK(ql_graph_forward(h, x, &y, 0));
            float *yh = malloc(sizeof(float) * (size_t)y->numel);
            memcpy(yh, ql_f32(y), sizeof(float) * (size_t)y->numel);
            int64_t ny = y->numel;
            // a DPBF16 path rounds the input to bf16: the AUTO path may be one on CPUs with AVX-512 BF16
            int xr = gemm && d == QL_DTYPE_BF16 && (p == QL_HGEMM_DPBF16 || p == QL_HGEMM_DPBF16_REF ||
                                            (p == QL_HGEMM_AUTO && ql_isa_active() >= QL_ISA_AVX512 &&
                                             ql_hgemm_path_available(d, QL_HGEMM_DPBF16)));
            if (xr) round_bf16(x);
            CHECK_OK(ql_graph_forward(ref, x, &y, 0));
            double worst = 0;
            for (int64_t i = 0; i < ny; i++) worst = fmax(worst, fabs(yh[i] - ql_f32(y)[i]) / fmax(1, fabs(ql_f32(y)[i])));
            CHECK_MSG(worst < 1e-4, "%s %s path %s batch %lld: max rel error %.3g", what, ql_dtype_name(d),
                      ql_hgemm_path_name((ql_hgemm_path)p), (long long)batch, worst);
            free(yh);
            ql_tensor_free(x);
        }
    }
    ql_hgemm_force(QL_HGEMM_AUTO);
    ql_graph_free(h);
    ql_graph_free(ref);
}

TEST(dynamic_half_linear_and_conv_match_rounded_float) {
    static const conv_case convs[] = {
        {8, 8, 6, 10, 3, 1, 1, 1, 1, 0},   // 3x3, im2col
        {9, 7, 5, 12, 3, 2, 1, 1, 1, 1},   // stride 2, relu
        {6, 6, 8, 16, 1, 1, 0, 1, 1, 0},   // 1x1: a direct GEMM
        {7, 7, 4, 6, 3, 1, 2, 2, 1, 2},    // dilation 2, relu6
        {6, 6, 8, 8, 3, 1, 1, 1, 2, 0},    // grouped: widened for the FP32 kernel
        {6, 6, 8, 8, 3, 1, 1, 1, 8, 0},    // depthwise
        {1, 1, 32, 24, 3, 1, 1, 1, 1, 0},  // 3x3 on a 1x1 map: pruned to its centre tap
    };
    for (int dt = 0; dt < 2; dt++) {
        ql_dtype d = dt ? QL_DTYPE_BF16 : QL_DTYPE_F16;
        for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) {
            ql_graph *g = one_conv(&convs[i]);
            char what[32];
            snprintf(what, sizeof what, "conv case %zu", i);
            check_half_node(g, d, convs[i].groups == 1, what);
            ql_graph_free(g);
        }
        static const int lin[][3] = {{128, 10, 0}, {37, 19, 1}, {8, 3, 0}};
        for (size_t i = 0; i < sizeof lin / sizeof *lin; i++) {
            ql_graph *g = one_linear(lin[i][0], lin[i][1], lin[i][2]);
            check_half_node(g, d, 1, "linear");
            ql_graph_free(g);
        }
    }
}

TEST(dynamic_half_lstm_matches_rounded_float) {
    int64_t ins[2] = {6, 5};
    for (int dt = 0; dt < 2; dt++) {
        ql_dtype d = dt ? QL_DTYPE_BF16 : QL_DTYPE_F16;
        ql_graph *g = ql_graph_new(2, ins), *h = NULL;
        ql_attrs a;
        ql_attrs_default(&a);
        a.out_ch = 7;
        a.layers = 2;
        int zero = 0;
        ql_graph_add(g, "lstm", QL_OP_LSTM, &zero, 1, &a);
        ql_graph_init_params(g, ql_rng_global());
        CHECK_OK(ql_quantize_dynamic(g, NULL, d, &h));
        if (!h) { ql_graph_free(g); continue; }
        CHECK(h->nodes[1].op == (dt ? QL_OP_BF16LSTM : QL_OP_F16LSTM));
        CHECK(ql_graph_param(h, "lstm.weight_hh_l1")->value->dtype == d);
        CHECK(ql_graph_param(h, "lstm.bias_hh_l1")->value->dtype == QL_DTYPE_F32);
        ql_graph *ref = ql_graph_clone(g);
        for (int k = 0; k < ref->nodes[1].nparams; k++) {   // round the weights, not the biases
            ql_tensor *w = ref->nodes[1].params[k].value;
            if (!strstr(ref->nodes[1].params[k].name, "weight")) continue;
            for (int64_t i = 0; i < w->numel; i++)
                ql_f32(w)[i] = dt ? ql_bf16_to_f32_ref(ql_f32_to_bf16_ref(ql_f32(w)[i]))
                                  : ql_f16_to_f32_ref(ql_f32_to_f16_ref(ql_f32(w)[i]));
        }
        ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 3, (int64_t[]){3, 6, 5});
        fill(x, -1, 1);
        const ql_tensor *y0, *y1;
        CHECK_OK(ql_graph_forward(h, x, &y0, 0));
        float y0c[3 * 6 * 7];
        memcpy(y0c, ql_f32(y0), sizeof y0c);
        CHECK_OK(ql_graph_forward(ref, x, &y1, 0));
        CHECK(ql_test_maxrel(y0c, ql_f32(y1), 3 * 6 * 7) < 1e-6);
        ql_tensor_free(x);
        ql_graph_free(ref);
        ql_graph_free(h);
        ql_graph_free(g);
    }
}

TEST(dynamic_errors_and_files) {
    conv_case cc = {6, 6, 3, 4, 3, 1, 1, 1, 1, 0};
    ql_graph *g = one_conv(&cc), *d = (ql_graph *)1;
    int mask[2] = {0, 1};
    CHECK(ql_quantize_dynamic(g, mask, QL_DTYPE_S8, &d) == QL_EINVAL && d == NULL);
    CHECK(strstr(ql_last_error(), "node 'conv' is conv2d, which has no s8 version") != NULL);
    CHECK(ql_quantize_dynamic(g, NULL, QL_DTYPE_U8, &d) == QL_EINVAL);
    CHECK(strstr(ql_last_error(), "dtype must be s8, f16 or bf16") != NULL);
    // s8 with no mask: the conv has no s8 version, so the graph comes back as it was
    CHECK_OK(ql_quantize_dynamic(g, NULL, QL_DTYPE_S8, &d));
    CHECK(d && d->nodes[1].op == QL_OP_CONV2D);
    ql_graph_free(d);
    // f16 and bf16 weights and s8 dynamic nodes save and load with their dtypes
    int64_t ins[2] = {4, 3};
    ql_graph *l = ql_graph_new(2, ins);
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = 5;
    int zero = 0, one = 1;
    ql_graph_add(l, "lstm", QL_OP_LSTM, &zero, 1, &a);
    ql_graph_add(l, "last", QL_OP_SEQ_LAST, &one, 1, NULL);
    a.out_ch = 3;
    int two = 2;
    ql_graph_add(l, "fc", QL_OP_LINEAR, &two, 1, &a);
    ql_graph_init_params(l, ql_rng_global());
    const ql_dtype dts[3] = {QL_DTYPE_S8, QL_DTYPE_F16, QL_DTYPE_BF16};
    for (int i = 0; i < 3; i++) {
        ql_graph *q = NULL, *back = NULL;
        CHECK_OK(ql_quantize_dynamic(l, NULL, dts[i], &q));
        if (!q) continue;
        char path[64];
        snprintf(path, sizeof path, "/tmp/qlab_test_dynamic_%d.qlm", i);
        CHECK_OK(ql_model_save(q, path));
        CHECK_OK(ql_model_load(path, &back));
        remove(path);
        if (back) {
            CHECK(back->nodes[1].op == q->nodes[1].op && back->nodes[3].op == q->nodes[3].op);
            CHECK(!strcmp(back->nodes[3].precision, q->nodes[3].precision));
            CHECK(ql_graph_param(back, "fc.weight")->value->dtype == (dts[i] == QL_DTYPE_S8 ? QL_DTYPE_S8 : dts[i]));
            ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 3, (int64_t[]){2, 4, 3});
            fill(x, -1, 1);
            const ql_tensor *y0, *y1;
            float c0[6];
            CHECK_OK(ql_graph_forward(q, x, &y0, 0));
            memcpy(c0, ql_f32(y0), sizeof c0);
            CHECK_OK(ql_graph_forward(back, x, &y1, 0));
            CHECK(memcmp(c0, ql_f32(y1), sizeof c0) == 0);
            ql_tensor_free(x);
        }
        ql_graph_free(back);
        ql_graph_free(q);
    }
    ql_graph_free(l);
    ql_graph_free(g);
}
