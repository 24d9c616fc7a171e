/* Small reductions shared by the kernels. */
#include <cblas.h>
#include "ops/ops_internal.h"

#define COLBLK 64

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
