/* The oneDNN conv path against the direct loops: forward (bias, fused relu /
 * relu6), backward (dx overwritten, dw/db accumulated), one and two threads,
 * the weight cache (a new version is re-read, the same one is not), and a
 * plan reused across more shapes than it keeps. FP32 to 1e-5 of each
 * output's largest value. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include <stdlib.h>
#include "test.h"
#include "qlab/ops.h"
#include "qlab/rng.h"
#include "conv_ref.h"

static float *rnd(size_t n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = ql_rng_normal(ql_rng_global());
    return p;
}

static ql_conv2d_shape shp(int n, int h, int w, int c, int oc, int k, int st, int pad, int dil, int groups) {
    ql_conv2d_shape s = {.n = n, .h = h, .w = w, .c = c, .oc = oc, .kh = k, .kw = k, .sh = st, .sw = st,
                         .ph = pad, .pw = pad, .dh = dil, .dw = dil, .groups = groups};
    return s;
}

static const ql_conv2d_shape *cases(int *n) {
    static ql_conv2d_shape all[16];
    all[0] = shp(1, 28, 28, 1, 64, 3, 1, 1, 1, 1);      /* resnet18's first conv at batch 1 */
    all[1] = shp(2, 14, 14, 64, 64, 3, 1, 1, 1, 1);     /* resnet block */
    all[2] = shp(3, 14, 14, 64, 128, 3, 2, 1, 1, 1);    /* downsampling */
    all[3] = shp(2, 7, 7, 64, 128, 1, 2, 0, 1, 1);      /* 1x1 stride 2 shortcut */
    all[4] = shp(2, 7, 7, 96, 24, 1, 1, 0, 1, 1);       /* pointwise */
    all[5] = shp(2, 9, 10, 32, 32, 3, 1, 1, 1, 32);     /* depthwise */
    all[6] = shp(2, 9, 9, 48, 48, 3, 2, 1, 1, 48);      /* depthwise stride 2 */
    all[7] = shp(1, 7, 8, 4, 4, 3, 1, 2, 2, 2);         /* dilation, groups */
    all[8] = shp(2, 7, 6, 3, 5, 3, 2, 1, 1, 1);         /* odd sizes: right padding differs */
    all[9] = shp(1, 5, 5, 13, 7, 5, 2, 2, 1, 1);        /* 5x5 */
    all[10] = shp(64, 4, 4, 32, 32, 3, 1, 1, 1, 1);     /* batch 64 */
    *n = 11;
    return all;
}

/* max |a - b| / max |b|: the error against the output's own scale (an FP32
 * sum of K products carries rounding in proportion to its terms, not to 1). */
static double scaled_err_of(const float *a, const float *b, const float *scale_of, size_t n) {
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (e > d || e != e) d = e != e ? INFINITY : e;
        if (fabs(scale_of[i]) > m) m = fabs(scale_of[i]);
    }
    return d / m;
}

static double scaled_err(const float *a, const float *b, size_t n) { return scaled_err_of(a, b, b, n); }

static double act_ref(int act, double v) {
    if (act && v < 0) v = 0;
    if (act == 2 && v > 6) v = 6;
    return v;
}

static void check_forward(ql_conv2d_shape s, int act, int bias, int threads) {
    CHECK_OK(ql_conv2d_shape_init(&s));
    int cg = s.c / s.groups;
    size_t nx = (size_t)s.n * s.h * s.w * s.c, nw = (size_t)s.oc * cg * s.kh * s.kw;
    size_t ny = (size_t)s.n * s.oh * s.ow * s.oc;
    float *x = rnd(nx), *w = rnd(nw), *b = bias ? rnd(s.oc) : NULL, *wp = malloc(sizeof(float) * nw);
    float *y = malloc(sizeof(float) * ny), *yr = malloc(sizeof(float) * ny);
    for (size_t i = 0; i < nx; i++) x[i] *= 3;   /* some outputs above 6 for relu6 */
    ql_conv_weight_oihw_to_ohwi(w, wp, s.oc, cg, s.kh, s.kw);
    float *pre = malloc(sizeof(float) * ny);   /* before the activation: the scale of the sums */
    conv_ref(&s, x, w, b, pre);
    for (size_t i = 0; i < ny; i++) yr[i] = (float)act_ref(act, pre[i]);
    omp_set_num_threads(threads);
    ql_conv_plan *plan = NULL;
    CHECK(ql_conv2d_dnnl_forward(&plan, &s, 0, x, wp, 0, 1, b, act, y));
    double e = scaled_err_of(y, yr, pre, ny);
    CHECK_MSG(e < 1e-5, "dnnl forward %dx%dx%d oc %d k%d s%d g%d act %d bias %d threads %d: maxrel %g",
              s.h, s.w, s.c, s.oc, s.kh, s.sh, s.groups, act, bias, threads, e);
    /* the weight cache: same version -> same (stale) weights; a new version re-reads */
    for (size_t i = 0; i < nw; i++) wp[i] = -wp[i];
    CHECK(ql_conv2d_dnnl_forward(&plan, &s, 1, x, wp, 0, 2, b, 0, y));   /* training kind: its own slot */
    float *y2 = malloc(sizeof(float) * ny);
    CHECK(ql_conv2d_dnnl_forward(&plan, &s, 0, x, wp, 0, 3, b, 0, y2));
    for (size_t i = 0; i < ny; i++) CHECK(y[i] == y2[i]);
    /* the OIHW weight itself (w was never negated), as training passes it */
    CHECK(ql_conv2d_dnnl_forward(&plan, &s, 1, x, w, 1, 4, b, act, y2));
    e = scaled_err_of(y2, yr, pre, ny);
    CHECK_MSG(e < 1e-5, "dnnl forward OIHW %dx%dx%d oc %d g%d: maxrel %g", s.h, s.w, s.c, s.oc, s.groups, e);
    ql_conv_plan_free(plan);
    omp_set_num_threads(1);
    free(x); free(w); free(b); free(wp); free(y); free(yr); free(y2); free(pre);
}

TEST(conv2d_dnnl_forward_vs_reference) {
    if (!ql_conv2d_dnnl_available()) { printf("  (oneDNN unavailable: QLAB_FP32=blas)\n"); return; }
    int n;
    const ql_conv2d_shape *c = cases(&n);
    for (int i = 0; i < n; i++) {
        check_forward(c[i], i % 3, i % 2, 1);
        check_forward(c[i], (i + 1) % 3, 1, 2);
    }
}

static void check_backward(ql_conv2d_shape s, int threads, int oihw) {
    CHECK_OK(ql_conv2d_shape_init(&s));
    int cg = s.c / s.groups;
    size_t nx = (size_t)s.n * s.h * s.w * s.c, nw = (size_t)s.oc * cg * s.kh * s.kw;
    size_t ny = (size_t)s.n * s.oh * s.ow * s.oc;
    float *x = rnd(nx), *w = rnd(nw), *dy = rnd(ny), *wp = malloc(sizeof(float) * nw);
    float *dx = malloc(sizeof(float) * nx), *dw = malloc(sizeof(float) * nw), *db = malloc(sizeof(float) * s.oc);
    float *rdx = malloc(sizeof(float) * nx), *rdw = malloc(sizeof(float) * nw), *rdb = malloc(sizeof(float) * s.oc);
    float *dwo = malloc(sizeof(float) * nw);
    ql_conv_weight_oihw_to_ohwi(w, wp, s.oc, cg, s.kh, s.kw);
    conv_ref_backward(&s, x, w, dy, rdx, rdw, rdb);
    for (size_t i = 0; i < nx; i++) dx[i] = NAN;       /* must be overwritten */
    for (size_t i = 0; i < nw; i++) dw[i] = 0.5f;      /* must be accumulated onto */
    for (int i = 0; i < s.oc; i++) db[i] = 0.5f;
    omp_set_num_threads(threads);
    ql_conv_plan *plan = NULL;
    CHECK(ql_conv2d_dnnl_backward(&plan, &s, x, oihw ? w : wp, oihw, 1, dy, dx, dw, db));
    for (size_t i = 0; i < nw; i++) dw[i] -= 0.5f;
    for (int i = 0; i < s.oc; i++) db[i] -= 0.5f;
    if (oihw) memcpy(dwo, dw, sizeof(float) * nw);
    else ql_conv_weight_ohwi_to_oihw(dw, dwo, s.oc, cg, s.kh, s.kw);
    double ex = scaled_err(dx, rdx, nx), ew = scaled_err(dwo, rdw, nw);
    double eb = scaled_err(db, rdb, s.oc);
    /* dw and db sum over N*OH*OW terms: 0.5 + g carries 2^-24 * 0.5 of rounding per element */
    CHECK_MSG(ex < 1e-5 && ew < 1e-5 && eb < 1e-5, "dnnl backward %dx%dx%d oc %d k%d s%d g%d threads %d oihw %d: dx %g dw %g db %g",
              s.h, s.w, s.c, s.oc, s.kh, s.sh, s.groups, threads, oihw, ex, ew, eb);
    /* dx alone */
    float *dx2 = malloc(sizeof(float) * nx);
    CHECK(ql_conv2d_dnnl_backward(&plan, &s, x, oihw ? w : wp, oihw, 1, dy, dx2, NULL, NULL));
    CHECK(scaled_err(dx2, rdx, nx) < 1e-5);
    ql_conv_plan_free(plan);
    omp_set_num_threads(1);
    free(x); free(w); free(dy); free(wp); free(dx); free(dw); free(db); free(rdx); free(rdw); free(rdb);
    free(dwo); free(dx2);
}

TEST(conv2d_dnnl_backward_vs_reference) {
    if (!ql_conv2d_dnnl_available()) return;
    int n;
    const ql_conv2d_shape *c = cases(&n);
    for (int i = 0; i < n; i++) {
        check_backward(c[i], 1 + i % 2, 0);
        check_backward(c[i], 2 - i % 2, 1);
    }
}

/* One plan through more shapes than it keeps, twice: evicted slots rebuild right. */
TEST(conv2d_dnnl_plan_eviction) {
    if (!ql_conv2d_dnnl_available()) return;
    int nc = 9, c = 8, oc = 16;
    size_t nw = (size_t)oc * 9 * c;
    float *w = rnd(nw), *wp = malloc(sizeof(float) * nw), *b = rnd(oc);
    ql_conv_weight_oihw_to_ohwi(w, wp, oc, c, 3, 3);
    ql_conv_plan *plan = NULL;
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < nc; k++) {
            ql_conv2d_shape s = shp(1 + k, 6, 6, c, oc, 3, 1, 1, 1, 1);
            CHECK_OK(ql_conv2d_shape_init(&s));
            size_t nx = (size_t)s.n * 36 * c, ny = (size_t)s.n * 36 * oc;
            float *x = rnd(nx), *y = malloc(sizeof(float) * ny), *yr = malloc(sizeof(float) * ny);
            conv_ref(&s, x, w, b, yr);
            CHECK(ql_conv2d_dnnl_forward(&plan, &s, 0, x, wp, 0, 7, b, 0, y));
            CHECK_MSG(scaled_err(y, yr, ny) < 1e-5, "round %d batch %d", round, s.n);
            free(x); free(y); free(yr);
        }
    ql_conv_plan_free(plan);
    free(w); free(wp); free(b);
}
