/* Internals of the half-precision kernels (half.c, half_avx2.c, hgemm.c,
 * hgemm_avx512.c); not part of the public API. */
#ifndef QLAB_HALF_INTERNAL_H
#define QLAB_HALF_INTERNAL_H
#include <stdint.h>
#include "qlab/half.h"

#define QL_F16C_AVX2 __attribute__((target("avx2,fma,f16c")))
#define QL_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

/* F16C / AVX2 array conversions (half_avx2.c), bit-exact with the _ref functions. */
void ql_f32_to_f16_avx2(int64_t n, const float *x, uint16_t *y);
void ql_f16_to_f32_avx2(int64_t n, const uint16_t *x, float *y);
void ql_f32_to_bf16_avx2(int64_t n, const float *x, uint16_t *y);
void ql_bf16_to_f32_avx2(int64_t n, const uint16_t *x, float *y);

/* Scalar array loops of the _ref functions (half.c). */
void ql_f32_to_f16_scalar(int64_t n, const float *x, uint16_t *y);
void ql_f16_to_f32_scalar(int64_t n, const uint16_t *x, float *y);
void ql_f32_to_bf16_scalar(int64_t n, const float *x, uint16_t *y);
void ql_bf16_to_f32_scalar(int64_t n, const uint16_t *x, float *y);

// y[r*ldy + j] = x_r . w_j + b_j for rows r < mr (<= 4), columns j in [n0, n1);
// w (N,K) f16 (bf16 = 0) or bf16 (bf16 = 1), widened in registers
void ql_hdot_rows_avx2(int bf16, int mr, int k, const float *x, int64_t ldx, const uint16_t *w,
                       int n0, int n1, const float *b, float *y, int64_t ldy);

/* Packed bf16 weights for the dpbf16 kernels: panels of 16 columns, K in
 * pairs; panel p, pair s, column c holds W[16p+c][2s], W[16p+c][2s+1] at
 * w + ((p*k2 + s)*16 + c)*2 (zero padded past N and K). Activations are bf16
 * rows of 2*k2 values (zero padded), read as 32-bit pairs. */
#define QL_DPBF16_NR 16   /* columns per panel */
#define QL_DPBF16_MR 8    /* rows per micro-tile */
/* y tile (mr <= MR rows, columns [16p, 16p + nr)) = a . panel p + b; nr <= 16 */
typedef void (*ql_dpbf16_kernel_fn)(int mr, int nr, int64_t k2, const uint32_t *a, int64_t lda,
                                    const uint16_t *wp, const float *b, float *y, int64_t ldy);
void ql_dpbf16_kernel_ref(int mr, int nr, int64_t k2, const uint32_t *a, int64_t lda, const uint16_t *wp,
                          const float *b, float *y, int64_t ldy);
void ql_dpbf16_kernel_avx512(int mr, int nr, int64_t k2, const uint32_t *a, int64_t lda, const uint16_t *wp,
                             const float *b, float *y, int64_t ldy);

#endif
