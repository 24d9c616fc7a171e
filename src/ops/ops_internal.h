/* Helpers shared by the FP32 kernels in src/ops (not part of the public API). */
#ifndef QLAB_OPS_INTERNAL_H
#define QLAB_OPS_INTERNAL_H
#include <stdint.h>
#include "qlab/ops.h"

/* out[j] += sum_i x[i*ldx + j], x (M, N) with row stride ldx; sums in double. */
void ql_ops_colsum_add(int64_t m, int n, const float *x, int64_t ldx, float *out);
/* y[i*ldy + j] += b[j] for an (M, N) block. */
void ql_ops_add_rows(int64_t m, int n, const float *b, float *y, int64_t ldy);

/* C (M,N) = A (M,K) B^T with B (N,K) row-major, overwriting C. One row is a
 * matrix-vector product (sgemv streams B once; sgemm would pack it first). */
void ql_ops_gemm_nt(int64_t m, int n, int k, const float *a, int64_t lda, const float *b, int64_t ldb,
                    float *c, int64_t ldc);

/* Depthwise conv (groups == c == oc), direct kernels; ws holds 2*KH*KW*C floats. */
void ql_conv2d_dw_forward(const ql_conv2d_shape *s, const float *x, const float *w,
                          const float *b, float *y, float *ws);
void ql_conv2d_dw_backward(const ql_conv2d_shape *s, const float *x, const float *w,
                           const float *dy, float *dx, float *dw, float *db, float *ws);

#endif
