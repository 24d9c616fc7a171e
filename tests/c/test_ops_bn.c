/* batchnorm2d on (M,C): eval and train forward against direct formulas,
 * PyTorch's running-stat update, backward by finite differences. */
#include <stdlib.h>
#include "test.h"
#include "qlab/cpu.h"
#include "qlab/ops.h"
#include "qlab/rng.h"

static float *randn(size_t n, float scale, float shift) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = shift + scale * ql_rng_normal(ql_rng_global());
    return p;
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

// per-channel mean and biased variance, in double
static void stats_ref(int64_t m, int c, const float *x, double *mean, double *var) {
    for (int j = 0; j < c; j++) {
        double s = 0, q = 0;
        for (int64_t i = 0; i < m; i++) s += x[i * c + j];
        mean[j] = s / m;
        for (int64_t i = 0; i < m; i++) { double d = x[i * c + j] - mean[j]; q += d * d; }
        var[j] = q / m;
    }
}

TEST(batchnorm_eval_forward) {
    int64_t m = 37; int c = 70;    // more than one channel block
    float *x = randn(m * c, 2, 1), *g = randn(c, 1, 0), *b = randn(c, 1, 0);
    float *rm = randn(c, 1, 0), *rv = randn(c, 0.2f, 1), *y = malloc(sizeof(float) * m * c);
    float *yr = malloc(sizeof(float) * m * c);
    for (int j = 0; j < c; j++) rv[j] = fabsf(rv[j]) + 0.1f;
    ql_batchnorm_forward_eval(m, c, x, g, b, rm, rv, 1e-5f, y);
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < c; j++)
            yr[i * c + j] = (float)((x[i * c + j] - rm[j]) / sqrt(rv[j] + 1e-5) * g[j] + b[j]);
    CHECK(ql_test_maxrel(y, yr, m * c) < 1e-5);
    free(x); free(g); free(b); free(rm); free(rv); free(y); free(yr);
}

TEST(batchnorm_train_forward_and_running_stats) {
    int64_t m = 2 * 5 * 7; int c = 67;   // N=2, H=5, W=7
    float *x = randn(m * c, 3, 2), *g = randn(c, 1, 0), *b = randn(c, 1, 0);
    float *rm = randn(c, 1, 0), *rv = randn(c, 0.2f, 1), *y = malloc(sizeof(float) * m * c);
    float *rm0 = malloc(sizeof(float) * c), *rv0 = malloc(sizeof(float) * c);
    float *sm = malloc(sizeof(float) * c), *si = malloc(sizeof(float) * c);
    double *mean = malloc(sizeof(double) * c), *var = malloc(sizeof(double) * c);
    float mom = 0.1f, eps = 1e-5f;
    memcpy(rm0, rm, sizeof(float) * c);
    memcpy(rv0, rv, sizeof(float) * c);
    ql_batchnorm_forward_train(m, c, x, g, b, rm, rv, eps, mom, y, sm, si);
    stats_ref(m, c, x, mean, var);
    double ey = 0;
    for (int j = 0; j < c; j++) {
        CHECK_NEAR(sm[j], mean[j], 1e-5);
        CHECK_NEAR(si[j], 1.0 / sqrt(var[j] + eps), 1e-5);
        // PyTorch: running_mean = (1-m) rm + m mean; running_var uses the unbiased var
        CHECK_NEAR(rm[j], (1 - mom) * rm0[j] + mom * mean[j], 1e-5);
        CHECK_NEAR(rv[j], (1 - mom) * rv0[j] + mom * var[j] * m / (m - 1), 1e-5);
        for (int64_t i = 0; i < m; i++) {
            double yr = (x[i * c + j] - mean[j]) / sqrt(var[j] + eps) * g[j] + b[j];
            ey = fmax(ey, fabs(y[i * c + j] - yr) / fmax(1, fabs(yr)));
        }
    }
    CHECK(ey < 1e-5);
    free(x); free(g); free(b); free(rm); free(rv); free(y); free(rm0); free(rv0);
    free(sm); free(si); free(mean); free(var);
}

typedef struct {
    int64_t m; int c; int train;
    float *x, *g, *b, *rm, *rv, *r, *y;
} bn_ctx;

static double bn_loss(bn_ctx *k) {
    if (k->train) ql_batchnorm_forward_train(k->m, k->c, k->x, k->g, k->b, NULL, NULL, 1e-5f, 0.1f,
                                             k->y, NULL, NULL);
    else ql_batchnorm_forward_eval(k->m, k->c, k->x, k->g, k->b, k->rm, k->rv, 1e-5f, k->y);
    return dot(k->y, k->r, (size_t)k->m * k->c);
}

static double fd_err(bn_ctx *k, float *p, const float *grad, size_t n) {
    const float eps = 1e-3f;
    double maxdiff = 0, maxnum = 1e-6;
    for (size_t i = 0; i < n; i++) {
        float v = p[i];
        p[i] = v + eps; double lp = bn_loss(k);
        p[i] = v - eps; double lm = bn_loss(k);
        p[i] = v;
        double num = (lp - lm) / (2.0 * eps);
        maxdiff = fmax(maxdiff, fabs(num - grad[i]));
        maxnum = fmax(maxnum, fabs(num));
    }
    return maxdiff / maxnum;
}

static void check_bn_backward(int train) {
    bn_ctx k = {.m = 3 * 2 * 2, .c = 5, .train = train};
    size_t n = (size_t)k.m * k.c;
    k.x = randn(n, 1.5f, 0.5f); k.g = randn(k.c, 1, 0); k.b = randn(k.c, 1, 0);
    k.rm = randn(k.c, 0.5f, 0); k.rv = randn(k.c, 0.2f, 1); k.r = randn(n, 1, 0);
    k.y = malloc(sizeof(float) * n);
    for (int j = 0; j < k.c; j++) k.rv[j] = fabsf(k.rv[j]) + 0.3f;
    float *sm = malloc(sizeof(float) * k.c), *si = malloc(sizeof(float) * k.c);
    float *dx = malloc(sizeof(float) * n), *dg = malloc(sizeof(float) * k.c);
    float *db = malloc(sizeof(float) * k.c);
    for (size_t i = 0; i < n; i++) dx[i] = NAN;
    for (int j = 0; j < k.c; j++) dg[j] = db[j] = 1.0f;
    if (train) {
        ql_batchnorm_forward_train(k.m, k.c, k.x, k.g, k.b, NULL, NULL, 1e-5f, 0.1f, k.y, sm, si);
        ql_batchnorm_backward_train(k.m, k.c, k.x, k.g, sm, si, k.r, dx, dg, db);
    } else {
        ql_batchnorm_backward_eval(k.m, k.c, k.x, k.g, k.rm, k.rv, 1e-5f, k.r, dx, dg, db);
    }
    for (int j = 0; j < k.c; j++) { dg[j] -= 1.0f; db[j] -= 1.0f; }
    double ex = fd_err(&k, k.x, dx, n), eg = fd_err(&k, k.g, dg, k.c), eb = fd_err(&k, k.b, db, k.c);
    CHECK_MSG(ex < 1e-2 && eg < 1e-2 && eb < 1e-2, "bn %s backward: dx %g dgamma %g dbeta %g",
              train ? "train" : "eval", ex, eg, eb);
    free(k.x); free(k.g); free(k.b); free(k.rm); free(k.rv); free(k.r); free(k.y);
    free(sm); free(si); free(dx); free(dg); free(db);
}

TEST(batchnorm_train_backward_finite_differences) { check_bn_backward(1); }
TEST(batchnorm_eval_backward_finite_differences) { check_bn_backward(0); }

TEST(batchnorm_train_backward_large_matches_small_blocks) {
    // many rows and channels (threaded, several blocks): compare with a double formula
    int64_t m = 4096; int c = 96;
    size_t n = (size_t)m * c;
    float *x = randn(n, 2, 1), *g = randn(c, 1, 0), *b = randn(c, 1, 0), *dy = randn(n, 1, 0);
    float *y = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * n);
    float *sm = malloc(sizeof(float) * c), *si = malloc(sizeof(float) * c);
    float *dg = calloc(c, sizeof(float)), *db = calloc(c, sizeof(float));
    ql_batchnorm_forward_train(m, c, x, g, b, NULL, NULL, 1e-5f, 0.1f, y, sm, si);
    ql_batchnorm_backward_train(m, c, x, g, sm, si, dy, dx, dg, db);
    double err = 0;
    for (int j = 0; j < c; j++) {
        double sdy = 0, sdyh = 0, inv = si[j];
        for (int64_t i = 0; i < m; i++) {
            sdy += dy[i * c + j];
            sdyh += dy[i * c + j] * (x[i * c + j] - sm[j]) * inv;
        }
        CHECK_NEAR(db[j], sdy, 1e-3);
        CHECK_NEAR(dg[j], sdyh, 1e-3);
        for (int64_t i = 0; i < m; i++) {
            double xh = (x[i * c + j] - sm[j]) * inv;
            double r = g[j] * inv * (dy[i * c + j] - sdy / m - xh * sdyh / m);
            err = fmax(err, fabs(dx[i * c + j] - r) / fmax(1, fabs(r)));
        }
    }
    CHECK(err < 1e-4);
    free(x); free(g); free(b); free(dy); free(y); free(dx); free(sm); free(si); free(dg); free(db);
}

// one-pass statistics against a two-pass double reference: a mean far from 0
// (1000 + channel, std 0.5..2) would cancel without the shift; many rows
// (threaded sums) and more channels than one block (QL_OPS_COLS = 512)
static void batchnorm_offset_mean_many_channels(void) {
    struct { int64_t m; int c; } cases[] = {{20000, 40}, {600, 700}, {3, 9}, {1, 5}};
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        int64_t m = cases[t].m; int c = cases[t].c;
        size_t n = (size_t)m * c;
        float *x = randn(n, 1, 0), *y = malloc(sizeof(float) * n), *ye = malloc(sizeof(float) * n);
        float *sm = malloc(sizeof(float) * c), *si = malloc(sizeof(float) * c);
        float *rm = calloc(c, sizeof(float)), *rv = malloc(sizeof(float) * c);
        double *mean = malloc(sizeof(double) * c), *var = malloc(sizeof(double) * c);
        for (int64_t i = 0; i < m; i++)
            for (int j = 0; j < c; j++) x[i * c + j] = 1000.0f + j + (0.5f + (j % 4) * 0.5f) * x[i * c + j];
        for (int j = 0; j < c; j++) rv[j] = 1;
        ql_batchnorm_forward_train(m, c, x, NULL, NULL, rm, rv, 1e-5f, 1.0f, y, sm, si);
        stats_ref(m, c, x, mean, var);
        double em = 0, ei = 0, ev = 0;
        for (int j = 0; j < c; j++) {
            em = fmax(em, fabs(sm[j] - mean[j]) / fabs(mean[j]));
            ei = fmax(ei, fabs(si[j] * sqrt(var[j] + 1e-5) - 1));
            if (m > 1) ev = fmax(ev, fabs(rv[j] / (var[j] * m / (m - 1)) - 1));
        }
        CHECK_MSG(em < 1e-6 && ei < 1e-4 && ev < 1e-4, "m %lld c %d: mean %g invstd %g rvar %g",
                  (long long)m, c, em, ei, ev);
        // eval with the batch statistics as running stats gives the same y
        for (int j = 0; j < c; j++) { rm[j] = sm[j]; rv[j] = 1.0f / (si[j] * si[j]) - 1e-5f; }
        ql_batchnorm_forward_eval(m, c, x, NULL, NULL, rm, rv, 1e-5f, ye);
        double ey = 0;
        for (size_t i = 0; i < n; i++) ey = fmax(ey, fabs(y[i] - ye[i]));
        CHECK_MSG(m == 1 || ey < 2e-2, "m %lld c %d: eval vs train y %g", (long long)m, c, ey);
        free(x); free(y); free(ye); free(sm); free(si); free(rm); free(rv); free(mean); free(var);
    }
}

// with the generic and the AVX2 kernels
TEST(batchnorm_train_stats_offset_mean_many_channels) {
    ql_isa saved = ql_isa_active();
    ql_isa_force(QL_ISA_SCALAR);
    batchnorm_offset_mean_many_channels();
    ql_isa_force(ql_isa_best());
    batchnorm_offset_mean_many_channels();
    ql_isa_force(saved);
}

// eval backward over many rows and two channel blocks against double sums
TEST(batchnorm_eval_backward_large) {
    int64_t m = 700; int c = 600;
    size_t n = (size_t)m * c;
    float *x = randn(n, 2, 1), *dy = randn(n, 1, 0), *g = randn(c, 1, 0), *rm = randn(c, 1, 0);
    float *rv = randn(c, 0.2f, 1), *dx = malloc(sizeof(float) * n);
    float *dg = calloc(c, sizeof(float)), *db = calloc(c, sizeof(float));
    for (int j = 0; j < c; j++) rv[j] = fabsf(rv[j]) + 0.1f;
    ql_batchnorm_backward_eval(m, c, x, g, rm, rv, 1e-5f, dy, dx, dg, db);
    double ex = 0;
    for (int j = 0; j < c; j++) {
        double inv = 1.0 / sqrt(rv[j] + 1e-5), sdy = 0, sdyx = 0;
        for (int64_t i = 0; i < m; i++) {
            sdy += dy[i * c + j];
            sdyx += dy[i * c + j] * ((double)x[i * c + j] - rm[j]);
            ex = fmax(ex, fabs(dx[i * c + j] - dy[i * c + j] * g[j] * inv) / fmax(1, fabs(dy[i * c + j] * g[j] * inv)));
        }
        CHECK_NEAR(db[j], sdy, 1e-4);
        CHECK_NEAR(dg[j], sdyx * inv, 1e-4);
    }
    CHECK(ex < 1e-5);
    free(x); free(dy); free(g); free(rm); free(rv); free(dx); free(dg); free(db);
}
