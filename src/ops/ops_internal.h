/* Helpers shared by the FP32 kernels in src/ops (not part of the public API). */
#ifndef QLAB_OPS_INTERNAL_H
#define QLAB_OPS_INTERNAL_H
#include <stdint.h>
#include "qlab/ops.h"

/* Threading. A parallel region costs about a microsecond even when its if()
 * clause is false (libgomp still builds a team of one), so kernels ask
 * ql_ops_parallel() first and call their serial loop directly when the work
 * is small or only one thread is allowed: batch-1 inference pays nothing. */
#define QL_OPS_PAR_ELEMS (1 << 16)   /* elementwise: floats per call */
#define QL_OPS_PAR_WORK  (1 << 15)   /* kernels doing a few flops per float */
/* work > min_work, outside a team, and more than one OpenMP thread available */
int ql_ops_parallel(int64_t work, int64_t min_work);
/* Inside a parallel region: this thread's share [*lo, *hi) of n items, cut
 * at multiples of align (16 floats = one cache line, no false sharing). */
void ql_ops_thread_range(int64_t n, int64_t align, int64_t *lo, int64_t *hi);

/* AVX2 twins. A hot loop is written once, in plain C with `omp simd`, as a
 * QL_OPS_INLINE function, and wrapped twice: by a plain function (the
 * baseline x86-64 ISA) and by a QL_OPS_AVX2 one, in which the same loops are
 * compiled to 8-wide vectors. Kernels call the AVX2 twin when
 * ql_ops_use_avx2() (ql_isa_active() >= QL_ISA_AVX2, so QLAB_ISA=scalar
 * forces the baseline). Same operations in the same order per element, no
 * FMA (-ffp-contract=off): both twins give the same bits, and the tests check
 * both against the references. */
#define QL_OPS_INLINE static inline __attribute__((always_inline))
#define QL_OPS_AVX2 __attribute__((target("avx2")))
int ql_ops_use_avx2(void);

/* Column sums over the M rows of x (M, n) with row stride ld, overwriting
 * s1 and s2 (n doubles each):
 *   k == NULL:             s1 = sum x              (s2 unused, may be NULL)
 *   k != NULL, dy == NULL: s1 = sum (x - k),  s2 = sum (x - k)^2
 *   k != NULL, dy != NULL: s1 = sum dy,       s2 = sum dy (x - k)  (dy: stride ld)
 * Vectorised over columns: float partial sums over a few dozen rows, then
 * double; threads split the rows and are merged in thread order, so the
 * result does not depend on timing. */
#define QL_OPS_COLS 512   /* columns per block (stack arrays) */
void ql_ops_col_sums(int64_t m, int n, int64_t ld, const float *x, const float *dy, const float *k,
                     double *s1, double *s2);
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
