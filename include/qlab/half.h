/* Half-precision weights: IEEE binary16 (f16) and bfloat16 (bf16).
 *
 * Conversions from f32 round to nearest, ties to even; f16 overflow gives
 * +-inf (65520 and above), values below half the smallest f16 subnormal give
 * +-0, subnormals are kept (no flush to zero); a NaN stays a NaN of the same
 * sign, made quiet, with the top payload bits kept (what F16C's vcvtps2ph
 * does). f16 -> f32 is exact (signalling NaNs come back quiet, as vcvtph2ps);
 * bf16 -> f32 is exact (the 16 bits shifted up).
 * The array functions run the fastest path the CPU has (F16C, AVX2) and give
 * the same bits as the scalar _ref functions.
 *
 * Kernels: activations stay f32, weights are stored half and widened inside
 * the kernel (F16C for f16, a shift for bf16); with AVX-512 BF16 the bf16
 * GEMM rounds the activations to bf16 and uses vdpbf16ps. */
#ifndef QLAB_HALF_H
#define QLAB_HALF_H
#include <stddef.h>
#include <stdint.h>
#include "cpu.h"
#include "tensor.h"

/* ---- scalar conversions (the definition) --------------------------------- */
uint16_t ql_f32_to_f16_ref(float x);
float    ql_f16_to_f32_ref(uint16_t h);
uint16_t ql_f32_to_bf16_ref(float x);
float    ql_bf16_to_f32_ref(uint16_t h);

/* ---- arrays, fastest path ----------------------------------------------------- */
void ql_f32_to_f16(int64_t n, const float *x, uint16_t *y);
void ql_f16_to_f32(int64_t n, const uint16_t *x, float *y);
void ql_f32_to_bf16(int64_t n, const float *x, uint16_t *y);
void ql_bf16_to_f32(int64_t n, const uint16_t *x, float *y);
/* d is QL_DTYPE_F16 or QL_DTYPE_BF16 */
void ql_f32_to_half(ql_dtype d, int64_t n, const float *x, uint16_t *y);
void ql_half_to_f32(ql_dtype d, int64_t n, const uint16_t *x, float *y);

/* One set of array conversions; tests compare every path with path 0. */
typedef struct {
    const char *name;   /* "ref", "avx2" (F16C for f16, AVX2 integer ops for bf16) */
    void (*f32_to_f16)(int64_t n, const float *x, uint16_t *y);
    void (*f16_to_f32)(int64_t n, const uint16_t *x, float *y);
    void (*f32_to_bf16)(int64_t n, const float *x, uint16_t *y);
    void (*bf16_to_f32)(int64_t n, const uint16_t *x, float *y);
} ql_half_cvt;
/* Path i (0 = the scalar reference), NULL past the last one this CPU can run. */
const ql_half_cvt *ql_half_cvt_path(int i);

/* ---- GEMM with half weights: y (M,N) = x (M,K) . W^T + b ---------------------- */
typedef enum {
    QL_HGEMM_AUTO = 0,     /* per call: the best path this CPU has for that M */
    QL_HGEMM_WIDEN,        /* W widened to f32 in the workspace, then cblas_sgemm (any CPU) */
    QL_HGEMM_DOT_AVX2,     /* dot products, W widened in registers (F16C / shifts), up to 4 rows per pass */
    QL_HGEMM_DPBF16_REF,   /* bf16 only: scalar emulation of vdpbf16ps (x rounded to bf16; DAZ, FTZ) */
    QL_HGEMM_DPBF16,       /* bf16 only: AVX-512 BF16, the same arithmetic as DPBF16_REF */
    QL_HGEMM_PATHS
} ql_hgemm_path;

const char *ql_hgemm_path_name(ql_hgemm_path p);
/* 1 when path p runs on this CPU for weights of dtype d (f16 / bf16). */
int ql_hgemm_path_available(ql_dtype d, ql_hgemm_path p);
/* Tests and benchmarks: make QL_HGEMM_AUTO objects made from now on use p
 * (when available for their dtype); QL_HGEMM_AUTO restores the choice. */
void ql_hgemm_force(ql_hgemm_path p);

typedef struct ql_hgemm ql_hgemm;
/* w (N,K) f16 or bf16, row-major as PyTorch's [out,in]; borrowed: it must
 * outlive the object (the DPBF16 paths keep their own packed copy). */
ql_hgemm *ql_hgemm_new(ql_dtype d, const uint16_t *w, int n, int k, ql_hgemm_path path);
void      ql_hgemm_free(ql_hgemm *h);
/* The path a call with m rows takes. */
ql_hgemm_path ql_hgemm_chosen(const ql_hgemm *h, int64_t m);
size_t    ql_hgemm_workspace(const ql_hgemm *h, int64_t m);   /* bytes */
/* x (M,K) row stride ldx -> y (M,N) row stride ldy; b (N) or NULL. OpenMP inside. */
void      ql_hgemm_forward(const ql_hgemm *h, int64_t m, const float *x, int64_t ldx, const float *b,
                           float *y, int64_t ldy, void *ws);

#endif
