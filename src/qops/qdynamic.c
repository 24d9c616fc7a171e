/* Dynamic INT8 linear and LSTM (include/qlab/qdynamic.h): the activations'
 * qparams come from each call's own min/max, the products run through the
 * static path's packed u8 x s8 GEMM with an f32 epilogue. */
#include <immintrin.h>
#include <math.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/observer.h"
#include "qlab/qdynamic.h"
#include "qlab/qops.h"

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* The static GEMM's AVX2 kernel may return with the upper halves of the ymm
 * registers dirty (store_row is tail-called in qgemm_avx2.c, past the
 * kernel's vzeroupper); the SSE code after it (the f32 gates, libm) then
 * runs several times slower. One vzeroupper after each GEMM call settles it. */
__attribute__((target("avx"))) static void clear_upper_avx(void) { _mm256_zeroupper(); }
static void clear_upper(void) {
    if (ql_cpu()->avx2) clear_upper_avx();
}

void ql_dynamic_qparams(int64_t rows, int64_t cols, const float *x, int64_t ldx, float *scale,
                        int32_t *zero_point) {
    float lo = 0.0f, hi = 0.0f;   // the range always holds 0
    for (int64_t i = 0; i < rows; i++) {
        const float *r = x + i * ldx;
        for (int64_t j = 0; j < cols; j++) {
            lo = r[j] < lo ? r[j] : lo;
            hi = r[j] > hi ? r[j] : hi;
        }
    }
    ql_qparams_from_range(lo, hi, 0, 255, 0, QL_DTYPE_U8, scale, zero_point);
}

/* ---- dynamic linear ------------------------------------------------------------ */
struct ql_dlinear {
    int k, n;
    ql_qgemm_packed *gemm;
    float *w_scale;   /* (N) */
    float *bias;      /* (N) or NULL */
};

void ql_dlinear_free(ql_dlinear *l) {
    if (!l) return;
    ql_qgemm_packed_free(l->gemm);
    ql_free(l->w_scale);
    ql_free(l->bias);
    ql_free(l);
}

ql_dlinear *ql_dlinear_new(int k, int n, const int8_t *w, const float *w_scale, const float *bias, ql_isa isa) {
    if (k <= 0 || n <= 0 || !w || !w_scale) {
        ql_error(QL_EINVAL, "dlinear: bad shape (in %d, out %d) or missing weights", k, n);
        return NULL;
    }
    for (int j = 0; j < n; j++)
        if (!(w_scale[j] >= 0 && w_scale[j] < INFINITY)) {
            ql_error(QL_EINVAL, "dlinear: weight scale %d is %g", j, (double)w_scale[j]);
            return NULL;
        }
    ql_dlinear *l = ql_calloc(sizeof *l);
    if (!l) return NULL;
    l->k = k; l->n = n;
    if (!(l->w_scale = ql_malloc(sizeof(float) * n))) goto fail;
    memcpy(l->w_scale, w_scale, sizeof(float) * n);
    if (bias) {
        if (!(l->bias = ql_malloc(sizeof(float) * n))) goto fail;
        memcpy(l->bias, bias, sizeof(float) * n);
    }
    if (!(l->gemm = ql_qgemm_pack(w, n, k, isa, 255))) goto fail;
    return l;
fail:
    ql_dlinear_free(l);
    return NULL;
}

// u8 codes (M,K), then the per-call multipliers (N)
size_t ql_dlinear_workspace(const ql_dlinear *l, int64_t m) {
    return align64((size_t)(m > 0 ? m : 0) * l->k) + sizeof(float) * l->n;
}

void ql_dlinear_forward(const ql_dlinear *l, int64_t m, const float *x, int64_t ldx, float *y, int64_t ldy,
                        void *ws) {
    if (!l || m <= 0) return;
    float xs;
    int32_t xz;
    ql_dynamic_qparams(m, l->k, x, ldx, &xs, &xz);
    uint8_t *q = ws;
    float *mult = (float *)((char *)ws + align64((size_t)m * l->k));
    if (ldx == l->k) ql_quantize_u8(m * l->k, x, xs, xz, 0, 255, q);
    else
        for (int64_t i = 0; i < m; i++) ql_quantize_u8(l->k, x + i * ldx, xs, xz, 0, 255, q + i * l->k);
    for (int j = 0; j < l->n; j++) mult[j] = xs * l->w_scale[j];
    ql_qgemm_epilogue e = {.a_zero = xz, .mult = mult, .fbias = l->bias};
    ql_qgemm_f32(l->gemm, m, q, l->k, y, ldy, &e);
    clear_upper();
}

/* ---- dynamic LSTM ----------------------------------------------------------------- */
struct ql_dlstm {
    int input, hidden, layers;
    ql_dlinear **ih;   /* [layers] with bias b_ih + b_hh */
    ql_dlinear **hh;   /* [layers] no bias */
};

void ql_dlstm_free(ql_dlstm *l) {
    if (!l) return;
    for (int i = 0; l->ih && i < l->layers; i++) ql_dlinear_free(l->ih[i]);
    for (int i = 0; l->hh && i < l->layers; i++) ql_dlinear_free(l->hh[i]);
    ql_free(l->ih);
    ql_free(l->hh);
    ql_free(l);
}

ql_dlstm *ql_dlstm_new(int input, int hidden, int layers, const ql_dlstm_weights *w, ql_isa isa) {
    if (input <= 0 || hidden <= 0 || layers <= 0 || !w) {
        ql_error(QL_EINVAL, "dlstm: bad shape (input %d, hidden %d, layers %d)", input, hidden, layers);
        return NULL;
    }
    ql_dlstm *l = ql_calloc(sizeof *l);
    float *b = ql_malloc(sizeof(float) * 4 * (size_t)hidden);
    if (!l || !b) { ql_free(l); ql_free(b); return NULL; }
    l->input = input; l->hidden = hidden; l->layers = layers;
    l->ih = ql_calloc(sizeof *l->ih * (size_t)layers);
    l->hh = ql_calloc(sizeof *l->hh * (size_t)layers);
    int ok = l->ih && l->hh;
    for (int i = 0; ok && i < layers; i++) {
        const float *bi = w->b_ih ? w->b_ih[i] : NULL, *bh = w->b_hh ? w->b_hh[i] : NULL;
        for (int j = 0; j < 4 * hidden; j++) b[j] = (bi ? bi[j] : 0.0f) + (bh ? bh[j] : 0.0f);
        l->ih[i] = ql_dlinear_new(i ? hidden : input, 4 * hidden, w->w_ih[i], w->s_ih[i], bi || bh ? b : NULL, isa);
        l->hh[i] = ql_dlinear_new(hidden, 4 * hidden, w->w_hh[i], w->s_hh[i], NULL, isa);
        ok = l->ih[i] && l->hh[i];
    }
    ql_free(b);
    if (!ok) { ql_dlstm_free(l); return NULL; }
    return l;
}

typedef struct {
    float *gates;    /* (N,T,4H) */
    float *c;        /* (N,H) */
    float *rec;      /* (N,4H) h_{t-1} W_hh^T */
    float *seq[2];   /* (N,T,H) hidden sequences of the layers below the last */
    void *lin;       /* the dlinear workspace */
} dlstm_ws;

static size_t ws_layout(const ql_dlstm *l, int n, int t, char *base, dlstm_ws *w) {
    size_t H = (size_t)l->hidden, nt = (size_t)n * t, off = 0;
    size_t sizes[5] = {sizeof(float) * nt * 4 * H, sizeof(float) * n * H, sizeof(float) * n * 4 * H,
                       l->layers > 1 ? sizeof(float) * nt * H : 0, l->layers > 1 ? sizeof(float) * nt * H : 0};
    void **ptrs[5] = {(void **)&w->gates, (void **)&w->c, (void **)&w->rec, (void **)&w->seq[0], (void **)&w->seq[1]};
    for (int i = 0; i < 5; i++) {
        if (base) *ptrs[i] = base + off;
        off += align64(sizes[i]);
    }
    size_t lin = 0;
    for (int i = 0; i < l->layers; i++) {
        size_t a = ql_dlinear_workspace(l->ih[i], (int64_t)nt), b = ql_dlinear_workspace(l->hh[i], n);
        lin = a > lin ? a : lin;
        lin = b > lin ? b : lin;
    }
    if (base) w->lin = base + off;
    return off + lin;
}

size_t ql_dlstm_workspace(const ql_dlstm *l, int n, int t) {
    dlstm_ws w;
    return n > 0 && t > 0 ? ws_layout(l, n, t, NULL, &w) : 0;
}

static float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

// one step for all samples: pre-activations a (N,4H) at row stride T*4H plus
// rec (N,4H) (NULL at t = 0); c (N,H) updated in place; h_t (N,H) at stride T*H
static void cell_step(int n, int T, int H, int t, const float *gates, const float *rec, float *c, float *h) {
    #pragma omp parallel for schedule(static) if ((int64_t)n * H > (1 << 12))
    for (int64_t s = 0; s < n; s++) {
        const float *a = gates + (s * T + t) * 4 * H, *r = rec ? rec + s * 4 * H : NULL;
        float *cs = c + s * H, *ht = h + (s * T + t) * H;
        for (int j = 0; j < H; j++) {
            float ai = a[j], af = a[H + j], ag = a[2 * H + j], ao = a[3 * H + j];
            if (r) { ai += r[j]; af += r[H + j]; ag += r[2 * H + j]; ao += r[3 * H + j]; }
            float i = sigmoidf(ai), f = sigmoidf(af), g = tanhf(ag), o = sigmoidf(ao);
            cs[j] = (t > 0 ? f * cs[j] : 0.0f) + i * g;
            ht[j] = o * tanhf(cs[j]);
        }
    }
}

void ql_dlstm_forward(const ql_dlstm *l, int n, int t, const float *x, float *y, void *ws) {
    if (!l || n <= 0 || t <= 0) return;
    const int H = l->hidden, L = l->layers;
    dlstm_ws w;
    ws_layout(l, n, t, ws, &w);
    const float *in = x;
    for (int layer = 0; layer < L; layer++) {
        const int ni = layer ? H : l->input;
        float *h = layer == L - 1 ? y : w.seq[layer % 2];
        // gates (N*T,4H) = q(in) W_ih^T + b_ih + b_hh: every step's input at once
        ql_dlinear_forward(l->ih[layer], (int64_t)n * t, in, ni, w.gates, 4 * H, w.lin);
        for (int s = 0; s < t; s++) {
            if (s > 0)   // rec (N,4H) = q(h_{t-1}) W_hh^T; h_0 = 0 contributes nothing
                ql_dlinear_forward(l->hh[layer], n, h + (size_t)(s - 1) * H, (int64_t)t * H, w.rec, 4 * H, w.lin);
            cell_step(n, t, H, s, w.gates, s > 0 ? w.rec : NULL, w.c, h);
        }
        in = h;
    }
}
