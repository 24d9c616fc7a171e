/* Multi-layer LSTM, batch first, PyTorch gate order (i,f,g,o), zero initial
 * state. Per layer: one GEMM projects the inputs of all time steps
 * (gates = x W_ih^T + b_ih + b_hh), then one GEMM per step adds h_{t-1} W_hh^T.
 * Sequences are (N,T,*), so step t of all samples is a strided matrix
 * (row n at offset n*T*width) that cblas takes through its leading dimension.
 *
 * Cache, per layer l, (N,T,6H): activated gates (N,T,4H), c (N,T,H), h (N,T,H).
 * Workspace: forward without cache keeps gates, c and the hidden sequences
 * there; backward keeps dgates (N,T,4H), dh/dc carried across steps (N,H)
 * and the gradient flowing to the layer below (2 x (N,T,H)). */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include "ops/ops_internal.h"

static size_t nth(const ql_lstm_shape *s) { return (size_t)s->n * s->t * s->hidden; }

size_t ql_lstm_cache_floats(const ql_lstm_shape *s) { return (size_t)s->layers * 6 * nth(s); }

size_t ql_lstm_workspace_floats(const ql_lstm_shape *s) {
    size_t seq = s->layers > 1 ? 2 * nth(s) : 0;
    size_t fwd = 5 * nth(s) + seq;
    size_t bwd = 4 * nth(s) + 2 * (size_t)s->n * s->hidden + seq;
    return fwd > bwd ? fwd : bwd;
}

static float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

// one step of the cell for all samples: a (N,4H) pre-activations at row
// stride T*4H, replaced by the activated gates; c, h (N,H) at stride T*H
static void cell_step(const ql_lstm_shape *s, int t, float *gates, float *c, float *h) {
    const int H = s->hidden, T = s->t;
    #pragma omp parallel for schedule(static) if ((int64_t)s->n * H > (1 << 12))
    for (int64_t n = 0; n < s->n; n++) {
        float *a = gates + (n * T + t) * 4 * H;
        float *ct = c + (n * T + t) * H, *ht = h + (n * T + t) * H;
        const float *cp = t > 0 ? ct - H : NULL;
        for (int j = 0; j < H; j++) {
            float i = sigmoidf(a[j]), f = sigmoidf(a[H + j]);
            float g = tanhf(a[2 * H + j]), o = sigmoidf(a[3 * H + j]);
            a[j] = i; a[H + j] = f; a[2 * H + j] = g; a[3 * H + j] = o;
            ct[j] = (cp ? f * cp[j] : 0.0f) + i * g;
            ht[j] = o * tanhf(ct[j]);
        }
    }
}

static const float *bias_of(const float *const *b, int l) { return b ? b[l] : NULL; }

// x (N,T,I) -> y (N,T,H)
void ql_lstm_forward(const ql_lstm_shape *s, const float *x, const ql_lstm_weights *wt,
                     float *y, float *cache, float *ws) {
    const int N = s->n, T = s->t, H = s->hidden, L = s->layers;
    const size_t seq = nth(s);
    if (N <= 0 || T <= 0 || H <= 0 || L <= 0) return;
    const float *in = x;
    for (int l = 0; l < L; l++) {
        const int ni = l == 0 ? s->input : H;
        float *gates, *c, *h;
        if (cache) {
            gates = cache + l * 6 * seq;
            c = gates + 4 * seq;
            h = c + seq;
        } else {
            gates = ws;
            c = ws + 4 * seq;
            h = l == L - 1 ? y : ws + (5 + l % 2) * seq;
        }
        // gates (N*T,4H) = in (N*T,I) W_ih^T + b_ih + b_hh
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N * T, 4 * H, ni, 1.0f, in, ni,
                    wt->w_ih[l], ni, 0.0f, gates, 4 * H);
        const float *bih = bias_of(wt->b_ih, l), *bhh = bias_of(wt->b_hh, l);
        if (bih) ql_ops_add_rows((int64_t)N * T, 4 * H, bih, gates, 4 * H);
        if (bhh) ql_ops_add_rows((int64_t)N * T, 4 * H, bhh, gates, 4 * H);
        for (int t = 0; t < T; t++) {
            if (t > 0)  // gates_t (N,4H) += h_{t-1} (N,H) W_hh^T
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, 4 * H, H, 1.0f,
                            h + (size_t)(t - 1) * H, T * H, wt->w_hh[l], H, 1.0f,
                            gates + (size_t)t * 4 * H, T * 4 * H);
            cell_step(s, t, gates, c, h);
        }
        in = h;
    }
    if (cache) memcpy(y, in, sizeof(float) * seq);
}

// BPTT through one layer for all steps: dh_in (N,T,H) from above -> dA (N,T,4H)
// gradients of the pre-activations; dW_hh accumulated on the way
static void layer_bptt(const ql_lstm_shape *s, const float *gates, const float *c, const float *h,
                       const float *w_hh, const float *dh_in, float *dA, float *dh_next,
                       float *dc_next, float *dw_hh) {
    const int N = s->n, T = s->t, H = s->hidden;
    memset(dh_next, 0, sizeof(float) * N * H);
    memset(dc_next, 0, sizeof(float) * N * H);
    for (int t = T - 1; t >= 0; t--) {
        #pragma omp parallel for schedule(static) if ((int64_t)N * H > (1 << 12))
        for (int64_t n = 0; n < N; n++) {
            size_t r = (size_t)n * T + t;
            const float *a = gates + r * 4 * H, *ct = c + r * H, *gi = dh_in + r * H;
            const float *cp = t > 0 ? ct - H : NULL;
            float *d = dA + r * 4 * H, *dhn = dh_next + n * H, *dcn = dc_next + n * H;
            for (int j = 0; j < H; j++) {
                float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
                float tc = tanhf(ct[j]), dh = gi[j] + dhn[j];
                float dc = dcn[j] + dh * o * (1.0f - tc * tc);
                d[j] = dc * g * i * (1.0f - i);
                d[H + j] = cp ? dc * cp[j] * f * (1.0f - f) : 0.0f;
                d[2 * H + j] = dc * i * (1.0f - g * g);
                d[3 * H + j] = dh * tc * o * (1.0f - o);
                dcn[j] = dc * f;
            }
        }
        if (t == 0) break;
        const float *dAt = dA + (size_t)t * 4 * H;
        // dh_{t-1} (N,H) = dA_t (N,4H) W_hh (4H,H)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, H, 4 * H, 1.0f, dAt, T * 4 * H,
                    w_hh, H, 0.0f, dh_next, H);
        if (dw_hh)  // dW_hh (4H,H) += dA_t^T h_{t-1}
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4 * H, H, N, 1.0f, dAt, T * 4 * H,
                        h + (size_t)(t - 1) * H, T * H, 1.0f, dw_hh, H);
    }
}

static float *grad_of(float *const *g, int l) { return g ? g[l] : NULL; }

void ql_lstm_backward(const ql_lstm_shape *s, const float *x, const ql_lstm_weights *wt,
                      const float *cache, const float *dy, float *dx,
                      float *const *dw_ih, float *const *dw_hh,
                      float *const *db_ih, float *const *db_hh, float *ws) {
    const int N = s->n, T = s->t, H = s->hidden, L = s->layers;
    const size_t seq = nth(s);
    if (N <= 0 || T <= 0 || H <= 0 || L <= 0) {
        if (dx && N > 0 && T > 0 && s->input > 0) memset(dx, 0, sizeof(float) * N * T * s->input);
        return;
    }
    float *dA = ws, *dh_next = ws + 4 * seq, *dc_next = dh_next + (size_t)N * H;
    float *below[2] = {dc_next + (size_t)N * H, dc_next + (size_t)N * H + seq};
    const float *dh_in = dy;
    for (int l = L - 1; l >= 0; l--) {
        const int ni = l == 0 ? s->input : H;
        const float *gates = cache + l * 6 * seq, *c = gates + 4 * seq, *h = c + seq;
        const float *in = l == 0 ? x : cache + (l - 1) * 6 * seq + 5 * seq;
        layer_bptt(s, gates, c, h, wt->w_hh[l], dh_in, dA, dh_next, dc_next, grad_of(dw_hh, l));
        float *dwi = grad_of(dw_ih, l), *dbi = grad_of(db_ih, l), *dbh = grad_of(db_hh, l);
        if (dwi)  // dW_ih (4H,I) += dA^T (4H,NT) in (NT,I)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4 * H, ni, N * T, 1.0f, dA,
                        4 * H, in, ni, 1.0f, dwi, ni);
        if (dbi) ql_ops_colsum_add((int64_t)N * T, 4 * H, dA, 4 * H, dbi);
        if (dbh) ql_ops_colsum_add((int64_t)N * T, 4 * H, dA, 4 * H, dbh);
        float *dst = l == 0 ? dx : below[l % 2];
        if (dst)  // d in (NT,I) = dA (NT,4H) W_ih (4H,I)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N * T, ni, 4 * H, 1.0f, dA,
                        4 * H, wt->w_ih[l], ni, 0.0f, dst, ni);
        dh_in = dst;
    }
}
