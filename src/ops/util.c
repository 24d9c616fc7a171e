/* Small reductions and helpers shared by the kernels. */
#include <cblas.h>
#include <omp.h>
#include <string.h>
#include "qlab/cpu.h"
#include "ops/ops_internal.h"

#define SUM_ROWS 32   /* rows summed in float before the double accumulators */

int ql_ops_parallel(int64_t work, int64_t min_work) {
    return work > min_work && !omp_in_parallel() && omp_get_max_threads() > 1;   /* a nested team is one thread */
}

void ql_ops_thread_range(int64_t n, int64_t align, int64_t *lo, int64_t *hi) {
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t blocks = (n + align - 1) / align;
    int64_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}

int ql_ops_use_avx2(void) { return ql_isa_active() >= QL_ISA_AVX2; }

/* Column sums (see ops_internal.h) over rows [r0, r1), added into s1, s2.
 * Rows are streamed in order (what the hardware prefetchers follow best),
 * two at a time, into float sums of SUM_ROWS rows kept in L1. */
QL_OPS_INLINE void col_sums_rows(int64_t r0, int64_t r1, int n, int64_t ld, const float *x,
                                 const float *dy, const float *k, double *s1, double *s2) {
    float f1[QL_OPS_COLS], f2[QL_OPS_COLS];
    for (int64_t i0 = r0; i0 < r1; i0 += SUM_ROWS) {
        int64_t i1 = r1 - i0 < SUM_ROWS ? r1 : i0 + SUM_ROWS, i = i0;
        #pragma omp simd
        for (int j = 0; j < n; j++) { f1[j] = 0.0f; f2[j] = 0.0f; }
        if (!k) {
            for (; i < i1; i++) {
                const float *xr = x + i * ld;
                #pragma omp simd
                for (int j = 0; j < n; j++) f1[j] += xr[j];
            }
        } else if (!dy) {
            for (; i + 1 < i1; i += 2) {
                const float *x0 = x + i * ld, *x1 = x0 + ld;
                #pragma omp simd
                for (int j = 0; j < n; j++) {
                    float d0 = x0[j] - k[j], d1 = x1[j] - k[j];
                    f1[j] += d0 + d1;
                    f2[j] += d0 * d0 + d1 * d1;
                }
            }
            for (; i < i1; i++) {
                const float *xr = x + i * ld;
                #pragma omp simd
                for (int j = 0; j < n; j++) { float d = xr[j] - k[j]; f1[j] += d; f2[j] += d * d; }
            }
        } else {
            for (; i + 1 < i1; i += 2) {
                const float *x0 = x + i * ld, *x1 = x0 + ld, *g0 = dy + i * ld, *g1 = g0 + ld;
                #pragma omp simd
                for (int j = 0; j < n; j++) {
                    f1[j] += g0[j] + g1[j];
                    f2[j] += g0[j] * (x0[j] - k[j]) + g1[j] * (x1[j] - k[j]);
                }
            }
            for (; i < i1; i++) {
                const float *xr = x + i * ld, *gr = dy + i * ld;
                #pragma omp simd
                for (int j = 0; j < n; j++) { f1[j] += gr[j]; f2[j] += gr[j] * (xr[j] - k[j]); }
            }
        }
        #pragma omp simd
        for (int j = 0; j < n; j++) s1[j] += f1[j];
        if (k) {
            #pragma omp simd
            for (int j = 0; j < n; j++) s2[j] += f2[j];
        }
    }
}

static void col_sums_generic(int64_t r0, int64_t r1, int n, int64_t ld, const float *x,
                             const float *dy, const float *k, double *s1, double *s2) {
    col_sums_rows(r0, r1, n, ld, x, dy, k, s1, s2);
}

QL_OPS_AVX2 static void col_sums_avx2(int64_t r0, int64_t r1, int n, int64_t ld, const float *x,
                                      const float *dy, const float *k, double *s1, double *s2) {
    col_sums_rows(r0, r1, n, ld, x, dy, k, s1, s2);
}

void ql_ops_col_sums(int64_t m, int n, int64_t ld, const float *x, const float *dy, const float *k,
                     double *s1, double *s2) {
    void (*rows)(int64_t, int64_t, int, int64_t, const float *, const float *, const float *,
                 double *, double *) = ql_ops_use_avx2() ? col_sums_avx2 : col_sums_generic;
    for (int c0 = 0; c0 < n; c0 += QL_OPS_COLS) {
        int nb = n - c0 < QL_OPS_COLS ? n - c0 : QL_OPS_COLS;
        const float *xb = x + c0, *gb = dy ? dy + c0 : NULL, *kb = k ? k + c0 : NULL;
        double *s1b = s1 + c0, *s2b = k ? s2 + c0 : NULL;
        memset(s1b, 0, sizeof(double) * nb);
        if (s2b) memset(s2b, 0, sizeof(double) * nb);
        if (m <= SUM_ROWS || !ql_ops_parallel(m * nb, QL_OPS_PAR_WORK)) {
            rows(0, m, nb, ld, xb, gb, kb, s1b, s2b);
            continue;
        }
        #pragma omp parallel
        {
            double p1[QL_OPS_COLS] = {0}, p2[QL_OPS_COLS] = {0};
            int64_t lo, hi;
            ql_ops_thread_range(m, SUM_ROWS, &lo, &hi);
            rows(lo, hi, nb, ld, xb, gb, kb, p1, p2);
            #pragma omp for ordered schedule(static, 1)
            for (int t = 0; t < omp_get_num_threads(); t++) {
                #pragma omp ordered
                for (int j = 0; j < nb; j++) {
                    s1b[j] += p1[j];
                    if (s2b) s2b[j] += p2[j];
                }
            }
        }
    }
}

// x (M,N) row stride ldx -> out (N) += column sums
void ql_ops_colsum_add(int64_t m, int n, const float *x, int64_t ldx, float *out) {
    for (int c0 = 0; c0 < n; c0 += QL_OPS_COLS) {
        int nb = n - c0 < QL_OPS_COLS ? n - c0 : QL_OPS_COLS;
        double s[QL_OPS_COLS];
        ql_ops_col_sums(m, nb, ldx, x + c0, NULL, NULL, s, NULL);
        for (int j = 0; j < nb; j++) out[c0 + j] += (float)s[j];
    }
}

static void add_rows(int64_t r0, int64_t r1, int n, const float *b, float *y, int64_t ldy) {
    for (int64_t i = r0; i < r1; i++) {
        float *row = y + i * ldy;
        #pragma omp simd
        for (int j = 0; j < n; j++) row[j] += b[j];
    }
}

// y (M,N) row stride ldy += b (N) on every row
void ql_ops_add_rows(int64_t m, int n, const float *b, float *y, int64_t ldy) {
    if (!ql_ops_parallel(m * (int64_t)n, QL_OPS_PAR_ELEMS)) { add_rows(0, m, n, b, y, ldy); return; }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(m, 1, &lo, &hi);
        add_rows(lo, hi, n, b, y, ldy);
    }
}

void ql_ops_gemm_nt(int64_t m, int n, int k, const float *a, int64_t lda, const float *b, int64_t ldb,
                    float *c, int64_t ldc) {
    if (m == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, b, (int)ldb, a, 1, 0.0f, c, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, n, k, 1.0f, a, (int)lda, b, (int)ldb,
                    0.0f, c, (int)ldc);
}
