/* LSTM: forward against a direct per-step cell in double, backward (BPTT,
 * two layers) by finite differences on the input and every parameter. */
#include <stdlib.h>
#include "test.h"
#include "qlab/ops.h"
#include "qlab/rng.h"

#define MAXL 3

static float *randn(size_t n, float scale) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = scale * ql_rng_normal(ql_rng_global());
    return p;
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

typedef struct {
    ql_lstm_shape s;
    float *x, *y, *r, *cache, *ws;
    float *wih[MAXL], *whh[MAXL], *bih[MAXL], *bhh[MAXL];
    ql_lstm_weights wt;
} lstm_ctx;

static void ctx_init(lstm_ctx *k, int n, int t, int in, int h, int layers, int bias) {
    memset(k, 0, sizeof *k);
    k->s = (ql_lstm_shape){.n = n, .t = t, .input = in, .hidden = h, .layers = layers};
    float sc = 1.0f / sqrtf((float)h);
    for (int l = 0; l < layers; l++) {
        int il = l == 0 ? in : h;
        k->wih[l] = randn((size_t)4 * h * il, sc);
        k->whh[l] = randn((size_t)4 * h * h, sc);
        k->bih[l] = bias ? randn(4 * h, sc) : NULL;
        k->bhh[l] = bias ? randn(4 * h, sc) : NULL;
    }
    k->wt.w_ih = (const float *const *)k->wih;
    k->wt.w_hh = (const float *const *)k->whh;
    k->wt.b_ih = bias ? (const float *const *)k->bih : NULL;
    k->wt.b_hh = bias ? (const float *const *)k->bhh : NULL;
    size_t ny = (size_t)n * t * h;
    k->x = randn((size_t)n * t * in, 1);
    k->y = malloc(sizeof(float) * ny);
    k->r = randn(ny, 1);
    k->cache = malloc(sizeof(float) * ql_lstm_cache_floats(&k->s));
    k->ws = malloc(sizeof(float) * ql_lstm_workspace_floats(&k->s));
}

static void ctx_free(lstm_ctx *k) {
    for (int l = 0; l < k->s.layers; l++) { free(k->wih[l]); free(k->whh[l]); free(k->bih[l]); free(k->bhh[l]); }
    free(k->x); free(k->y); free(k->r); free(k->cache); free(k->ws);
}

static double sig(double v) { return 1.0 / (1.0 + exp(-v)); }

// direct LSTM in double: x (N,T,I) -> y (N,T,H)
static void lstm_ref(const lstm_ctx *k, float *y) {
    const ql_lstm_shape *s = &k->s;
    int N = s->n, T = s->t, H = s->hidden;
    double *in = malloc(sizeof(double) * N * T * (s->input > H ? s->input : H));
    double *out = malloc(sizeof(double) * N * T * H), *c = malloc(sizeof(double) * H);
    for (int i = 0; i < N * T * s->input; i++) in[i] = k->x[i];
    for (int l = 0; l < s->layers; l++) {
        int il = l == 0 ? s->input : H;
        for (int n = 0; n < N; n++) {
            for (int j = 0; j < H; j++) c[j] = 0;
            for (int t = 0; t < T; t++) {
                double a[4 * 64];
                for (int q = 0; q < 4 * H; q++) {
                    double v = k->wt.b_ih ? (double)k->bih[l][q] + k->bhh[l][q] : 0;
                    for (int i = 0; i < il; i++) v += k->wih[l][q * il + i] * in[(n * T + t) * il + i];
                    if (t > 0)
                        for (int i = 0; i < H; i++) v += k->whh[l][q * H + i] * out[(n * T + t - 1) * H + i];
                    a[q] = v;
                }
                for (int j = 0; j < H; j++) {
                    double ig = sig(a[j]), fg = sig(a[H + j]), gg = tanh(a[2 * H + j]), og = sig(a[3 * H + j]);
                    c[j] = fg * c[j] + ig * gg;
                    out[(n * T + t) * H + j] = og * tanh(c[j]);
                }
            }
        }
        for (int i = 0; i < N * T * H; i++) in[i] = out[i];
    }
    for (int i = 0; i < N * T * H; i++) y[i] = (float)out[i];
    free(in); free(out); free(c);
}

TEST(lstm_forward_vs_reference) {
    int cfg[][6] = {{2, 5, 3, 4, 1, 1}, {3, 4, 6, 5, 2, 1}, {1, 1, 2, 3, 2, 0}, {4, 7, 5, 8, 3, 1}};
    for (int i = 0; i < 4; i++) {
        lstm_ctx k;
        ctx_init(&k, cfg[i][0], cfg[i][1], cfg[i][2], cfg[i][3], cfg[i][4], cfg[i][5]);
        size_t ny = (size_t)k.s.n * k.s.t * k.s.hidden;
        float *yr = malloc(sizeof(float) * ny), *y2 = malloc(sizeof(float) * ny);
        lstm_ref(&k, yr);
        ql_lstm_forward(&k.s, k.x, &k.wt, k.y, k.cache, k.ws);
        CHECK_MSG(ql_test_maxrel(k.y, yr, (long)ny) < 1e-5, "config %d with cache", i);
        ql_lstm_forward(&k.s, k.x, &k.wt, y2, NULL, k.ws);   // inference path: no cache
        CHECK_MSG(ql_test_maxrel(y2, yr, (long)ny) < 1e-5, "config %d without cache", i);
        free(yr); free(y2);
        ctx_free(&k);
    }
}

static double lstm_loss(lstm_ctx *k) {
    ql_lstm_forward(&k->s, k->x, &k->wt, k->y, NULL, k->ws);
    return dot(k->y, k->r, (size_t)k->s.n * k->s.t * k->s.hidden);
}

/* The forward runs in float, so each loss carries ~1e-7 relative noise that
 * the difference amplifies by 1/eps: eps is 5e-3 here, and gradients are
 * compared relative to max(max |numeric|, 1e-2) since the deepest-layer
 * gradients of a short sequence are only ~1e-3. */
static double fd_err(lstm_ctx *k, float *p, const float *grad, size_t n) {
    const float eps = 5e-3f;
    double maxdiff = 0, maxnum = 1e-2;
    for (size_t i = 0; i < n; i++) {
        float v = p[i];
        p[i] = v + eps; double lp = lstm_loss(k);
        p[i] = v - eps; double lm = lstm_loss(k);
        p[i] = v;
        double num = (lp - lm) / (2.0 * eps);
        maxdiff = fmax(maxdiff, fabs(num - grad[i]));
        maxnum = fmax(maxnum, fabs(num));
    }
    return maxdiff / maxnum;
}

static void check_lstm_backward(int n, int t, int in, int h, int layers) {
    lstm_ctx k;
    ctx_init(&k, n, t, in, h, layers, 1);
    float *dwih[MAXL], *dwhh[MAXL], *dbih[MAXL], *dbhh[MAXL];
    size_t nx = (size_t)n * t * in;
    for (int l = 0; l < layers; l++) {
        int il = l == 0 ? in : h;
        dwih[l] = calloc((size_t)4 * h * il, sizeof(float));
        dwhh[l] = calloc((size_t)4 * h * h, sizeof(float));
        dbih[l] = calloc(4 * h, sizeof(float));
        dbhh[l] = calloc(4 * h, sizeof(float));
    }
    float *dx = malloc(sizeof(float) * nx);
    for (size_t i = 0; i < nx; i++) dx[i] = NAN;
    ql_lstm_forward(&k.s, k.x, &k.wt, k.y, k.cache, k.ws);
    ql_lstm_backward(&k.s, k.x, &k.wt, k.cache, k.r, dx, dwih, dwhh, dbih, dbhh, k.ws);
    double e = fd_err(&k, k.x, dx, nx);
    CHECK_MSG(e < 1e-2, "lstm L=%d dx %g", layers, e);
    for (int l = 0; l < layers; l++) {
        int il = l == 0 ? in : h;
        double e1 = fd_err(&k, k.wih[l], dwih[l], (size_t)4 * h * il);
        double e2 = fd_err(&k, k.whh[l], dwhh[l], (size_t)4 * h * h);
        double e3 = fd_err(&k, k.bih[l], dbih[l], 4 * h), e4 = fd_err(&k, k.bhh[l], dbhh[l], 4 * h);
        CHECK_MSG(e1 < 1e-2 && e2 < 1e-2 && e3 < 1e-2 && e4 < 1e-2,
                  "lstm layer %d: dw_ih %g dw_hh %g db_ih %g db_hh %g", l, e1, e2, e3, e4);
    }
    // gradients accumulate: a second call doubles them; dx NULL and grads NULL are skipped
    float *w0 = malloc(sizeof(float) * 4 * h * h);
    memcpy(w0, dwhh[0], sizeof(float) * 4 * h * h);
    ql_lstm_backward(&k.s, k.x, &k.wt, k.cache, k.r, NULL, NULL, dwhh, NULL, NULL, k.ws);
    for (int i = 0; i < 4 * h * h; i++) CHECK_NEAR(dwhh[0][i], 2 * w0[i], 1e-5);
    free(w0);
    for (int l = 0; l < layers; l++) { free(dwih[l]); free(dwhh[l]); free(dbih[l]); free(dbhh[l]); }
    free(dx);
    ctx_free(&k);
}

TEST(lstm_backward_one_layer) { check_lstm_backward(2, 4, 3, 4, 1); }
TEST(lstm_backward_two_layers) { check_lstm_backward(2, 3, 3, 4, 2); }
TEST(lstm_backward_three_layers_single_step) { check_lstm_backward(3, 1, 2, 3, 3); }
