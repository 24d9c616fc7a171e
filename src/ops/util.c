/* Small reductions shared by the kernels. */
#include <cblas.h>
#include <omp.h>
#include "ops/ops_internal.h"

#define COLBLK 64

int ql_ops_parallel(int64_t work, int64_t min_work) {
    return work > min_work && omp_get_max_threads() > 1;
}

void ql_ops_thread_range(int64_t n, int64_t align, int64_t *lo, int64_t *hi) {
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t blocks = (n + align - 1) / align;
    int64_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}

// x (M,N) row stride ldx -> out (N) += column sums
void ql_ops_colsum_add(int64_t m, int n, const float *x, int64_t ldx, float *out) {
    int nblk = (n + COLBLK - 1) / COLBLK;
    #pragma omp parallel for schedule(static) if (m * (int64_t)n > (1 << 16))
    for (int bi = 0; bi < nblk; bi++) {
        int j0 = bi * COLBLK, nb = n - j0 < COLBLK ? n - j0 : COLBLK;
        double acc[COLBLK] = {0};
        for (int64_t i = 0; i < m; i++) {
            const float *row = x + i * ldx + j0;
            for (int j = 0; j < nb; j++) acc[j] += row[j];
        }
        for (int j = 0; j < nb; j++) out[j0 + j] += (float)acc[j];
    }
}

// y (M,N) row stride ldy += b (N) on every row
void ql_ops_add_rows(int64_t m, int n, const float *b, float *y, int64_t ldy) {
    #pragma omp parallel for schedule(static) if (m * (int64_t)n > (1 << 16))
    for (int64_t i = 0; i < m; i++) {
        float *row = y + i * ldy;
        for (int j = 0; j < n; j++) row[j] += b[j];
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
