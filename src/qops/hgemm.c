/* GEMM with half weights, y (M,N) = x (M,K) . W^T + b, activations f32.
 * Paths (include/qlab/half.h): WIDEN converts W to f32 in the workspace and
 * calls cblas_sgemm; DOT_AVX2 widens W in registers (batch-1 sizes, where the
 * weights' bytes are the cost); the DPBF16 paths round x to bf16 and run
 * vdpbf16ps (AVX-512 BF16) or its scalar emulation over weights packed once. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qops/half_internal.h"

#define DOT_MAX_M 4          /* rows up to which DOT_AVX2 beats widening + sgemm (one pass of 4 rows) */
#define PAR_WORK (1 << 17)   /* multiply-adds per call before OpenMP is worth it */

struct ql_hgemm {
    ql_dtype d;
    int n, k;
    ql_hgemm_path path;      /* AUTO (per call: DOT_AVX2 or WIDEN) or a fixed path */
    const uint16_t *w;       /* (N,K), borrowed */
    uint16_t *packed;        /* DPBF16 paths: panels (half_internal.h), owned */
    int64_t k2, npanels;
};

static ql_hgemm_path forced = QL_HGEMM_AUTO;

void ql_hgemm_force(ql_hgemm_path p) { forced = p; }

const char *ql_hgemm_path_name(ql_hgemm_path p) {
    static const char *const names[QL_HGEMM_PATHS] = {"auto", "widen", "dot_avx2", "dpbf16_ref", "dpbf16"};
    return (unsigned)p < QL_HGEMM_PATHS ? names[p] : "?";
}

int ql_hgemm_path_available(ql_dtype d, ql_hgemm_path p) {
    const ql_cpu_features *f = ql_cpu();
    if (d != QL_DTYPE_F16 && d != QL_DTYPE_BF16) return 0;
    switch (p) {
    case QL_HGEMM_AUTO: case QL_HGEMM_WIDEN: return 1;
    case QL_HGEMM_DOT_AVX2: return f->avx2 && f->fma && f->f16c;
    case QL_HGEMM_DPBF16_REF: return d == QL_DTYPE_BF16;
    case QL_HGEMM_DPBF16: return d == QL_DTYPE_BF16 && f->avx512_bf16 && f->avx512bw && f->avx512vl;
    default: return 0;
    }
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static int is_dpbf16(ql_hgemm_path p) { return p == QL_HGEMM_DPBF16 || p == QL_HGEMM_DPBF16_REF; }

// W (N,K) bf16 -> panels of 16 columns by pairs of K (zero padded)
static uint16_t *pack_bf16(const uint16_t *w, int n, int k, int64_t k2, int64_t npanels) {
    uint16_t *p = ql_calloc((size_t)(npanels * k2) * QL_DPBF16_NR * 2 * sizeof *p);
    if (!p) return NULL;
    for (int64_t pn = 0; pn < npanels; pn++)
        for (int c = 0; c < QL_DPBF16_NR; c++) {
            int64_t col = pn * QL_DPBF16_NR + c;
            if (col >= n) break;
            for (int kk = 0; kk < k; kk++)
                p[((pn * k2 + kk / 2) * QL_DPBF16_NR + c) * 2 + kk % 2] = w[col * k + kk];
        }
    return p;
}

ql_hgemm *ql_hgemm_new(ql_dtype d, const uint16_t *w, int n, int k, ql_hgemm_path path) {
    if ((d != QL_DTYPE_F16 && d != QL_DTYPE_BF16) || n <= 0 || k <= 0 || !w) {
        ql_error(QL_EINVAL, "hgemm: needs f16 or bf16 weights of a positive shape, got %s (%d,%d)",
                 ql_dtype_name(d), n, k);
        return NULL;
    }
    if (!ql_hgemm_path_available(d, path)) {
        ql_error(QL_EUNSUPPORTED, "hgemm: path %s does not run %s weights on this CPU", ql_hgemm_path_name(path),
                 ql_dtype_name(d));
        return NULL;
    }
    if (path == QL_HGEMM_AUTO) {
        if (forced != QL_HGEMM_AUTO && ql_hgemm_path_available(d, forced)) path = forced;
        else if (ql_isa_active() >= QL_ISA_AVX512 && ql_hgemm_path_available(d, QL_HGEMM_DPBF16)) path = QL_HGEMM_DPBF16;
    }
    ql_hgemm *h = ql_calloc(sizeof *h);
    if (!h) return NULL;
    h->d = d; h->n = n; h->k = k; h->w = w; h->path = path;
    h->k2 = cdiv(k, 2);
    h->npanels = cdiv(n, QL_DPBF16_NR);
    if (is_dpbf16(path) && !(h->packed = pack_bf16(w, n, k, h->k2, h->npanels))) {
        ql_free(h);
        return NULL;
    }
    return h;
}

void ql_hgemm_free(ql_hgemm *h) {
    if (!h) return;
    ql_free(h->packed);
    ql_free(h);
}

ql_hgemm_path ql_hgemm_chosen(const ql_hgemm *h, int64_t m) {
    if (h->path != QL_HGEMM_AUTO) return h->path;
    if (m <= DOT_MAX_M && ql_isa_active() >= QL_ISA_AVX2 && ql_hgemm_path_available(h->d, QL_HGEMM_DOT_AVX2))
        return QL_HGEMM_DOT_AVX2;
    return QL_HGEMM_WIDEN;
}

size_t ql_hgemm_workspace(const ql_hgemm *h, int64_t m) {
    switch (ql_hgemm_chosen(h, m)) {
    case QL_HGEMM_WIDEN: return (size_t)h->n * h->k * sizeof(float);
    case QL_HGEMM_DPBF16: case QL_HGEMM_DPBF16_REF: return (size_t)(m > 0 ? m : 0) * h->k2 * 4;
    default: return 0;
    }
}

static int threads_for(double work) {
    if (omp_in_parallel() || work < PAR_WORK) return 1;
    return omp_get_max_threads();
}

static void add_bias(int64_t m, int n, const float *b, float *y, int64_t ldy) {
    if (!b) return;
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < n; j++) y[i * ldy + j] += b[j];
}

// column ranges (even sizes) over threads, rows in groups of 4 inside each range
static void run_dot(const ql_hgemm *h, int64_t m, const float *x, int64_t ldx, const float *b, float *y,
                    int64_t ldy) {
    int T = threads_for((double)m * h->n * h->k);
    int64_t per = cdiv(cdiv(h->n, T), 2) * 2;
    int nch = (int)cdiv(h->n, per);
    #pragma omp parallel for schedule(static) num_threads(T) if (T > 1)
    for (int c = 0; c < nch; c++) {
        int j0 = (int)(c * per), j1 = (int)(j0 + per < h->n ? j0 + per : h->n);
        for (int64_t r = 0; r < m; r += 4)
            ql_hdot_rows_avx2(h->d == QL_DTYPE_BF16, (int)(m - r < 4 ? m - r : 4), h->k, x + r * ldx, ldx, h->w,
                              j0, j1, b, y + r * ldy, ldy);
    }
}

static void run_dpbf16(const ql_hgemm *h, int64_t m, const float *x, int64_t ldx, const float *b, float *y,
                       int64_t ldy, void *ws) {
    uint16_t *a16 = ws;   // (M, 2*k2) bf16 rows
    const int64_t k2 = h->k2, row = 2 * k2;
    for (int64_t i = 0; i < m; i++) {
        ql_f32_to_bf16(h->k, x + i * ldx, a16 + i * row);
        if (h->k % 2) a16[i * row + h->k] = 0;
    }
    ql_dpbf16_kernel_fn kern = h->path == QL_HGEMM_DPBF16 ? ql_dpbf16_kernel_avx512 : ql_dpbf16_kernel_ref;
    const uint32_t *a = ws;
    int64_t mb = cdiv(m, QL_DPBF16_MR), ntasks = mb * h->npanels;
    int T = threads_for((double)m * h->n * h->k);
    #pragma omp parallel for schedule(static) num_threads(T) if (T > 1)
    for (int64_t t = 0; t < ntasks; t++) {
        int64_t r0 = (t / h->npanels) * QL_DPBF16_MR, pn = t % h->npanels, c0 = pn * QL_DPBF16_NR;
        int mr = (int)(m - r0 < QL_DPBF16_MR ? m - r0 : QL_DPBF16_MR);
        int nr = (int)(h->n - c0 < QL_DPBF16_NR ? h->n - c0 : QL_DPBF16_NR);
        kern(mr, nr, k2, a + r0 * k2, k2, h->packed + pn * k2 * QL_DPBF16_NR * 2, b ? b + c0 : NULL,
             y + r0 * ldy + c0, ldy);
    }
}

void ql_hgemm_forward(const ql_hgemm *h, int64_t m, const float *x, int64_t ldx, const float *b, float *y,
                      int64_t ldy, void *ws) {
    if (!h || m <= 0) return;
    switch (ql_hgemm_chosen(h, m)) {
    case QL_HGEMM_DOT_AVX2:
        run_dot(h, m, x, ldx, b, y, ldy);
        break;
    case QL_HGEMM_DPBF16: case QL_HGEMM_DPBF16_REF:
        run_dpbf16(h, m, x, ldx, b, y, ldy, ws);
        break;
    default: {
        float *wf = ws;
        ql_half_to_f32(h->d, (int64_t)h->n * h->k, h->w, wf);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, h->n, h->k, 1.0f, x, (int)ldx, wf, h->k,
                    0.0f, y, (int)ldy);
        add_bias(m, h->n, b, y, ldy);
    }
    }
}

/* ---- the dpbf16 arithmetic, emulated: per pair, odd element first, each a
 * fused multiply-add rounded to nearest even, bf16 denormals read as zero,
 * denormal results flushed to zero (vdpbf16ps ignores MXCSR). */
static float bf16_daz(uint16_t h) {
    if (!(h & 0x7f80u)) return (h & 0x8000u) ? -0.0f : 0.0f;
    return ql_bf16_to_f32_ref(h);
}

static float ftz(float v) { return fabsf(v) < FLT_MIN ? copysignf(0.0f, v) : v; }

void ql_dpbf16_kernel_ref(int mr, int nr, int64_t k2, const uint32_t *a, int64_t lda, const uint16_t *wp,
                          const float *b, float *y, int64_t ldy) {
    for (int r = 0; r < mr; r++)
        for (int c = 0; c < nr; c++) {
            float acc = 0.0f;
            for (int64_t s = 0; s < k2; s++) {
                uint32_t ap = a[r * lda + s];
                const uint16_t *wq = wp + (s * QL_DPBF16_NR + c) * 2;
                acc = ftz(fmaf(bf16_daz((uint16_t)(ap >> 16)), bf16_daz(wq[1]), acc));
                acc = ftz(fmaf(bf16_daz((uint16_t)ap), bf16_daz(wq[0]), acc));
            }
            y[r * ldy + c] = acc + (b ? b[c] : 0.0f);
        }
}
