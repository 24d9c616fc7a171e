/* conv2d: forward against a direct NHWC loop over the OIHW weight, backward
 * by central finite differences and against a direct backward loop. */
#include <stdlib.h>
#include "test.h"
#include "qlab/ops.h"
#include "qlab/cpu.h"
#include "qlab/rng.h"
#include "conv_ref.h"

static float *randn(size_t n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = ql_rng_normal(ql_rng_global());
    return p;
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
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
    float *x, *w, *b, *r, *y, *ws;   /* w is OHWI */
    size_t ny;
} conv_ctx;

static double conv_loss(conv_ctx *c) {
    ql_conv2d_forward(&c->s, c->x, c->w, c->b, c->y, c->ws);
    return dot(c->y, c->r, c->ny);
}

// max |analytic - numeric| / max |numeric| over (a subset of) p
static double fd_err(conv_ctx *c, float *p, const float *grad, size_t n) {
    const float eps = 1e-3f;
    size_t step = n > 300 ? n / 300 : 1;
    double maxdiff = 0, maxnum = 1e-6;
    for (size_t i = 0; i < n; i += step) {
        float v = p[i];
        p[i] = v + eps;
        double lp = conv_loss(c);
        p[i] = v - eps;
        double lm = conv_loss(c);
        p[i] = v;
        double num = (lp - lm) / (2.0 * eps);
        maxdiff = fmax(maxdiff, fabs(num - grad[i]));
        maxnum = fmax(maxnum, fabs(num));
    }
    return maxdiff / maxnum;
}

static float *alloc_ws(const ql_conv2d_shape *s) {
    size_t n = ql_conv2d_workspace(s);
    return n ? malloc(sizeof(float) * n) : NULL;   // exact size: ASan catches overruns
}

// forward vs reference; returns max rel error
static double check_forward(ql_conv2d_shape s, int bias) {
    if (ql_conv2d_shape_init(&s) != QL_OK) return INFINITY;
    int cg = s.c / s.groups;
    size_t nx = (size_t)s.n * s.h * s.w * s.c, nw = (size_t)s.oc * cg * s.kh * s.kw;
    size_t ny = (size_t)s.n * s.oh * s.ow * s.oc;
    float *x = randn(nx), *w = randn(nw), *b = bias ? randn(s.oc) : NULL;
    float *wp = malloc(sizeof(float) * nw), *y = malloc(sizeof(float) * ny);
    float *yr = malloc(sizeof(float) * ny), *ws = alloc_ws(&s);
    ql_conv_weight_oihw_to_ohwi(w, wp, s.oc, cg, s.kh, s.kw);
    ql_conv2d_forward(&s, x, wp, b, y, ws);
    conv_ref(&s, x, w, b, yr);
    double err = ql_test_maxrel(y, yr, (long)ny);
    free(x); free(w); free(b); free(wp); free(y); free(yr); free(ws);
    return err;
}

TEST(conv2d_forward_cases) {
    struct { ql_conv2d_shape s; int bias; const char *what; } cases[] = {
        {mk(1, 5, 5, 3, 4, 3, 3, 1, 1, 1, 1), 1, "3x3 pad 1"},
        {mk(2, 7, 6, 3, 5, 3, 3, 2, 1, 1, 1), 1, "stride 2, odd sizes, batch 2"},
        {mk(2, 9, 8, 4, 6, 3, 3, 1, 2, 2, 1), 0, "dilation 2"},
        {mk(3, 6, 7, 6, 4, 3, 2, 1, 1, 1, 2), 1, "groups 2, 3x2 kernel"},
        {mk(2, 8, 8, 6, 9, 3, 3, 2, 2, 2, 3), 1, "groups 3, stride 2, dilation 2"},
        {mk(2, 7, 5, 8, 8, 3, 3, 1, 1, 1, 8), 1, "depthwise"},
        {mk(2, 9, 8, 5, 5, 5, 5, 2, 2, 1, 5), 0, "depthwise 5x5 stride 2"},
        {mk(1, 8, 9, 4, 4, 3, 3, 1, 2, 2, 4), 1, "depthwise dilation 2"},
        {mk(2, 6, 6, 4, 8, 3, 3, 1, 1, 1, 4), 1, "channel multiplier 2 (grouped path)"},
        {mk(3, 5, 7, 6, 10, 1, 1, 1, 0, 1, 1), 1, "1x1 direct gemm"},
        {mk(2, 5, 7, 6, 4, 1, 1, 1, 0, 1, 2), 1, "1x1 grouped direct gemm"},
        {mk(2, 7, 7, 6, 10, 1, 1, 2, 0, 1, 1), 1, "1x1 stride 2 (im2col)"},
        {mk(1, 4, 4, 2, 3, 4, 4, 1, 0, 1, 1), 1, "kernel = input"},
        {mk(2, 11, 13, 3, 7, 7, 7, 2, 3, 1, 1), 1, "7x7 stride 2 stem"},
        {mk(1, 1, 1, 3, 2, 3, 3, 1, 1, 1, 1), 1, "1x1 image, 3x3 kernel, pad 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double err = check_forward(cases[i].s, cases[i].bias);
        CHECK_MSG(err < 1e-4, "forward %s: maxrel %g", cases[i].what, err);
    }
}

/* Inference by live-tap regions (conv2d_regions.c) against the direct
 * loops, to the same 1e-4 as the im2col path (float sums in another order:
 * 1-2e-5 seen); the weights cut again when their key moves; shapes where
 * regions save too little or do not apply are refused. */
TEST(conv2d_regions_vs_reference) {
    struct { ql_conv2d_shape s; int bias; const char *what; } cases[] = {
        {mk(8, 2, 2, 64, 48, 3, 3, 1, 1, 1, 1), 1, "2x2, 3x3 pad 1"},
        {mk(8, 4, 4, 32, 40, 3, 3, 1, 1, 1, 1), 0, "4x4, 9 regions"},
        {mk(9, 7, 7, 16, 24, 3, 3, 2, 1, 1, 1), 1, "7x7 -> 4x4 stride 2"},
        {mk(8, 7, 7, 24, 20, 3, 3, 1, 1, 1, 1), 1, "7x7"},
        {mk(8, 28, 28, 8, 16, 7, 7, 2, 3, 1, 1), 1, "7x7 stride 2 pad 3, 16 regions"},
        {mk(10, 5, 6, 9, 7, 5, 3, 1, 2, 1, 1), 1, "5x3 kernel, pad 2"},
        {mk(8, 3, 3, 8, 8, 3, 3, 2, 2, 1, 1), 0, "pad 2 stride 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ql_conv2d_shape s = cases[i].s;
        CHECK_OK(ql_conv2d_shape_init(&s));
        size_t nx = (size_t)s.n * s.h * s.w * s.c, nw = (size_t)s.oc * s.c * s.kh * s.kw;
        size_t ny = (size_t)s.n * s.oh * s.ow * s.oc;
        float *x = randn(nx), *w = randn(nw), *b = cases[i].bias ? randn(s.oc) : NULL;
        float *wp = malloc(sizeof(float) * nw), *y = malloc(sizeof(float) * ny), *yr = malloc(sizeof(float) * ny);
        ql_conv_weight_oihw_to_ohwi(w, wp, s.oc, s.c, s.kh, s.kw);
        ql_conv_fregions *st = NULL;
        size_t nws = ql_conv2d_regions_workspace(&st, &s);
        float *ws = nws ? malloc(sizeof(float) * nws) : NULL;   // exact size: ASan catches overruns
        CHECK_MSG(nws > 0 && ql_conv2d_regions_forward(&st, &s, x, wp, 1, b, y, ws) == 1, "%s: regions refused",
                  cases[i].what);
        conv_ref(&s, x, w, b, yr);
        CHECK_MSG(ql_test_maxrel(y, yr, (long)ny) < 1e-4, "regions %s: maxrel %g", cases[i].what,
                  ql_test_maxrel(y, yr, (long)ny));
        for (size_t j = 0; j < nw; j++) { w[j] = -w[j]; wp[j] = -wp[j]; }   /* new weights, same buffer, new key */
        CHECK(ql_conv2d_regions_forward(&st, &s, x, wp, 2, b, y, ws) == 1);
        conv_ref(&s, x, w, b, yr);
        CHECK_MSG(ql_test_maxrel(y, yr, (long)ny) < 1e-4, "regions %s, new weights", cases[i].what);
        ql_conv2d_regions_free(st);
        free(x); free(w); free(b); free(wp); free(y); free(yr); free(ws);
    }
    ql_conv2d_shape none[] = {mk(8, 24, 24, 16, 16, 3, 3, 1, 1, 1, 1), mk(8, 7, 7, 16, 16, 3, 3, 1, 1, 1, 2),
                              mk(8, 9, 9, 16, 16, 3, 3, 1, 2, 2, 1), mk(8, 7, 7, 3, 16, 3, 3, 1, 1, 1, 1),
                              mk(8, 7, 7, 16, 16, 1, 1, 1, 0, 1, 1)};
    const char *why[] = {"saves 5 %", "groups", "dilation", "3 channels", "no padding"};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        CHECK_OK(ql_conv2d_shape_init(&none[i]));
        ql_conv_fregions *st = NULL;
        CHECK_MSG(ql_conv2d_regions_workspace(&st, &none[i]) == 0, "regions taken: %s", why[i]);
        CHECK(ql_conv2d_regions_forward(&st, &none[i], NULL, NULL, 1, NULL, NULL, NULL) == 0);
        ql_conv2d_regions_free(st);
    }
}

TEST(conv2d_forward_chunked_batch) {
    // K = 3*3*64 = 576 per group: the im2col chunk holds fewer rows than the batch
    ql_conv2d_shape s = mk(5, 20, 20, 64, 16, 3, 3, 1, 1, 1, 1);
    CHECK_OK(ql_conv2d_shape_init(&s));
    size_t rows = (size_t)s.n * s.oh * s.ow, k = 576;
    CHECK(ql_conv2d_workspace(&s) < rows * k);
    CHECK(ql_conv2d_workspace(&s) % k == 0);
    CHECK(check_forward(s, 1) < 1e-4);
    ql_conv2d_shape s2 = mk(12, 30, 30, 128, 32, 3, 3, 2, 1, 2, 2);
    CHECK_OK(ql_conv2d_shape_init(&s2));
    CHECK(ql_conv2d_workspace(&s2) < (size_t)s2.n * s2.oh * s2.ow * k);
    CHECK(check_forward(s2, 0) < 1e-4);
}

TEST(conv2d_workspace_sizes) {
    ql_conv2d_shape pw = mk(64, 56, 56, 64, 256, 1, 1, 1, 0, 1, 1), dw = mk(64, 56, 56, 64, 64, 3, 3, 1, 1, 1, 64);
    ql_conv2d_shape big = mk(256, 56, 56, 64, 64, 3, 3, 1, 1, 1, 1);
    CHECK_OK(ql_conv2d_shape_init(&pw));
    CHECK_OK(ql_conv2d_shape_init(&dw));
    CHECK_OK(ql_conv2d_shape_init(&big));
    CHECK(ql_conv2d_workspace(&pw) == 0);
    CHECK(ql_conv2d_workspace(&dw) == 2 * 9 * 64);
    CHECK(ql_conv2d_workspace(&big) <= (size_t)2 << 20);   // bounded, not N*OH*OW*K
}

TEST(conv2d_shape_errors) {
    ql_conv2d_shape bad[] = {
        mk(1, 0, 5, 3, 4, 3, 3, 1, 1, 1, 1),    // empty input
        mk(1, 5, 5, 3, 4, 3, 3, 0, 1, 1, 1),    // stride 0
        mk(1, 5, 5, 3, 4, 3, 3, 1, -1, 1, 1),   // negative pad
        mk(1, 5, 5, 3, 4, 3, 3, 1, 1, 1, 2),    // groups do not divide c
        mk(1, 5, 5, 4, 3, 3, 3, 1, 1, 1, 2),    // groups do not divide oc
        mk(1, 2, 2, 3, 4, 5, 5, 1, 0, 1, 1),    // kernel larger than input
        mk(1, 5, 5, 3, 4, 3, 3, 1, 0, 3, 1),    // dilated kernel larger than input
        mk(1, 5, 5, 3, 0, 3, 3, 1, 0, 1, 1),    // no output channel
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ql_error_clear();
        CHECK_MSG(ql_conv2d_shape_init(&bad[i]) != QL_OK, "bad shape %zu accepted", i);
        CHECK(strncmp(ql_last_error(), "conv2d: ", 8) == 0);
    }
    ql_conv2d_shape s = mk(2, 7, 6, 3, 5, 3, 3, 2, 1, 1, 1);
    CHECK_OK(ql_conv2d_shape_init(&s));
    CHECK(s.oh == 4 && s.ow == 3);
}

TEST(conv2d_weight_layout_roundtrip) {
    int oc = 5, ic = 3, kh = 2, kw = 4;
    size_t n = (size_t)oc * ic * kh * kw;
    float *a = randn(n), *b = malloc(sizeof(float) * n), *c = malloc(sizeof(float) * n);
    ql_conv_weight_oihw_to_ohwi(a, b, oc, ic, kh, kw);
    // element (o,i,y,x): OIHW ((o*ic+i)*kh+y)*kw+x, OHWI ((o*kh+y)*kw+x)*ic+i
    CHECK(b[((4 * kh + 1) * kw + 2) * ic + 1] == a[((4 * ic + 1) * kh + 1) * kw + 2]);
    ql_conv_weight_ohwi_to_oihw(b, c, oc, ic, kh, kw);
    CHECK(memcmp(a, c, sizeof(float) * n) == 0);
    free(a); free(b); free(c);
}

// finite differences on x, w, b; checks dx overwrite and dw/db accumulation
static void check_backward(ql_conv2d_shape s, const char *what) {
    CHECK_OK(ql_conv2d_shape_init(&s));
    int cg = s.c / s.groups;
    size_t nx = (size_t)s.n * s.h * s.w * s.c, nw = (size_t)s.oc * cg * s.kh * s.kw;
    conv_ctx c = {.s = s, .ny = (size_t)s.n * s.oh * s.ow * s.oc};
    c.x = randn(nx); c.w = randn(nw); c.b = randn(s.oc); c.r = randn(c.ny);
    c.y = malloc(sizeof(float) * c.ny);
    c.ws = alloc_ws(&s);
    float *dx = malloc(sizeof(float) * nx), *dw = malloc(sizeof(float) * nw);
    float *db = malloc(sizeof(float) * s.oc);
    for (size_t i = 0; i < nx; i++) dx[i] = NAN;          // must be overwritten
    for (size_t i = 0; i < nw; i++) dw[i] = 0.5f;         // must be accumulated onto
    for (int i = 0; i < s.oc; i++) db[i] = 0.5f;
    ql_conv2d_backward(&s, c.x, c.w, c.r, dx, dw, db, c.ws);
    for (size_t i = 0; i < nw; i++) dw[i] -= 0.5f;
    for (int i = 0; i < s.oc; i++) db[i] -= 0.5f;
    double ex = fd_err(&c, c.x, dx, nx), ew = fd_err(&c, c.w, dw, nw), eb = fd_err(&c, c.b, db, s.oc);
    CHECK_MSG(ex < 1e-2 && ew < 1e-2 && eb < 1e-2, "backward %s: dx %g dw %g db %g", what, ex, ew, eb);
    // NULL skips: dx alone must equal the full call's dx
    float *dx2 = malloc(sizeof(float) * nx);
    ql_conv2d_backward(&s, c.x, c.w, c.r, dx2, NULL, NULL, c.ws);
    CHECK(memcmp(dx, dx2, sizeof(float) * nx) == 0);
    free(c.x); free(c.w); free(c.b); free(c.r); free(c.y); free(c.ws);
    free(dx); free(dw); free(db); free(dx2);
}

TEST(conv2d_backward_finite_differences) {
    check_backward(mk(2, 5, 6, 3, 4, 3, 3, 1, 1, 1, 1), "3x3 pad 1");
    check_backward(mk(2, 7, 6, 3, 4, 3, 3, 2, 1, 1, 1), "stride 2");
    check_backward(mk(1, 7, 8, 4, 4, 3, 3, 1, 2, 2, 2), "dilation 2 groups 2");
    check_backward(mk(2, 6, 5, 6, 6, 3, 3, 2, 1, 1, 6), "depthwise stride 2");
    check_backward(mk(1, 7, 7, 3, 3, 3, 3, 1, 2, 2, 3), "depthwise dilation 2");
    check_backward(mk(2, 4, 5, 6, 4, 1, 1, 1, 0, 1, 1), "1x1 direct");
    check_backward(mk(2, 4, 5, 6, 4, 1, 1, 1, 0, 1, 2), "1x1 grouped direct");
    check_backward(mk(2, 5, 5, 4, 3, 1, 1, 2, 0, 1, 1), "1x1 stride 2");
    check_backward(mk(1, 6, 6, 2, 4, 3, 3, 1, 1, 1, 2), "groups 2 (multiplier 2)");
}

// big batch: chunked backward against the direct backward loop
TEST(conv2d_backward_chunked_vs_reference) {
    ql_conv2d_shape cases[] = {mk(5, 20, 20, 64, 16, 3, 3, 1, 1, 1, 1),
                               mk(12, 30, 30, 128, 8, 3, 3, 2, 1, 2, 2),
                               mk(4, 24, 23, 32, 32, 3, 3, 2, 1, 1, 32)};   // threaded depthwise
    for (int t = 0; t < 3; t++) {
        ql_conv2d_shape s = cases[t];
        CHECK_OK(ql_conv2d_shape_init(&s));
        int cg = s.c / s.groups;
        size_t nx = (size_t)s.n * s.h * s.w * s.c, nw = (size_t)s.oc * cg * s.kh * s.kw;
        size_t ny = (size_t)s.n * s.oh * s.ow * s.oc;
        CHECK(ql_conv2d_workspace(&s) < (size_t)s.n * s.oh * s.ow * cg * 9 || cg == 1);
        float *x = randn(nx), *w = randn(nw), *dy = randn(ny), *wp = malloc(sizeof(float) * nw);
        float *dx = malloc(sizeof(float) * nx), *dw = calloc(nw, sizeof(float));
        float *db = calloc(s.oc, sizeof(float)), *ws = alloc_ws(&s);
        float *rdx = malloc(sizeof(float) * nx), *rdw = malloc(sizeof(float) * nw);
        float *rdb = malloc(sizeof(float) * s.oc), *dwo = malloc(sizeof(float) * nw);
        ql_conv_weight_oihw_to_ohwi(w, wp, s.oc, cg, s.kh, s.kw);
        float *y = malloc(sizeof(float) * ny), *yr = malloc(sizeof(float) * ny);
        ql_conv2d_forward(&s, x, wp, NULL, y, ws);
        conv_ref(&s, x, w, NULL, yr);
        CHECK_MSG(ql_test_maxrel(y, yr, (long)ny) < 1e-4, "case %d forward", t);
        free(y); free(yr);
        ql_conv2d_backward(&s, x, wp, dy, dx, dw, db, ws);
        ql_conv_weight_ohwi_to_oihw(dw, dwo, s.oc, cg, s.kh, s.kw);
        conv_ref_backward(&s, x, w, dy, rdx, rdw, rdb);
        CHECK_MSG(ql_test_maxrel(dx, rdx, (long)nx) < 1e-4, "case %d dx", t);
        CHECK_MSG(ql_test_maxrel(dwo, rdw, (long)nw) < 1e-3, "case %d dw", t);
        CHECK_MSG(ql_test_maxrel(db, rdb, s.oc) < 1e-3, "case %d db", t);
        free(x); free(w); free(dy); free(wp); free(dx); free(dw); free(db); free(ws);
        free(rdx); free(rdw); free(rdb); free(dwo);
    }
}

/* ---- depthwise fast paths -------------------------------------------------------- */

// one depthwise case under the active ISA: y, dx, dw (OHWI), db
typedef struct { float *y, *dx, *dw, *db; } dw_out;

static void dw_run(const ql_conv2d_shape *s, const float *x, const float *wp, const float *b,
                   const float *dy, float *ws, dw_out *o) {
    size_t nw = (size_t)s->oc * s->kh * s->kw;
    ql_conv2d_forward(s, x, wp, b, o->y, ws);
    memset(o->dw, 0, sizeof(float) * nw);
    memset(o->db, 0, sizeof(float) * s->oc);
    ql_conv2d_backward(s, x, wp, dy, o->dx, o->dw, o->db, ws);
}

// every case against the direct loops, and the generic and AVX2 kernels give the same bits
TEST(conv2d_depthwise_paths_vs_reference) {
    struct { ql_conv2d_shape s; const char *what; } cases[] = {
        {mk(2, 9, 10, 32, 32, 3, 3, 1, 1, 1, 32), "3x3 s1, two channel blocks"},
        {mk(2, 9, 10, 48, 48, 3, 3, 2, 1, 1, 48), "3x3 s2"},
        {mk(3, 8, 7, 21, 21, 3, 3, 1, 1, 1, 21), "3x3 s1, 16 + 5 tail channels"},
        {mk(2, 7, 9, 13, 13, 3, 3, 2, 1, 1, 13), "3x3 s2, tail only"},
        {mk(1, 6, 6, 40, 40, 3, 3, 2, 0, 1, 40), "3x3 s2 no pad"},
        {mk(2, 4, 4, 16, 16, 3, 3, 1, 1, 1, 16), "4x4 image (mostly edges)"},
        {mk(1, 2, 2, 24, 24, 3, 3, 1, 1, 1, 24), "2x2 image"},
        {mk(2, 1, 1, 17, 17, 3, 3, 1, 1, 1, 17), "1x1 image, pad 1"},
        {mk(1, 3, 1, 16, 16, 3, 3, 1, 2, 1, 16), "width 1, pad 2: taps right of the image"},
        {mk(2, 11, 9, 18, 18, 5, 5, 2, 2, 1, 18), "5x5 s2"},
        {mk(1, 10, 11, 20, 20, 3, 3, 1, 2, 2, 20), "dilation 2"},
        {mk(1, 12, 12, 16, 16, 3, 3, 3, 1, 1, 16), "stride 3"},
        {mk(1, 9, 9, 16, 16, 3, 3, 2, 2, 2, 16), "stride 2 dilation 2"},
        {mk(2, 8, 9, 16, 16, 3, 2, 1, 1, 1, 16), "3x2 kernel"},
        {mk(8, 16, 16, 64, 64, 3, 3, 1, 1, 1, 64), "threaded s1"},
        {mk(8, 15, 16, 96, 96, 3, 3, 2, 1, 1, 96), "threaded s2"},
    };
    ql_isa saved = ql_isa_active();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ql_conv2d_shape s = cases[i].s;
        CHECK_OK(ql_conv2d_shape_init(&s));
        size_t nx = (size_t)s.n * s.h * s.w * s.c, nw = (size_t)s.oc * s.kh * s.kw;
        size_t ny = (size_t)s.n * s.oh * s.ow * s.oc;
        float *x = randn(nx), *w = randn(nw), *b = randn(s.oc), *dy = randn(ny);
        float *wp = malloc(sizeof(float) * nw), *ws = alloc_ws(&s);
        float *yr = malloc(sizeof(float) * ny), *rdx = malloc(sizeof(float) * nx);
        float *rdw = malloc(sizeof(float) * nw), *rdb = malloc(sizeof(float) * s.oc);
        float *dwo = malloc(sizeof(float) * nw);
        ql_conv_weight_oihw_to_ohwi(w, wp, s.oc, 1, s.kh, s.kw);
        conv_ref(&s, x, w, b, yr);
        conv_ref_backward(&s, x, w, dy, rdx, rdw, rdb);
        dw_out o[2];
        for (int isa = 0; isa < 2; isa++) {   // generic, then the best the CPU has
            o[isa].y = malloc(sizeof(float) * ny); o[isa].dx = malloc(sizeof(float) * nx);
            o[isa].dw = malloc(sizeof(float) * nw); o[isa].db = malloc(sizeof(float) * s.oc);
            ql_isa_force(isa ? ql_isa_best() : QL_ISA_SCALAR);
            dw_run(&s, x, wp, b, dy, ws, &o[isa]);
            ql_conv_weight_ohwi_to_oihw(o[isa].dw, dwo, s.oc, 1, s.kh, s.kw);
            CHECK_MSG(ql_test_maxrel(o[isa].y, yr, (long)ny) < 1e-5, "%s (isa %d): y", cases[i].what, isa);
            CHECK_MSG(ql_test_maxrel(o[isa].dx, rdx, (long)nx) < 1e-5, "%s (isa %d): dx", cases[i].what, isa);
            CHECK_MSG(ql_test_maxrel(dwo, rdw, (long)nw) < 1e-4, "%s (isa %d): dw", cases[i].what, isa);
            CHECK_MSG(ql_test_maxrel(o[isa].db, rdb, s.oc) < 1e-4, "%s (isa %d): db", cases[i].what, isa);
        }
        // same operations in the same order per channel: identical bits
        CHECK_MSG(memcmp(o[0].y, o[1].y, sizeof(float) * ny) == 0 &&
                  memcmp(o[0].dx, o[1].dx, sizeof(float) * nx) == 0 &&
                  memcmp(o[0].dw, o[1].dw, sizeof(float) * nw) == 0, "%s: ISAs differ", cases[i].what);
        for (int isa = 0; isa < 2; isa++) { free(o[isa].y); free(o[isa].dx); free(o[isa].dw); free(o[isa].db); }
        free(x); free(w); free(b); free(dy); free(wp); free(ws); free(yr); free(rdx); free(rdw);
        free(rdb); free(dwo);
    }
    ql_isa_force(saved);
}
