/* Linear: y = x w^T + b with PyTorch's [out,in] weight, through cblas_sgemm. */
#include <cblas.h>
#include "ops/ops_internal.h"

// x (M,K), w (N,K), b (N) or NULL -> y (M,N)
void ql_linear_forward(int64_t m, int k, int n, const float *x, const float *w,
                       const float *b, float *y) {
    if (m <= 0 || n <= 0) return;
    ql_ops_gemm_nt(m, n, k, x, k, w, k, y, n);
    if (b) ql_ops_add_rows(m, n, b, y, n);
}

// dx (M,K) = dy w; dw (N,K) += dy^T x; db (N) += column sums of dy
void ql_linear_backward(int64_t m, int k, int n, const float *x, const float *w,
                        const float *dy, float *dx, float *dw, float *db) {
    if (m <= 0 || n <= 0) return;
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, k, n, 1.0f, dy, n, w, k,
                    0.0f, dx, k);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, (int)m, 1.0f, dy, n, x, k,
                    1.0f, dw, k);
    if (db) ql_ops_colsum_add(m, n, dy, n, db);
}
