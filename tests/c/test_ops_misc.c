/* pools, relu/relu6, linear, add, flatten, seq_last, softmax and loss:
 * forward against direct references, backward by finite differences. */
#include <stdlib.h>
#include "test.h"
#include "qlab/cpu.h"
#include "qlab/ops.h"
#include "qlab/rng.h"

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

/* Finite differences: max |analytic - numeric| / max |numeric| over p. */
typedef double (*loss_fn)(void *ctx);
static double fd_err(loss_fn f, void *ctx, float *p, const float *grad, size_t n) {
    const float eps = 1e-3f;
    double maxdiff = 0, maxnum = 1e-6;
    for (size_t i = 0; i < n; i++) {
        float v = p[i];
        p[i] = v + eps; double lp = f(ctx);
        p[i] = v - eps; double lm = f(ctx);
        p[i] = v;
        double num = (lp - lm) / (2.0 * eps);
        maxdiff = fmax(maxdiff, fabs(num - grad[i]));
        maxnum = fmax(maxnum, fabs(num));
    }
    return maxdiff / maxnum;
}

/* ---- pooling ---------------------------------------------------------------- */

static ql_pool2d_shape pmk(int n, int h, int w, int c, int k, int st, int pad, int ceil, int cip) {
    ql_pool2d_shape s = {.n = n, .h = h, .w = w, .c = c, .kh = k, .kw = k, .sh = st, .sw = st,
                         .ph = pad, .pw = pad, .ceil_mode = ceil, .count_include_pad = cip};
    return s;
}

// distinct values spaced 0.05 apart, shuffled: no ties, no max switch under eps
static float *distinct(size_t n) {
    int64_t *perm = malloc(sizeof(int64_t) * n);
    for (size_t i = 0; i < n; i++) perm[i] = (int64_t)i;
    ql_rng_shuffle_i64(ql_rng_global(), perm, (int64_t)n);
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = 0.05f * (float)perm[i] - 0.025f * (float)n;
    free(perm);
    return p;
}

// reference pools: walk the padded window; avg counts pads only inside [-p, in+p)
static void pool_ref(const ql_pool2d_shape *s, int avg, const float *x, float *y, int32_t *arg) {
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int c = 0; c < s->c; c++) {
                    double sum = 0, best = -INFINITY; int cnt_in = 0, cnt_pad = 0, besti = -1;
                    for (int i = 0; i < s->kh; i++)
                        for (int j = 0; j < s->kw; j++) {
                            int ih = oh * s->sh - s->ph + i, iw = ow * s->sw - s->pw + j;
                            if (ih < s->h + s->ph && iw < s->w + s->pw) cnt_pad++;
                            if (ih < 0 || iw < 0 || ih >= s->h || iw >= s->w) continue;
                            float v = x[((n * s->h + ih) * s->w + iw) * s->c + c];
                            cnt_in++; sum += v;
                            if (v > best) { best = v; besti = ih * s->w + iw; }
                        }
                    size_t o = ((size_t)(n * s->oh + oh) * s->ow + ow) * s->c + c;
                    if (avg) y[o] = (float)(sum / (s->count_include_pad ? cnt_pad : cnt_in));
                    else { y[o] = (float)best; arg[o] = besti; }
                }
}

TEST(pool_output_sizes_pytorch) {
    struct { ql_pool2d_shape s; int oh; } cases[] = {
        {pmk(1, 5, 5, 1, 2, 2, 0, 0, 1), 2}, {pmk(1, 5, 5, 1, 2, 2, 0, 1, 1), 3},
        {pmk(1, 6, 6, 1, 3, 2, 1, 1, 1), 4}, {pmk(1, 5, 5, 1, 2, 2, 1, 1, 1), 3},  // last window would start in the right pad
        {pmk(1, 112, 112, 1, 3, 2, 1, 0, 1), 56}, {pmk(1, 7, 7, 1, 3, 3, 0, 1, 1), 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK_OK(ql_pool2d_shape_init(&cases[i].s));
        CHECK_MSG(cases[i].s.oh == cases[i].oh, "case %zu: oh %d, expected %d", i, cases[i].s.oh, cases[i].oh);
    }
    ql_pool2d_shape bad[] = {pmk(1, 5, 5, 1, 2, 0, 0, 0, 1), pmk(1, 5, 5, 1, 2, 2, 2, 0, 1),
                             pmk(1, 2, 2, 1, 5, 1, 0, 0, 1), pmk(1, 0, 5, 1, 2, 2, 0, 0, 1)};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ql_error_clear();
        CHECK_MSG(ql_pool2d_shape_init(&bad[i]) != QL_OK, "bad pool %zu accepted", i);
        CHECK(strncmp(ql_last_error(), "pool2d: ", 8) == 0);
    }
}

TEST(avgpool_ceil_count_include_pad_values) {
    // PyTorch: avg_pool2d(ones(1,1,5,5), 2, 2, padding=1, ceil_mode=True)
    ql_pool2d_shape s = pmk(1, 5, 5, 1, 2, 2, 1, 1, 1);
    CHECK_OK(ql_pool2d_shape_init(&s));
    float x[25], y[9], want[9] = {0.25f, 0.5f, 0.5f, 0.5f, 1, 1, 0.5f, 1, 1};
    for (int i = 0; i < 25; i++) x[i] = 1;
    ql_avgpool2d_forward(&s, x, y);
    CHECK(ql_test_maxrel(y, want, 9) < 1e-6);
    s.count_include_pad = 0;
    ql_avgpool2d_forward(&s, x, y);
    for (int i = 0; i < 9; i++) CHECK_NEAR(y[i], 1.0, 1e-6);
}

TEST(pool_forward_vs_reference) {
    ql_pool2d_shape cases[] = {
        pmk(2, 7, 6, 3, 3, 2, 1, 0, 1), pmk(2, 7, 6, 3, 3, 2, 1, 1, 1), pmk(2, 7, 6, 3, 3, 2, 1, 1, 0),
        pmk(1, 8, 8, 5, 2, 2, 0, 0, 1), pmk(3, 5, 9, 2, 3, 3, 1, 1, 0), pmk(1, 6, 6, 4, 3, 2, 1, 1, 1),
        pmk(2, 5, 5, 3, 2, 2, 1, 1, 1), pmk(1, 9, 7, 2, 4, 3, 2, 1, 0),
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ql_pool2d_shape s = cases[i];
        CHECK_OK(ql_pool2d_shape_init(&s));
        size_t nx = (size_t)s.n * s.h * s.w * s.c, ny = (size_t)s.n * s.oh * s.ow * s.c;
        float *x = randn(nx), *y = malloc(sizeof(float) * ny), *yr = malloc(sizeof(float) * ny);
        int32_t *a = malloc(sizeof(int32_t) * ny), *ar = malloc(sizeof(int32_t) * ny);
        ql_maxpool2d_forward(&s, x, y, a);
        pool_ref(&s, 0, x, yr, ar);
        CHECK_MSG(ql_test_maxrel(y, yr, (long)ny) == 0 && memcmp(a, ar, sizeof(int32_t) * ny) == 0,
                  "maxpool case %zu", i);
        ql_avgpool2d_forward(&s, x, y);
        pool_ref(&s, 1, x, yr, ar);
        CHECK_MSG(ql_test_maxrel(y, yr, (long)ny) < 1e-5, "avgpool case %zu", i);
        free(x); free(y); free(yr); free(a); free(ar);
    }
}

typedef struct { ql_pool2d_shape s; int avg; float *x, *y, *r; int32_t *arg; } pool_ctx;

static double pool_loss(void *p) {
    pool_ctx *k = p;
    if (k->avg) ql_avgpool2d_forward(&k->s, k->x, k->y);
    else ql_maxpool2d_forward(&k->s, k->x, k->y, k->arg);
    return dot(k->y, k->r, (size_t)k->s.n * k->s.oh * k->s.ow * k->s.c);
}

TEST(pool_backward_finite_differences) {
    ql_pool2d_shape cases[] = {pmk(2, 6, 5, 3, 3, 2, 1, 1, 1), pmk(2, 6, 5, 3, 3, 2, 1, 1, 0),
                               pmk(1, 5, 5, 2, 2, 2, 1, 1, 1), pmk(2, 4, 4, 2, 3, 1, 1, 0, 1)};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int avg = 0; avg < 2; avg++) {
            pool_ctx k = {.s = cases[i], .avg = avg};
            CHECK_OK(ql_pool2d_shape_init(&k.s));
            size_t nx = (size_t)k.s.n * k.s.h * k.s.w * k.s.c, ny = (size_t)k.s.n * k.s.oh * k.s.ow * k.s.c;
            k.x = distinct(nx); k.y = malloc(sizeof(float) * ny); k.r = randn(ny);
            k.arg = malloc(sizeof(int32_t) * ny);
            float *dx = malloc(sizeof(float) * nx);
            for (size_t j = 0; j < nx; j++) dx[j] = NAN;
            pool_loss(&k);
            if (avg) ql_avgpool2d_backward(&k.s, k.r, dx);
            else ql_maxpool2d_backward(&k.s, k.arg, k.r, dx);
            double e = fd_err(pool_loss, &k, k.x, dx, nx);
            CHECK_MSG(e < 1e-2, "%s case %zu: %g", avg ? "avgpool" : "maxpool", i, e);
            free(k.x); free(k.y); free(k.r); free(k.arg); free(dx);
        }
}

// larger shapes (threaded paths): maxpool backward = scatter at the reference
// argmax; avgpool backward is the adjoint of forward: <fwd(x), r> = <x, bwd(r)>
TEST(pool_large_threaded) {
    ql_pool2d_shape s = pmk(8, 32, 31, 32, 3, 2, 1, 1, 0);
    CHECK_OK(ql_pool2d_shape_init(&s));
    size_t nx = (size_t)s.n * s.h * s.w * s.c, ny = (size_t)s.n * s.oh * s.ow * s.c;
    float *x = randn(nx), *y = malloc(sizeof(float) * ny), *yr = malloc(sizeof(float) * ny);
    float *r = randn(ny), *dx = malloc(sizeof(float) * nx), *dxr = calloc(nx, sizeof(float));
    int32_t *a = malloc(sizeof(int32_t) * ny), *ar = malloc(sizeof(int32_t) * ny);
    ql_maxpool2d_forward(&s, x, y, a);
    pool_ref(&s, 0, x, yr, ar);
    CHECK(ql_test_maxrel(y, yr, (long)ny) == 0);
    ql_maxpool2d_backward(&s, a, r, dx);
    int64_t per = (int64_t)s.oh * s.ow;
    for (size_t o = 0; o < ny; o++) {
        int64_t n = (int64_t)(o / s.c) / per;
        dxr[(n * s.h * s.w + ar[o]) * s.c + o % s.c] += r[o];
    }
    CHECK(ql_test_maxrel(dx, dxr, (long)nx) < 1e-6);
    for (int cip = 0; cip < 2; cip++) {
        s.count_include_pad = cip;
        ql_avgpool2d_forward(&s, x, y);
        pool_ref(&s, 1, x, yr, ar);
        CHECK(ql_test_maxrel(y, yr, (long)ny) < 1e-5);
        ql_avgpool2d_backward(&s, r, dx);
        double lhs = dot(y, r, ny), rhs = dot(x, dx, nx);
        CHECK_NEAR(lhs, rhs, 1e-4);
    }
    free(x); free(y); free(yr); free(r); free(dx); free(dxr); free(a); free(ar);
}

// channel-vectorised pools, generic and AVX2 kernels: wide C, inference
// (argmax NULL) equals training, NaN wins like PyTorch (value NaN, argmax at
// the last NaN of the window)
static void pool_wide_channels_and_nan(void) {
    ql_pool2d_shape cases[] = {pmk(3, 14, 14, 64, 3, 2, 1, 0, 1), pmk(2, 9, 8, 37, 3, 2, 1, 1, 0),
                               pmk(1, 7, 7, 20, 2, 2, 0, 1, 1), pmk(64, 14, 14, 64, 3, 2, 1, 0, 1)};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ql_pool2d_shape s = cases[i];
        CHECK_OK(ql_pool2d_shape_init(&s));
        size_t nx = (size_t)s.n * s.h * s.w * s.c, ny = (size_t)s.n * s.oh * s.ow * s.c;
        float *x = randn(nx), *y = malloc(sizeof(float) * ny), *y2 = malloc(sizeof(float) * ny);
        float *yr = malloc(sizeof(float) * ny);
        int32_t *a = malloc(sizeof(int32_t) * ny), *ar = malloc(sizeof(int32_t) * ny);
        ql_maxpool2d_forward(&s, x, y, a);
        ql_maxpool2d_forward(&s, x, y2, NULL);
        pool_ref(&s, 0, x, yr, ar);
        CHECK_MSG(ql_test_maxrel(y, yr, (long)ny) == 0 && memcmp(a, ar, sizeof(int32_t) * ny) == 0,
                  "maxpool case %zu", i);
        CHECK_MSG(memcmp(y, y2, sizeof(float) * ny) == 0, "maxpool case %zu without argmax", i);
        for (int cip = 0; cip < 2; cip++) {
            s.count_include_pad = cip;
            ql_avgpool2d_forward(&s, x, y);
            pool_ref(&s, 1, x, yr, ar);
            CHECK_MSG(ql_test_maxrel(y, yr, (long)ny) < 1e-5, "avgpool case %zu cip %d", i, cip);
        }
        free(x); free(y); free(y2); free(yr); free(a); free(ar);
    }
    // NaN at input pixel (1,1) channel 2 and (2,2) channel 2 of a 4x4 image, 3x3/2 pad 1
    ql_pool2d_shape s = pmk(1, 4, 4, 5, 3, 2, 1, 0, 1);
    CHECK_OK(ql_pool2d_shape_init(&s));
    float x[80], y[20], y2[20];
    int32_t a[20];
    for (int i = 0; i < 80; i++) x[i] = (float)i;
    x[(1 * 4 + 1) * 5 + 2] = NAN;
    x[(2 * 4 + 2) * 5 + 2] = NAN;
    ql_maxpool2d_forward(&s, x, y, a);
    ql_maxpool2d_forward(&s, x, y2, NULL);
    // output (0,0) sees (1,1) only; (1,1) sees both, the later (2,2) wins the argmax
    CHECK(isnan(y[2]) && a[2] == 1 * 4 + 1 && isnan(y2[2]));
    CHECK(isnan(y[(1 * 2 + 1) * 5 + 2]) && a[(1 * 2 + 1) * 5 + 2] == 2 * 4 + 2);
    CHECK(isnan(y2[(1 * 2 + 1) * 5 + 2]));
    CHECK(y[3] == x[(1 * 4 + 1) * 5 + 3] && a[3] == 1 * 4 + 1 && y2[3] == y[3]);
}

TEST(pool_wide_channels_and_nan_all_isas) {
    ql_isa saved = ql_isa_active();
    ql_isa_force(QL_ISA_SCALAR);
    pool_wide_channels_and_nan();
    ql_isa_force(ql_isa_best());
    pool_wide_channels_and_nan();
    ql_isa_force(saved);
}

typedef struct { int n, hw, c; float *x, *y, *r; } gap_ctx;
static double gap_loss(void *p) {
    gap_ctx *k = p;
    ql_global_avgpool_forward(k->n, k->hw, k->c, k->x, k->y);
    return dot(k->y, k->r, (size_t)k->n * k->c);
}

TEST(global_avgpool) {
    gap_ctx k = {.n = 3, .hw = 10, .c = 4};
    size_t nx = (size_t)k.n * k.hw * k.c;
    k.x = randn(nx); k.y = malloc(sizeof(float) * k.n * k.c); k.r = randn(k.n * k.c);
    gap_loss(&k);
    for (int n = 0; n < k.n; n++)
        for (int c = 0; c < k.c; c++) {
            double s = 0;
            for (int p = 0; p < k.hw; p++) s += k.x[(n * k.hw + p) * k.c + c];
            CHECK_NEAR(k.y[n * k.c + c], s / k.hw, 1e-6);
        }
    float *dx = malloc(sizeof(float) * nx);
    ql_global_avgpool_backward(k.n, k.hw, k.c, k.r, dx);
    CHECK(fd_err(gap_loss, &k, k.x, dx, nx) < 1e-2);
    free(k.x); free(k.y); free(k.r); free(dx);
}

TEST(global_avgpool_wide_threaded) {
    int n = 64, hw = 49, c = 96;
    size_t nx = (size_t)n * hw * c;
    float *x = randn(nx), *y = malloc(sizeof(float) * n * c), *dy = randn((size_t)n * c);
    float *dx = malloc(sizeof(float) * nx);
    ql_global_avgpool_forward(n, hw, c, x, y);
    ql_global_avgpool_backward(n, hw, c, dy, dx);
    double e = 0, ed = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c; j++) {
            double s = 0;
            for (int p = 0; p < hw; p++) {
                s += x[((size_t)i * hw + p) * c + j];
                ed = fmax(ed, fabs(dx[((size_t)i * hw + p) * c + j] - dy[i * c + j] / (double)hw));
            }
            e = fmax(e, fabs(y[i * c + j] - s / hw));
        }
    CHECK(e < 1e-5 && ed < 1e-7);
    free(x); free(y); free(dy); free(dx);
}

/* ---- relu, relu6 --------------------------------------------------------------- */

typedef struct { int64_t n; int six; float *x, *y, *r; } act_ctx;
static double act_loss(void *p) {
    act_ctx *k = p;
    if (k->six) ql_relu6_forward(k->n, k->x, k->y); else ql_relu_forward(k->n, k->x, k->y);
    return dot(k->y, k->r, k->n);
}

TEST(relu_relu6) {
    for (int six = 0; six < 2; six++) {
        act_ctx k = {.n = 200, .six = six};
        k.x = malloc(sizeof(float) * k.n); k.y = malloc(sizeof(float) * k.n); k.r = randn(k.n);
        for (int64_t i = 0; i < k.n; i++) {   // in [-3,9], kept away from the kinks 0 and 6
            float v = -3.0f + 12.0f * (float)ql_rng_uniform(ql_rng_global());
            if (fabsf(v) < 0.05f || fabsf(v - 6) < 0.05f) v += 0.1f;
            k.x[i] = v;
        }
        act_loss(&k);
        for (int64_t i = 0; i < k.n; i++) {
            float want = k.x[i] > 0 ? k.x[i] : 0;
            if (six && want > 6) want = 6;
            CHECK(k.y[i] == want);
        }
        float *dx = malloc(sizeof(float) * k.n);
        if (six) ql_relu6_backward(k.n, k.x, k.r, dx); else ql_relu_backward(k.n, k.x, k.r, dx);
        CHECK_MSG(fd_err(act_loss, &k, k.x, dx, k.n) < 1e-2, "relu%s backward", six ? "6" : "");
        free(k.x); free(k.y); free(k.r); free(dx);
    }
}

// large arrays (one span per thread), the kinks exactly, NaN, and in place (dx == dy, y == x)
TEST(relu_relu6_large_in_place) {
    int64_t n = 300007;
    float *x = randn((size_t)n), *dy = randn((size_t)n), *y = malloc(sizeof(float) * n);
    float *dx = malloc(sizeof(float) * n), *t = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) x[i] *= 4;
    x[0] = 0; x[1] = 6; x[2] = NAN; x[3] = -0.0f; x[4] = INFINITY; x[5] = -INFINITY;
    for (int six = 0; six < 2; six++) {
        if (six) { ql_relu6_forward(n, x, y); ql_relu6_backward(n, x, dy, dx); }
        else { ql_relu_forward(n, x, y); ql_relu_backward(n, x, dy, dx); }
        int bad = 0;
        for (int64_t i = 0; i < n; i++) {
            float v = x[i] > 0 ? x[i] : 0, g = x[i] > 0 ? dy[i] : 0;
            if (six && !(v < 6)) v = 6;
            if (six && !(x[i] < 6)) g = 0;
            bad += y[i] != v || dx[i] != g;
        }
        CHECK_MSG(bad == 0, "relu%s: %d wrong", six ? "6" : "", bad);
        memcpy(t, dy, sizeof(float) * n);   // in place, as the fused conv+act backward calls it
        if (six) ql_relu6_backward(n, y, t, t); else ql_relu_backward(n, y, t, t);
        for (int64_t i = 0; i < n; i++) bad += t[i] != (y[i] > 0 && (!six || y[i] < 6) ? dy[i] : 0.0f);
        memcpy(t, x, sizeof(float) * n);
        if (six) ql_relu6_forward(n, t, t); else ql_relu_forward(n, t, t);
        bad += memcmp(t, y, sizeof(float) * n) != 0;
        CHECK_MSG(bad == 0, "relu%s in place: %d wrong", six ? "6" : "", bad);
    }
    float *z = malloc(sizeof(float) * n);
    ql_add_forward(n, x, dy, z);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !(z[i] == x[i] + dy[i]) && !isnan(x[i]);
    CHECK(bad == 0);
    free(x); free(dy); free(y); free(dx); free(t); free(z);
}

/* ---- linear ------------------------------------------------------------------- */

typedef struct { int m, k, n; float *x, *w, *b, *y, *r; } lin_ctx;
static double lin_loss(void *p) {
    lin_ctx *c = p;
    ql_linear_forward(c->m, c->k, c->n, c->x, c->w, c->b, c->y);
    return dot(c->y, c->r, (size_t)c->m * c->n);
}

TEST(linear_forward_backward) {
    lin_ctx c = {.m = 5, .k = 7, .n = 3};
    c.x = randn(c.m * c.k); c.w = randn(c.n * c.k); c.b = randn(c.n);
    c.y = malloc(sizeof(float) * c.m * c.n); c.r = randn(c.m * c.n);
    lin_loss(&c);
    for (int i = 0; i < c.m; i++)
        for (int j = 0; j < c.n; j++) {
            double s = c.b[j];
            for (int t = 0; t < c.k; t++) s += (double)c.x[i * c.k + t] * c.w[j * c.k + t];
            CHECK_NEAR(c.y[i * c.n + j], s, 1e-5);
        }
    float *dx = malloc(sizeof(float) * c.m * c.k), *dw = malloc(sizeof(float) * c.n * c.k);
    float *db = malloc(sizeof(float) * c.n);
    for (int i = 0; i < c.n * c.k; i++) dw[i] = 2;
    for (int i = 0; i < c.n; i++) db[i] = 2;
    ql_linear_backward(c.m, c.k, c.n, c.x, c.w, c.r, dx, dw, db);
    for (int i = 0; i < c.n * c.k; i++) dw[i] -= 2;
    for (int i = 0; i < c.n; i++) db[i] -= 2;
    CHECK(fd_err(lin_loss, &c, c.x, dx, c.m * c.k) < 1e-2);
    CHECK(fd_err(lin_loss, &c, c.w, dw, c.n * c.k) < 1e-2);
    CHECK(fd_err(lin_loss, &c, c.b, db, c.n) < 1e-2);
    ql_linear_forward(c.m, c.k, c.n, c.x, c.w, NULL, c.y);   // no bias
    double s = 0;
    for (int t = 0; t < c.k; t++) s += (double)c.x[t] * c.w[t];
    CHECK_NEAR(c.y[0], s, 1e-5);
    free(c.x); free(c.w); free(c.b); free(c.y); free(c.r); free(dx); free(dw); free(db);
}

// many rows: the column sums for db are split across threads
TEST(linear_backward_bias_many_rows) {
    int m = 5000, k = 3, n = 37;
    float *x = randn((size_t)m * k), *w = randn((size_t)n * k), *dy = randn((size_t)m * n);
    float *db = malloc(sizeof(float) * n);
    for (int j = 0; j < n; j++) db[j] = 1;
    ql_linear_backward(m, k, n, x, w, dy, NULL, NULL, db);
    for (int j = 0; j < n; j++) {
        double s = 1;
        for (int i = 0; i < m; i++) s += dy[(size_t)i * n + j];
        CHECK_NEAR(db[j], s, 1e-5);
    }
    free(x); free(w); free(dy); free(db);
}

/* ---- add, flatten, seq_last ----------------------------------------------------- */

TEST(add_forward) {
    float *a = randn(100), *b = randn(100), *y = malloc(sizeof(float) * 100);
    ql_add_forward(100, a, b, y);
    for (int i = 0; i < 100; i++) CHECK(y[i] == a[i] + b[i]);
    free(a); free(b); free(y);
}

typedef struct { int n, h, w, c; float *x, *y, *r; } flat_ctx;
static double flat_loss(void *p) {
    flat_ctx *k = p;
    ql_flatten_nchw_forward(k->n, k->h, k->w, k->c, k->x, k->y);
    return dot(k->y, k->r, (size_t)k->n * k->h * k->w * k->c);
}

TEST(flatten_nchw) {
    flat_ctx k = {.n = 2, .h = 3, .w = 4, .c = 5};
    size_t nx = (size_t)k.n * k.h * k.w * k.c;
    k.x = randn(nx); k.y = malloc(sizeof(float) * nx); k.r = randn(nx);
    flat_loss(&k);
    for (int n = 0; n < k.n; n++)
        for (int h = 0; h < k.h; h++)
            for (int w = 0; w < k.w; w++)
                for (int c = 0; c < k.c; c++)
                    CHECK(k.y[n * 60 + (c * k.h + h) * k.w + w] == k.x[((n * k.h + h) * k.w + w) * k.c + c]);
    float *dx = malloc(sizeof(float) * nx);
    ql_flatten_nchw_backward(k.n, k.h, k.w, k.c, k.r, dx);
    CHECK(fd_err(flat_loss, &k, k.x, dx, nx) < 1e-2);
    free(k.x); free(k.y); free(k.r); free(dx);
}

typedef struct { int n, t, h; float *x, *y, *r; } last_ctx;
static double last_loss(void *p) {
    last_ctx *k = p;
    ql_seq_last_forward(k->n, k->t, k->h, k->x, k->y);
    return dot(k->y, k->r, (size_t)k->n * k->h);
}

TEST(seq_last) {
    last_ctx k = {.n = 3, .t = 4, .h = 5};
    size_t nx = (size_t)k.n * k.t * k.h;
    k.x = randn(nx); k.y = malloc(sizeof(float) * k.n * k.h); k.r = randn(k.n * k.h);
    last_loss(&k);
    for (int n = 0; n < k.n; n++)
        for (int j = 0; j < k.h; j++) CHECK(k.y[n * k.h + j] == k.x[(n * k.t + k.t - 1) * k.h + j]);
    float *dx = malloc(sizeof(float) * nx);
    for (size_t i = 0; i < nx; i++) dx[i] = NAN;
    ql_seq_last_backward(k.n, k.t, k.h, k.r, dx);
    CHECK(fd_err(last_loss, &k, k.x, dx, nx) < 1e-2);
    free(k.x); free(k.y); free(k.r); free(dx);
}

/* ---- softmax, cross-entropy ----------------------------------------------------- */

static double xent_ref(int n, int k, const float *x, const int32_t *lab) {
    double total = 0; int valid = 0;
    for (int i = 0; i < n; i++) {
        if (lab[i] < 0 || lab[i] >= k) continue;
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < k; j++) mx = fmax(mx, x[i * k + j]);
        for (int j = 0; j < k; j++) s += exp(x[i * k + j] - mx);
        total += mx + log(s) - x[i * k + lab[i]];
        valid++;
    }
    return valid ? total / valid : 0;
}

TEST(softmax_stable) {
    int n = 4, k = 6;
    float *x = randn(n * k), *y = malloc(sizeof(float) * n * k);
    for (int j = 0; j < k; j++) x[j] = 1000.0f + j;          // would overflow naively
    ql_softmax(n, k, x, y);
    for (int i = 0; i < n; i++) {
        double s = 0, mx = -INFINITY, z = 0;
        for (int j = 0; j < k; j++) { s += y[i * k + j]; mx = fmax(mx, x[i * k + j]); }
        CHECK_NEAR(s, 1.0, 1e-6);
        for (int j = 0; j < k; j++) z += exp(x[i * k + j] - mx);
        for (int j = 0; j < k; j++) CHECK_NEAR(y[i * k + j], exp(x[i * k + j] - mx) / z, 1e-6);
    }
    free(x); free(y);
}

TEST(softmax_and_flatten_many_rows) {
    int n = 300, k = 250;
    float *x = randn((size_t)n * k), *y = malloc(sizeof(float) * n * k);
    ql_softmax(n, k, x, y);
    double e = 0;
    for (int i = 0; i < n; i++) {
        double mx = -INFINITY, z = 0;
        for (int j = 0; j < k; j++) mx = fmax(mx, x[i * k + j]);
        for (int j = 0; j < k; j++) z += exp(x[i * k + j] - mx);
        for (int j = 0; j < k; j++) e = fmax(e, fabs(y[i * k + j] - exp(x[i * k + j] - mx) / z));
    }
    CHECK(e < 1e-6);
    // (N,H,W,C) = (300,5,5,10) -> NCHW flatten and back
    float *f = malloc(sizeof(float) * n * k), *b = malloc(sizeof(float) * n * k);
    ql_flatten_nchw_forward(n, 5, 5, 10, x, f);
    CHECK(f[((size_t)7 * 10 + 3) * 25 + 2 * 5 + 4] == x[(((size_t)7 * 5 + 2) * 5 + 4) * 10 + 3]);
    ql_flatten_nchw_backward(n, 5, 5, 10, f, b);
    CHECK(memcmp(b, x, sizeof(float) * n * k) == 0);
    free(x); free(y); free(f); free(b);
}

typedef struct { int n, k; float *x; int32_t *lab; } xent_ctx;
static double xent_loss(void *p) {
    xent_ctx *c = p;
    return ql_softmax_xent(c->n, c->k, c->x, c->lab, NULL);
}

TEST(softmax_xent_loss_and_gradient) {
    xent_ctx c = {.n = 6, .k = 5};
    c.x = randn(c.n * c.k);
    int32_t lab[6] = {0, 4, 2, 1, 3, 2};
    c.lab = lab;
    float *d = malloc(sizeof(float) * c.n * c.k);
    float l = ql_softmax_xent(c.n, c.k, c.x, c.lab, d);
    CHECK_NEAR(l, xent_ref(c.n, c.k, c.x, c.lab), 1e-5);
    CHECK(fd_err(xent_loss, &c, c.x, d, c.n * c.k) < 1e-2);
    // labels outside [0,K) are ignored: no crash, zero gradient rows, mean over valid rows
    int32_t bad[6] = {-1, 4, 5, 1, 1000000, 2};
    c.lab = bad;
    l = ql_softmax_xent(c.n, c.k, c.x, c.lab, d);
    CHECK_NEAR(l, xent_ref(c.n, c.k, c.x, c.lab), 1e-5);
    for (int j = 0; j < c.k; j++) CHECK(d[j] == 0 && d[2 * c.k + j] == 0 && d[4 * c.k + j] == 0);
    CHECK(fd_err(xent_loss, &c, c.x, d, c.n * c.k) < 1e-2);
    int32_t none[6] = {-1, -1, -1, -1, -1, -1};
    c.lab = none;
    CHECK(ql_softmax_xent(c.n, c.k, c.x, c.lab, d) == 0.0f);
    free(c.x); free(d);
}
