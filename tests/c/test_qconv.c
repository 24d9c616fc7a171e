/* Quantized conv / linear / add / pools / quantize against float
 * simulations written here (dequantize, compute in double, requantize):
 * within one LSB. Every ISA available on the CPU is run, and the ISA paths
 * must agree bit for bit with each other (they all equal the scalar code). */
#include <stdint.h>
#include <stdlib.h>
#include <omp.h>
#include "test.h"
#include "qlab/ops.h"
#include "qlab/qops.h"
#include "qlab/rng.h"
#include "qops/qops_internal.h"

static uint32_t rnd(uint32_t n) { return (uint32_t)ql_rng_below(ql_rng_global(), n); }
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)ql_rng_uniform(ql_rng_global()); }

static uint8_t *rand_u8(size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd(256);
    return p;
}

// clamp(round(v / s) + z, lo, hi) in double: the simulation's quantizer
static int quant_sim(double v, double s, int z, int lo, int hi) {
    double q = nearbyint(v / s) + z;
    return q < lo ? lo : q > hi ? hi : (int)q;
}

static double act_sim(int relu, double v) {
    if (relu && v < 0) v = 0;
    if (relu == 2 && v > 6) v = 6;
    return v;
}

static ql_conv2d_shape mk(int n, int h, int w, int c, int oc, int kh, int kw, int st, int pad,
                          int dil, int groups) {
    ql_conv2d_shape s = {.n = n, .h = h, .w = w, .c = c, .oc = oc, .kh = kh, .kw = kw,
                         .sh = st, .sw = st, .ph = pad, .pw = pad, .dh = dil, .dw = dil,
                         .groups = groups};
    return s;
}

typedef struct {
    ql_conv2d_shape s;
    int bias, relu, f32;
    int32_t x_zero, y_zero;   // y_zero < 0: fitted to the output range
    const char *what;
} qcase;

// real-valued conv of the dequantized input and weights: x (N,H,W,C), w OHWI
static void conv_sim(const ql_conv2d_shape *s, const uint8_t *x, float xs, int xz, const int8_t *w,
                     const float *ws, const float *b, double *y) {
    int cg = s->c / s->groups, ocg = s->oc / s->groups;
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int o = 0; o < s->oc; o++) {
                    double acc = 0;
                    int g = o / ocg;
                    for (int ki = 0; ki < s->kh; ki++)
                        for (int kj = 0; kj < s->kw; kj++) {
                            int ih = oh * s->sh - s->ph + ki * s->dh, iw = ow * s->sw - s->pw + kj * s->dw;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                            const uint8_t *xp = x + (((size_t)n * s->h + ih) * s->w + iw) * s->c + g * cg;
                            const int8_t *wp = w + (((size_t)o * s->kh + ki) * s->kw + kj) * cg;
                            for (int ci = 0; ci < cg; ci++) acc += (double)(xp[ci] - xz) * wp[ci];
                        }
                    y[(((size_t)n * s->oh + oh) * s->ow + ow) * s->oc + o] =
                        acc * xs * ws[o] + (b ? b[o] : 0.0);
                }
}

// one conv case on every ISA; returns the number of failed checks
static int run_qconv(qcase q) {
    int fails = 0;
    ql_conv2d_shape s = q.s;
    if (ql_conv2d_shape_init(&s) != QL_OK) return 1;
    int cg = s.c / s.groups;
    size_t nx = (size_t)s.n * s.h * s.w * s.c, nw = (size_t)s.oc * s.kh * s.kw * cg;
    size_t ny = (size_t)s.n * s.oh * s.ow * s.oc;
    uint8_t *x = rand_u8(nx);
    if (q.x_zero <= 127 && rnd(2))   // 7-bit activations half the time (the fast AVX2 path)
        for (size_t i = 0; i < nx; i++) x[i] &= 127;
    int8_t *w = malloc(nw);
    float *ws = malloc(sizeof(float) * s.oc), *b = malloc(sizeof(float) * s.oc);
    double *yr = malloc(sizeof(double) * ny);
    for (size_t i = 0; i < nw; i++) w[i] = (int8_t)(rnd(255) - 127);
    for (int o = 0; o < s.oc; o++) { ws[o] = rndf(0.004f, 0.02f); b[o] = rndf(-2, 2); }
    float xs = 0.02f;
    conv_sim(&s, x, xs, q.x_zero, w, ws, q.bias ? b : NULL, yr);
    double lo = 0, hi = 0;
    for (size_t i = 0; i < ny; i++) { lo = fmin(lo, yr[i]); hi = fmax(hi, yr[i]); }
    float ys = (float)((hi - lo) / 255.0);
    if (!(ys > 0)) ys = 1;
    int yz = q.y_zero >= 0 ? q.y_zero : quant_sim(-lo, ys, 0, 0, 255);
    ql_qconv_params p = {.w = w, .w_scale = ws, .bias = q.bias ? b : NULL, .x_scale = xs, .x_zero = q.x_zero,
                         .y_scale = ys, .y_zero = yz, .relu = q.relu, .f32_out = q.f32};
    size_t es = q.f32 ? 4 : 1;
    void *first = NULL;
    // x_qmax 0: packed for 8-bit inputs; 127: for 7-bit ones (AVX2 maddubs), exact on any codes
    for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best(); isa++) {
        for (int xq = 0; xq <= 127; xq += 127)
        for (int th = 1; th <= 3; th++) {   /* whole images per thread, unevenly at 2 and 3 */
            p.x_qmax = xq;
            ql_qconv *c = ql_qconv_new(&s, &p, (ql_isa)isa);
            if (!c) { fprintf(stderr, "  %s: %s\n", q.what, ql_last_error()); fails++; break; }
            int th0 = omp_get_max_threads();
            omp_set_num_threads(th);
            size_t wsb = ql_qconv_workspace(c, s.n);
            /* at 2 threads a larger buffer than needed, as a graph's scratch shared by many convs */
            size_t wsn = th == 2 && wsb ? 2 * wsb + 192 : wsb;
            void *wsp = wsn ? malloc(wsn) : NULL, *y = malloc(ny * es);
            if (ql_qconv_forward(c, s.n, x, y, wsp, wsn) != QL_OK) {
                fprintf(stderr, "  %s: %s\n", q.what, ql_last_error());
                fails++;
            }
            if (wsb && ql_qconv_forward(c, s.n, x, y, wsp, wsb - 1) != QL_EINVAL) fails++;   /* too small */
            omp_set_num_threads(th0);
            long bad = 0;
            double worst = 0;
            for (size_t i = 0; i < ny; i++) {
                double v = act_sim(q.relu, yr[i]), d;
                if (q.f32) d = fabs(((float *)y)[i] - v) / (1e-5 * (1 + fabs(v)));   // in units of the tolerance
                else d = abs(((uint8_t *)y)[i] - quant_sim(v, ys, yz, 0, 255));
                if (d > 1) bad++;
                worst = fmax(worst, d);
            }
            if (bad) {
                fails++;
                fprintf(stderr, "  %s (%s): %ld of %zu outputs off by more than 1 LSB (worst %g)\n",
                        q.what, ql_isa_name((ql_isa)isa), bad, ny, worst);
            }
            if (!first) first = y;
            else {
                if (memcmp(first, y, ny * es) != 0) {
                    fails++;
                    fprintf(stderr, "  %s: %s differs from scalar\n", q.what, ql_isa_name((ql_isa)isa));
                }
                free(y);
            }
            free(wsp);
            ql_qconv_free(c);
        }
    }
    free(first); free(x); free(w); free(ws); free(b); free(yr);
    return fails;
}

TEST(qconv_geometries_match_float_simulation) {
    qcase cases[] = {
        {mk(1, 5, 5, 3, 4, 3, 3, 1, 1, 1, 1), 1, 0, 0, 128, -1, "3x3 pad 1"},
        {mk(2, 7, 6, 3, 5, 3, 3, 2, 1, 1, 1), 1, 0, 0, 0, -1, "stride 2, odd sizes, batch 2"},
        {mk(2, 9, 8, 4, 6, 3, 3, 1, 2, 2, 1), 0, 0, 0, 255, -1, "dilation 2"},
        {mk(3, 6, 7, 6, 4, 3, 2, 1, 1, 1, 2), 1, 0, 0, 17, -1, "groups 2, 3x2 kernel"},
        {mk(2, 8, 8, 6, 9, 3, 3, 2, 2, 2, 3), 1, 1, 0, 128, -1, "groups 3, stride 2, dilation 2, relu"},
        {mk(2, 7, 5, 8, 8, 3, 3, 1, 1, 1, 8), 1, 0, 0, 128, -1, "depthwise 3x3"},
        {mk(2, 9, 8, 45, 45, 3, 3, 2, 1, 1, 45), 1, 1, 0, 0, -1, "depthwise 3x3 stride 2, 45 channels, relu"},
        {mk(1, 6, 7, 77, 77, 3, 3, 1, 1, 1, 77), 0, 2, 0, 255, -1, "depthwise 77 channels, relu6"},
        {mk(2, 9, 8, 5, 5, 5, 5, 2, 2, 1, 5), 0, 0, 0, 128, -1, "depthwise 5x5 stride 2"},
        {mk(2, 9, 8, 48, 48, 5, 5, 2, 2, 1, 48), 1, 1, 0, 200, -1, "depthwise 5x5 stride 2, 48 channels (13 tap pairs)"},
        {mk(1, 5, 6, 32, 32, 3, 3, 1, 2, 1, 32), 0, 0, 1, 255, -1, "depthwise pad 2, f32 out, x_zero 255"},
        {mk(2, 6, 7, 48, 48, 3, 3, 1, 1, 1, 48), 1, 2, 0, 90, -1, "depthwise 3x3, 48 channels (32 + 16 blocks), relu6"},
        {mk(1, 5, 6, 64, 64, 3, 3, 2, 2, 1, 64), 1, 0, 0, 255, -1, "depthwise 3x3 pad 2 stride 2, 64 channels, x_zero 255"},
        {mk(1, 8, 9, 36, 36, 3, 3, 1, 2, 2, 36), 1, 0, 1, 3, -1, "depthwise dilation 2, f32 out"},
        {mk(2, 6, 6, 4, 8, 3, 3, 1, 1, 1, 4), 1, 0, 0, 128, -1, "channel multiplier 2 (grouped path)"},
        {mk(3, 5, 7, 6, 10, 1, 1, 1, 0, 1, 1), 1, 0, 0, 128, -1, "1x1 direct gemm"},
        {mk(2, 5, 7, 6, 4, 1, 1, 1, 0, 1, 2), 1, 1, 0, 255, -1, "1x1 grouped direct gemm, relu"},
        {mk(2, 7, 7, 6, 10, 1, 1, 2, 0, 1, 1), 1, 0, 0, 0, -1, "1x1 stride 2 (im2col)"},
        {mk(1, 4, 4, 2, 3, 4, 4, 1, 0, 1, 1), 1, 0, 0, 128, -1, "kernel = input"},
        {mk(2, 11, 13, 3, 7, 7, 7, 2, 3, 1, 1), 1, 1, 0, 128, -1, "7x7 stride 2 stem, relu"},
        {mk(1, 1, 1, 3, 2, 3, 3, 1, 1, 1, 1), 1, 0, 0, 128, -1, "1x1 image, 3x3 kernel, pad 1"},
        {mk(1, 7, 7, 64, 64, 3, 3, 1, 1, 1, 1), 1, 1, 0, 128, -1, "resnet 3x3 64->64, 7x7, batch 1"},
        {mk(2, 8, 8, 32, 48, 3, 3, 2, 1, 1, 1), 1, 2, 0, 0, -1, "3x3 stride 2 32->48, relu6"},
        {mk(2, 7, 7, 40, 33, 3, 3, 1, 1, 1, 1), 1, 0, 1, 128, -1, "f32 out"},
        {mk(2, 7, 7, 40, 33, 3, 3, 1, 1, 1, 1), 1, 1, 1, 128, -1, "f32 out, relu"},
        {mk(2, 7, 7, 40, 33, 1, 1, 1, 0, 1, 1), 0, 2, 1, 0, -1, "1x1 f32 out, relu6"},
        {mk(3, 5, 5, 16, 24, 3, 3, 1, 1, 1, 1), 1, 0, 0, 128, 0, "y_zero 0 (clamps below)"},
        {mk(3, 5, 5, 16, 24, 3, 3, 1, 1, 1, 1), 1, 0, 0, 128, 255, "y_zero 255 (clamps above)"},
        {mk(3, 5, 5, 16, 24, 3, 3, 1, 1, 1, 1), 1, 1, 0, 255, 128, "y_zero 128, relu"},
        {mk(3, 9, 7, 32, 32, 3, 3, 1, 1, 1, 32), 1, 2, 0, 128, -1, "depthwise 3x3, 32 channels, rows of 7 x 32 (flat rows, a tail)"},
        {mk(2, 6, 5, 144, 144, 3, 3, 1, 1, 1, 144), 1, 0, 0, 200, -1, "depthwise 3x3, 144 channels (9 patterns)"},
        {mk(3, 5, 9, 16, 16, 3, 3, 1, 0, 1, 16), 0, 1, 0, 255, 7, "depthwise 3x3 unpadded, 16 channels, x_zero 255"},
        {mk(1, 4, 3, 96, 96, 3, 3, 1, 1, 1, 96), 1, 0, 0, 0, 250, "depthwise 3x3, 96 channels (3 patterns), y_zero 250"},
        {mk(2, 9, 8, 48, 48, 3, 3, 2, 1, 1, 48), 1, 2, 0, 128, -1, "depthwise 3x3 stride 2, 48 channels (even / odd planes)"},
        {mk(3, 8, 7, 96, 96, 3, 3, 2, 0, 1, 96), 0, 0, 0, 255, -1, "depthwise 3x3 stride 2 unpadded, odd width, 96 channels"},
        {mk(1, 14, 14, 144, 144, 3, 3, 2, 1, 1, 144), 1, 1, 0, 3, -1, "depthwise 3x3 stride 2, 14x14x144"},
        {mk(3, 12, 12, 16, 16, 3, 3, 1, 1, 1, 1), 1, 1, 0, 128, -1, "batch 3, 432 rows (images per thread)"},
        {mk(5, 14, 14, 8, 24, 3, 3, 2, 1, 1, 1), 1, 0, 0, 0, -1, "batch 5, stride 2 (images per thread)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK_MSG(run_qconv(cases[i]) == 0, "qconv %s", cases[i].what);
    ql_qconv_set_pad_budget(0);   /* again with im2col reading the unpadded input */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK_MSG(run_qconv(cases[i]) == 0, "qconv %s, unpadded im2col", cases[i].what);
    ql_qconv_set_pad_budget(8 << 20);
    ql_qconv_set_region_min_batch(1);   /* and by live-tap regions wherever they save MACs */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK_MSG(run_qconv(cases[i]) == 0, "qconv %s, by regions", cases[i].what);
    ql_qconv_set_region_min_batch(8);
}

/* Live-tap regions (qconv_regions.c) on ResNet-18's small-image shapes and
 * odd ones: the path is taken, matches the simulation, and equals the plain
 * im2col path bit for bit on every ISA, u8 and f32 out. */
TEST(qconv_regions_equal_im2col) {
    qcase cases[] = {
        {mk(8, 2, 2, 64, 48, 3, 3, 1, 1, 1, 1), 1, 1, 0, 128, -1, "2x2, 3x3 pad 1 (4 live taps of 9)"},
        {mk(8, 4, 4, 32, 40, 3, 3, 1, 1, 1, 1), 1, 0, 0, 3, -1, "4x4, 3x3 pad 1 (9 regions)"},
        {mk(9, 7, 7, 16, 24, 3, 3, 2, 1, 1, 1), 1, 2, 0, 255, -1, "7x7 -> 4x4 stride 2, relu6"},
        {mk(8, 7, 7, 24, 20, 3, 3, 1, 1, 1, 1), 0, 1, 0, 0, -1, "7x7, 3x3 pad 1, relu, no bias"},
        {mk(8, 2, 2, 40, 33, 3, 3, 1, 1, 1, 1), 1, 0, 1, 128, -1, "2x2, f32 out"},
        {mk(8, 28, 28, 8, 16, 7, 7, 2, 3, 1, 1), 1, 1, 0, 0, -1, "7x7 stride 2 pad 3 on 8 channels (16 regions)"},
        {mk(10, 5, 6, 9, 7, 5, 3, 1, 2, 1, 1), 1, 0, 0, 77, -1, "5x3 kernel, pad 2, 5x6 image"},
        {mk(8, 3, 3, 8, 8, 3, 3, 2, 2, 1, 1), 1, 0, 0, 128, -1, "pad 2 stride 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ql_conv2d_shape s = cases[i].s;
        CHECK_OK(ql_conv2d_shape_init(&s));
        size_t nw = (size_t)s.oc * s.kh * s.kw * s.c, nx = (size_t)s.n * s.h * s.w * s.c;
        size_t es = cases[i].f32 ? 4 : 1, ny = (size_t)s.n * s.oh * s.ow * s.oc * es;
        int8_t *w = malloc(nw);
        uint8_t *x = rand_u8(nx);
        float *wsc = malloc(sizeof(float) * s.oc), *b = malloc(sizeof(float) * s.oc);
        for (size_t j = 0; j < nw; j++) w[j] = (int8_t)(rnd(255) - 127);
        for (int o = 0; o < s.oc; o++) { wsc[o] = rndf(0.004f, 0.02f); b[o] = rndf(-2, 2); }
        ql_qconv_params p = {.w = w, .w_scale = wsc, .bias = b, .x_scale = 0.02f, .x_zero = cases[i].x_zero,
                             .y_scale = 0.5f, .y_zero = 100, .relu = cases[i].relu, .f32_out = cases[i].f32};
        for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best(); isa++) {
            ql_qconv *c = ql_qconv_new(&s, &p, (ql_isa)isa);
            CHECK_MSG(c && ql_qconv_uses_regions(c, s.n) && !ql_qconv_uses_regions(c, 1),
                      "%s: regions at batch %d only", cases[i].what, s.n);
            if (!c) continue;
            void *y[2];
            for (int mode = 0; mode < 2; mode++) {   /* by regions, then plain im2col */
                ql_qconv_set_region_min_batch(mode ? 0 : 8);
                size_t wsb = ql_qconv_workspace(c, s.n);
                void *wsp = wsb ? malloc(wsb) : NULL;
                y[mode] = malloc(ny);
                CHECK_OK(ql_qconv_forward(c, s.n, x, y[mode], wsp, wsb));
                free(wsp);
            }
            ql_qconv_set_region_min_batch(8);
            CHECK_MSG(memcmp(y[0], y[1], ny) == 0, "%s (%s): regions differ from im2col", cases[i].what,
                      ql_isa_name((ql_isa)isa));
            free(y[0]); free(y[1]);
            ql_qconv_free(c);
        }
        free(w); free(x); free(wsc); free(b);
        CHECK_MSG(run_qconv(cases[i]) == 0, "qconv %s, by regions", cases[i].what);
        ql_qconv_set_region_min_batch(0);
        CHECK_MSG(run_qconv(cases[i]) == 0, "qconv %s, im2col", cases[i].what);
        ql_qconv_set_region_min_batch(8);
    }
}

TEST(qconv_chunked_batch_bounded_workspace) {
    // (8*24*24) rows x 576 bytes > the 2 MB chunk: several im2col chunks
    qcase q = {mk(8, 24, 24, 64, 16, 3, 3, 1, 1, 1, 1), 1, 1, 0, 128, -1, "chunked batch"};
    ql_conv2d_shape s = q.s;
    CHECK_OK(ql_conv2d_shape_init(&s));
    int8_t w[16 * 576] = {0};
    float wsc[16];
    for (int i = 0; i < 16; i++) wsc[i] = 0.01f;
    ql_qconv_params p = {.w = w, .w_scale = wsc, .x_scale = 0.1f, .x_zero = 3, .y_scale = 0.1f};
    ql_qconv *c = ql_qconv_new(&s, &p, ql_isa_active());
    size_t rows = (size_t)s.n * s.oh * s.ow, ks = 576;   /* K = 576: a whole number of 4- and 64-byte rows */
    /* im2col chunks of whole rows, plus the padded input copy (26 x 26 x 64 per image, 64 bytes of slack, rounded to 64) */
    size_t pad1 = ((size_t)26 * 26 * 64 + 127) & ~(size_t)63;
    int th0 = omp_get_max_threads();
    for (int th = 1; th <= 2; th++) {   /* th slots, each its chunk then its images padded */
        omp_set_num_threads(th);
        size_t pad = ((size_t)(8 / th) * 26 * 26 * 64 + 127) & ~(size_t)63, wsb = ql_qconv_workspace(c, s.n);
        CHECK(wsb < rows * ks);
        CHECK(wsb % th == 0 && wsb / th > pad && (wsb / th - pad) % 64 == 0);
        CHECK(wsb / th - pad <= ((size_t)2 << 20) / th);   /* the chunks share the 2 MB budget */
        CHECK(ql_qconv_workspace(c, 1) <= (size_t)s.oh * s.ow * ks + pad1);
    }
    omp_set_num_threads(th0);
    ql_qconv_free(c);
    CHECK(run_qconv(q) == 0);
}

TEST(qconv_workspace_sizes_and_errors) {
    ql_conv2d_shape pw = mk(1, 56, 56, 64, 256, 1, 1, 1, 0, 1, 1), dw = mk(1, 56, 56, 64, 64, 3, 3, 1, 1, 1, 64);
    ql_conv2d_shape big = mk(1, 56, 56, 64, 64, 3, 3, 1, 1, 1, 1);
    static int8_t w[256 * 64 * 9];
    static float wsc[256];
    for (int i = 0; i < 256; i++) wsc[i] = 0.01f;
    ql_qconv_params p = {.w = w, .w_scale = wsc, .x_scale = 0.1f, .x_zero = 3, .y_scale = 0.1f, .y_zero = 5};
    ql_qconv *a = ql_qconv_new(&pw, &p, QL_ISA_SCALAR), *b = ql_qconv_new(&dw, &p, QL_ISA_SCALAR);
    ql_qconv *c = ql_qconv_new(&big, &p, QL_ISA_SCALAR);
    CHECK(a && b && c);
    CHECK(ql_qconv_workspace(a, 64) == 0);
    CHECK(ql_qconv_workspace(b, 64) == 0);
    CHECK(ql_qconv_workspace(c, 256) <= (size_t)2 << 20);   // bounded, not N*OH*OW*K
    CHECK(ql_qconv_workspace(c, 0) == 0);
    CHECK_OK(ql_qconv_forward(c, 0, NULL, NULL, NULL, 0));    // empty batch: nothing
    ql_qconv_free(a); ql_qconv_free(b); ql_qconv_free(c);
    ql_qconv_free(NULL);
    ql_qconv_params bad[4] = {p, p, p, p};
    bad[0].x_scale = 0;
    bad[1].y_zero = 256;
    bad[2].relu = 3;
    bad[3].w = NULL;
    for (int i = 0; i < 4; i++) {
        ql_error_clear();
        CHECK_MSG(ql_qconv_new(&big, &bad[i], QL_ISA_SCALAR) == NULL, "bad params %d accepted", i);
        CHECK(strncmp(ql_last_error(), "qconv: ", 7) == 0);
    }
    ql_conv2d_shape badshape = mk(1, 5, 5, 3, 4, 3, 3, 1, 1, 1, 2);   // groups do not divide c
    CHECK(ql_qconv_new(&badshape, &p, QL_ISA_SCALAR) == NULL);
}

TEST(qlinear_matches_float_simulation) {
    static const int shapes[][3] = {{1, 10, 512}, {7, 33, 65}, {64, 10, 512}, {3, 129, 7}};
    for (size_t t = 0; t < 4; t++)
        for (int mode = 0; mode < 4; mode++) {   // u8, u8 relu, f32, f32 relu6
            int m = shapes[t][0], n = shapes[t][1], k = shapes[t][2], f32 = mode >= 2;
            int relu = mode == 1 ? 1 : mode == 3 ? 2 : 0;
            uint8_t *x = rand_u8((size_t)m * k);
            int8_t *w = malloc((size_t)n * k);
            float *wsc = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
            double *yr = malloc(sizeof(double) * m * n);
            for (int i = 0; i < n * k; i++) w[i] = (int8_t)(rnd(255) - 127);
            for (int j = 0; j < n; j++) { wsc[j] = rndf(0.002f, 0.01f); b[j] = rndf(-1, 1); }
            float xs = 0.03f, ys = 0.05f;
            int xz = (int)rnd(256), yz = 100;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double acc = 0;
                    for (int kk = 0; kk < k; kk++) acc += (double)(x[i * k + kk] - xz) * w[j * k + kk];
                    yr[i * n + j] = act_sim(relu, acc * xs * wsc[j] + b[j]);
                }
            ql_qlinear_params p = {.w = w, .w_scale = wsc, .bias = b, .x_scale = xs, .x_zero = xz,
                                   .y_scale = ys, .y_zero = yz, .relu = relu, .f32_out = f32};
            for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best(); isa++) {
                ql_qlinear *l = ql_qlinear_new(k, n, &p, (ql_isa)isa);
                CHECK(l != NULL);
                void *y = malloc((size_t)m * n * 4);
                ql_qlinear_forward(l, m, x, y);
                long bad = 0;
                for (int i = 0; i < m * n; i++) {
                    if (f32) bad += fabs(((float *)y)[i] - yr[i]) > 1e-5 * (1 + fabs(yr[i]));
                    else bad += abs(((uint8_t *)y)[i] - quant_sim(yr[i], ys, yz, 0, 255)) > 1;
                }
                CHECK_MSG(bad == 0, "qlinear %dx%dx%d mode %d %s: %ld bad", m, n, k, mode,
                          ql_isa_name((ql_isa)isa), bad);
                free(y);
                ql_qlinear_free(l);
            }
            free(x); free(w); free(wsc); free(b); free(yr);
        }
    ql_qlinear_params p0 = {0};
    CHECK(ql_qlinear_new(4, 4, &p0, QL_ISA_SCALAR) == NULL);
}

/* ---- elementwise ops and pools: ISAs chosen through ql_isa_force ---------- */

TEST(quantize_dequantize_match_float) {
    ql_isa saved = ql_isa_active();
    const int n = 1003;   // not a multiple of 8: the vector tail
    float *x = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n);
    uint8_t *q = malloc(n), *q0 = malloc(n);
    int8_t *s8 = malloc(n);
    for (int i = 0; i < n; i++) x[i] = rndf(-8, 8);
    x[3] = 1e30f; x[4] = -1e30f;
    for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best(); isa++) {
        ql_isa_force((ql_isa)isa);
        for (int zi = 0; zi < 3; zi++) {
            int zp = zi == 0 ? 0 : zi == 1 ? 128 : 255;
            ql_quantize_u8(n, x, 0.05f, zp, 0, 255, q);
            long bad = 0;
            for (int i = 0; i < n; i++) bad += abs(q[i] - quant_sim(x[i], 0.05f, zp, 0, 255)) > 1;
            CHECK_MSG(bad == 0, "quantize_u8 zp %d %s: %ld bad", zp, ql_isa_name((ql_isa)isa), bad);
            if (isa == QL_ISA_SCALAR && zp == 128) memcpy(q0, q, n);
            if (zp == 128) {
                CHECK(memcmp(q, q0, n) == 0);   // the vector path gives the same codes
                CHECK(q[3] == 255 && q[4] == 0);
                ql_dequantize_u8(n, q, 0.05f, zp, d);
                for (int i = 0; i < n; i++)
                    if (d[i] != (float)(q[i] - zp) * 0.05f) { bad++; break; }
                CHECK_MSG(bad == 0, "dequantize_u8 %s", ql_isa_name((ql_isa)isa));
            }
        }
        ql_quantize_u8(n, x, 0.05f, 10, 20, 200, q);   // narrower clamp
        for (int i = 0; i < n; i++) CHECK(q[i] >= 20 && q[i] <= 200);
        // exact halves (scale 0.25) round to even: 0.5 -> 0, 1.5 -> 2, -2.5 -> -2
        float ties[9] = {0.125f, 0.375f, -0.625f, 0.625f, -0.125f, 0, 0, 0, 0.875f};
        uint8_t tq[9];
        ql_quantize_u8(9, ties, 0.25f, 100, 0, 255, tq);
        CHECK(tq[0] == 100 && tq[1] == 102 && tq[2] == 98 && tq[3] == 102 && tq[4] == 100 && tq[8] == 104);
    }
    ql_quantize_s8(n, x, 0.05f, 0, -127, 127, s8);
    long bad = 0;
    for (int i = 0; i < n; i++) bad += abs(s8[i] - quant_sim(x[i], 0.05f, 0, -127, 127)) > 1;
    CHECK(bad == 0);
    CHECK(s8[3] == 127 && s8[4] == -127);
    float ties[3] = {0.125f, 0.375f, -0.625f};
    ql_quantize_s8(3, ties, 0.25f, 0, -128, 127, s8);
    CHECK(s8[0] == 0 && s8[1] == 2 && s8[2] == -2);
    ql_isa_force(saved);
    free(x); free(d); free(q); free(q0); free(s8);
}

TEST(qadd_matches_float) {
    ql_isa saved = ql_isa_active();
    const int n = 70001;   // large enough for the threaded path, odd tail
    uint8_t *a = rand_u8(n), *b = rand_u8(n), *y = malloc(n), *y0 = malloc(n);
    const float sa = 0.03f, sb = 0.05f, sy = 0.07f;
    const int za = 120, zb = 7;
    for (int mode = 0; mode < 3; mode++) {   // plain, relu, relu6 bounds
        int zy = mode == 0 ? 128 : 60, qmin, qmax;
        ql_qrelu_bounds(mode, sy, zy, &qmin, &qmax);
        for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best(); isa++) {
            ql_isa_force((ql_isa)isa);
            ql_qadd_u8(n, a, sa, za, b, sb, zb, y, sy, zy, qmin, qmax);
            long bad = 0;
            for (int i = 0; i < n; i++) {
                double v = act_sim(mode, sa * (double)(a[i] - za) + sb * (double)(b[i] - zb));
                bad += abs(y[i] - quant_sim(v, sy, zy, 0, 255)) > 1;
            }
            CHECK_MSG(bad == 0, "qadd mode %d %s: %ld bad", mode, ql_isa_name((ql_isa)isa), bad);
            if (isa == QL_ISA_SCALAR) memcpy(y0, y, n);
            else CHECK_MSG(memcmp(y, y0, n) == 0, "qadd mode %d: %s differs from scalar", mode,
                           ql_isa_name((ql_isa)isa));
        }
    }
    ql_isa_force(saved);
    free(a); free(b); free(y); free(y0);
}

TEST(qrelu_bounds_values) {
    int32_t lo, hi;
    ql_qrelu_bounds(0, 0.1f, 30, &lo, &hi);
    CHECK(lo == 0 && hi == 255);
    ql_qrelu_bounds(1, 0.1f, 30, &lo, &hi);
    CHECK(lo == 30 && hi == 255);
    ql_qrelu_bounds(2, 0.1f, 30, &lo, &hi);   // 30 + 60
    CHECK(lo == 30 && hi == 90);
    ql_qrelu_bounds(2, 0.01f, 30, &lo, &hi);   // 30 + 600 -> 255
    CHECK(lo == 30 && hi == 255);
    ql_qrelu_bounds(2, 6.0f / 255.0f, 0, &lo, &hi);
    CHECK(lo == 0 && hi == 255);
}

TEST(qmaxpool_matches_float) {
    ql_isa saved = ql_isa_active();
    ql_pool2d_shape cases[] = {
        {.n = 2, .h = 9, .w = 8, .c = 70, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1},
        {.n = 1, .h = 7, .w = 7, .c = 5, .kh = 2, .kw = 2, .sh = 2, .sw = 2, .ceil_mode = 1},
        {.n = 3, .h = 6, .w = 5, .c = 33, .kh = 3, .kw = 2, .sh = 1, .sw = 1, .ph = 1, .pw = 1},
    };
    for (size_t t = 0; t < 3; t++) {
        ql_pool2d_shape s = cases[t];
        CHECK_OK(ql_pool2d_shape_init(&s));
        size_t nx = (size_t)s.n * s.h * s.w * s.c, ny = (size_t)s.n * s.oh * s.ow * s.c;
        uint8_t *x = rand_u8(nx), *y = malloc(ny), *y0 = malloc(ny);
        float *xf = malloc(sizeof(float) * nx), *yf = malloc(sizeof(float) * ny);
        for (size_t i = 0; i < nx; i++) xf[i] = 0.1f * ((float)x[i] - 17);   // dequantized
        ql_maxpool2d_forward(&s, xf, yf, NULL);
        for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best(); isa++) {
            ql_isa_force((ql_isa)isa);
            ql_qmaxpool_u8(&s, x, y, 0);   // pad 0 never wins: padding ignored, as in float
            long bad = 0;
            for (size_t i = 0; i < ny; i++) bad += y[i] != quant_sim(yf[i], 0.1f, 17, 0, 255);
            CHECK_MSG(bad == 0, "qmaxpool case %zu %s: %ld bad", t, ql_isa_name((ql_isa)isa), bad);
            if (isa == QL_ISA_SCALAR) memcpy(y0, y, ny);
            else CHECK(memcmp(y, y0, ny) == 0);
            // a pad value above every code shows up exactly where windows cover padding
            ql_qmaxpool_u8(&s, x, y, 255);
            if (s.ph) CHECK(y[0] == 255);
        }
        free(x); free(y); free(y0); free(xf); free(yf);
    }
    ql_isa_force(saved);
}

TEST(qglobal_avgpool_matches_float) {
    ql_isa saved = ql_isa_active();
    static const int shapes[][3] = {{2, 49, 512}, {3, 7, 13}, {1, 1, 300}, {4, 64, 37}};
    for (size_t t = 0; t < 4; t++) {
        int n = shapes[t][0], hw = shapes[t][1], c = shapes[t][2];
        uint8_t *x = rand_u8((size_t)n * hw * c), *y = malloc((size_t)n * c), *y0 = malloc((size_t)n * c);
        const float sx = 0.04f, sy = 0.01f;
        const int zx = 100, zy = 90;
        for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best(); isa++) {
            ql_isa_force((ql_isa)isa);
            ql_qglobal_avgpool_u8(n, hw, c, x, sx, zx, y, sy, zy, 0, 255);
            long bad = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < c; j++) {
                    double sum = 0;
                    for (int p = 0; p < hw; p++) sum += sx * (double)(x[((size_t)i * hw + p) * c + j] - zx);
                    bad += abs(y[i * c + j] - quant_sim(sum / hw, sy, zy, 0, 255)) > 1;
                }
            CHECK_MSG(bad == 0, "qglobal_avgpool %dx%dx%d %s: %ld bad", n, hw, c, ql_isa_name((ql_isa)isa), bad);
            if (isa == QL_ISA_SCALAR) memcpy(y0, y, (size_t)n * c);
            else CHECK(memcmp(y, y0, (size_t)n * c) == 0);
            // a narrowed code range (reduce_range: 0..127) clamps the same codes
            ql_qglobal_avgpool_u8(n, hw, c, x, sx, zx, y, sy, zy, 0, 127);
            long off = 0;
            for (int i = 0; i < n * c; i++) off += y[i] != (y0[i] > 127 ? 127 : y0[i]);
            CHECK_MSG(off == 0, "qglobal_avgpool qmax 127 %s: %ld off", ql_isa_name((ql_isa)isa), off);
        }
        free(x); free(y); free(y0);
    }
    ql_isa_force(saved);
}
