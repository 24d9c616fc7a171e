/* Low-precision kernels. Activations are u8 affine per tensor (scale, zero
 * point); weights s8 symmetric per output channel (zero point 0); products
 * accumulate in s32; results are requantized with per-channel float
 * multipliers: y = clamp(nearbyint(acc * mult[n]) + y_zero, qmin, qmax)
 * (round half to even, IEEE single precision, no FMA contraction), so every
 * ISA path agrees bit-exactly with the scalar reference.
 * ReLU / ReLU6 are fused into the clamp (qmin = y_zero, qmax = q(6)).
 * Kernels are chosen at run time from ql_isa_active() (QLAB_ISA). */
#ifndef QLAB_QOPS_H
#define QLAB_QOPS_H
#include <stddef.h>
#include <stdint.h>
#include "cpu.h"
#include "ops.h"

/* ---- elementwise quantize / dequantize ---------------------------------- */
/* y = clamp(nearbyint(x / scale) + zp, qmin, qmax) */
void ql_quantize_u8(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax, uint8_t *y);
void ql_quantize_s8(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax, int8_t *y);
/* y = (x - zp) * scale */
void ql_dequantize_u8(int64_t n, const uint8_t *x, float scale, int32_t zp, float *y);

/* ---- u8 x s8 -> s32 GEMM with packed weights ---------------------------- */
/* Weights W (N,K) s8 row-major, packed once for an ISA (layout private).
 * a_max: the largest activation code expected (127 for 7-bit activations,
 * 255 otherwise). It only picks the fastest kernel: any code still gives
 * exact results. */
typedef struct ql_qgemm_packed ql_qgemm_packed;
ql_qgemm_packed *ql_qgemm_pack(const int8_t *w, int n, int k, ql_isa isa, int a_max);
void ql_qgemm_packed_free(ql_qgemm_packed *p);
size_t ql_qgemm_packed_bytes(const ql_qgemm_packed *p);
ql_isa ql_qgemm_packed_isa(const ql_qgemm_packed *p);

/* What happens to acc[m][n] = sum_k (A[m][k] - a_zero) * W[n][k] + bias[n]. */
typedef struct {
    int32_t a_zero;          /* activation zero point */
    const int32_t *bias;     /* (N) in accumulator units (bias / (sa*sw[n])), or NULL */
    const float *mult;       /* (N) multipliers: sa*sw[n]/sy for u8 output, sa*sw[n] for f32 */
    int32_t y_zero, qmin, qmax;   /* u8 output */
    const float *fbias;      /* f32 output: added after scaling, or NULL */
    int a_padded;            /* every row of A is readable up to K rounded up to 4 (what
                              * lies past K is ignored): lets K % 4 != 0 read A in place */
} ql_qgemm_epilogue;

/* A (M,K) u8 with row stride lda -> Y (M,N) with row stride ldy. */
void ql_qgemm_u8(const ql_qgemm_packed *p, int64_t m, const uint8_t *a, int64_t lda,
                 uint8_t *y, int64_t ldy, const ql_qgemm_epilogue *e);
void ql_qgemm_f32(const ql_qgemm_packed *p, int64_t m, const uint8_t *a, int64_t lda,
                  float *y, int64_t ldy, const ql_qgemm_epilogue *e);
/* Raw accumulators acc[m][n] (a_zero and bias applied, no scaling): tests and debugging. */
void ql_qgemm_s32(const ql_qgemm_packed *p, int64_t m, const uint8_t *a, int64_t lda,
                  int32_t *y, int64_t ldy, const ql_qgemm_epilogue *e);
/* The plain definition every fast path is tested against. */
void ql_qgemm_s32_ref(int64_t m, int n, int k, const uint8_t *a, int64_t lda, const int8_t *w,
                      int32_t *y, int64_t ldy, const ql_qgemm_epilogue *e);

/* ---- quantized conv2d (NHWC u8 in and out) ------------------------------- */
typedef struct ql_qconv ql_qconv;
typedef struct {
    const int8_t *w;         /* (OC, KH, KW, C/groups) "OHWI" s8 */
    const float *w_scale;    /* (OC) per-channel weight scales (or one repeated) */
    const float *bias;       /* (OC) float bias or NULL (quantized to s32 inside) */
    float x_scale; int32_t x_zero;
    float y_scale; int32_t y_zero;
    int relu;                /* 0 none, 1 relu, 2 relu6 (fused into the clamp) */
    int f32_out;             /* 1: write dequantized f32 instead of u8 */
    int32_t y_qmin, y_qmax;  /* output code range (reduce_range: 0..127); y_qmax 0 means 255 */
    int32_t x_qmax;          /* largest input code expected (127: 7-bit); 0 means 255. Picks the
                                kernel only: larger codes still give exact results */
} ql_qconv_params;

/* s: the conv geometry (s->n is ignored; batch given at run time). */
ql_qconv *ql_qconv_new(const ql_conv2d_shape *s, const ql_qconv_params *p, ql_isa isa);
void      ql_qconv_free(ql_qconv *c);
/* Bytes of workspace a batch of n needs at the current thread count. */
size_t    ql_qconv_workspace(const ql_qconv *c, int n);
/* x (N,H,W,C) u8 -> y (N,OH,OW,OC) u8 (or f32 when f32_out). im2col in u8
 * with x_zero as padding; 1x1/stride 1 convs are a direct GEMM; depthwise
 * convs use a direct kernel. OpenMP inside. ws: ws_bytes >= the workspace
 * (a larger buffer shared by several convs keeps each thread's part of it
 * at the same place in all of them); QL_EINVAL when it is smaller. */
ql_status ql_qconv_forward(const ql_qconv *c, int n, const uint8_t *x, void *y, void *ws, size_t ws_bytes);

/* ---- quantized linear: x (M,K) u8 -> y (M,N) u8 or f32 ------------------- */
typedef struct ql_qlinear ql_qlinear;
typedef struct {
    const int8_t *w;         /* (N,K) s8 */
    const float *w_scale;    /* (N) */
    const float *bias;       /* (N) or NULL */
    float x_scale; int32_t x_zero;
    float y_scale; int32_t y_zero;
    int relu;
    int f32_out;
    int32_t y_qmin, y_qmax, x_qmax;   /* as in ql_qconv_params */
} ql_qlinear_params;
ql_qlinear *ql_qlinear_new(int k, int n, const ql_qlinear_params *p, ql_isa isa);
void        ql_qlinear_free(ql_qlinear *l);
void        ql_qlinear_forward(const ql_qlinear *l, int64_t m, const uint8_t *x, void *y);

/* ---- other quantized ops (u8 NHWC) --------------------------------------- */
/* y = clamp(nearbyint((sa*(a-za) + sb*(b-zb)) / sy) + zy, qmin, qmax); relu fused via qmin. */
void ql_qadd_u8(int64_t n, const uint8_t *a, float sa, int32_t za, const uint8_t *b, float sb, int32_t zb,
                uint8_t *y, float sy, int32_t zy, int32_t qmin, int32_t qmax);
/* Same scale in and out, so a max pool is exact on the codes. */
void ql_qmaxpool_u8(const ql_pool2d_shape *s, const uint8_t *x, uint8_t *y, uint8_t pad_value);
/* x (N,HW,C) -> y (N,C): y = clamp(nearbyint((sum/HW - zx) * sx/sy) + zy, qmin, qmax) */
void ql_qglobal_avgpool_u8(int n, int hw, int c, const uint8_t *x, float sx, int32_t zx,
                           uint8_t *y, float sy, int32_t zy, int32_t qmin, int32_t qmax);

/* Output clamp for a fused activation: relu 0/1/2 -> [qmin, qmax] in u8 codes. */
void ql_qrelu_bounds(int relu, float y_scale, int32_t y_zero, int32_t *qmin, int32_t *qmax);
/* The same, narrowed to the output's code range [lo, hi] (hi 0 means 255). */
void ql_qout_bounds(int relu, float y_scale, int32_t y_zero, int32_t lo, int32_t hi, int32_t *qmin, int32_t *qmax);

#endif
