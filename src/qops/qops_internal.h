/* Internals of the INT8 kernels (not part of the public API).
 *
 * Packed GEMM layout, shared by every ISA (only MR, NR, KSTEP differ):
 *   K is cut into "steps" of KSTEP values (4: byte quads, as VNNI dpbusd
 *   and AVX2 maddubs consume them; 2: s16 pairs for the AVX2 madd kernel);
 *   every step of every row or column takes 4 bytes.
 *   W: panels of NR output columns; panel p, step s, column c at
 *      w + ((p*ksteps + s)*NR + c)*4   (zero padded past N and K)
 *   A: packed per call in groups of MR rows for one K block of ns steps;
 *      group g, step s, row r at  a + ((g*ns + s)*MR + r)*4   (zero padded)
 * Kernels multiply raw u8 codes; the a_zero correction is folded into a
 * per-column offset off[n] = bias[n] - a_zero * sum_k W[n][k]. */
#ifndef QLAB_QOPS_INTERNAL_H
#define QLAB_QOPS_INTERNAL_H
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "qlab/qops.h"
#include "ops/copy_bytes.h"

#define QL_AVX2   __attribute__((target("avx2,fma")))
#define QL_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define QL_AMX    __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")))

typedef enum { QL_QOUT_S32, QL_QOUT_U8, QL_QOUT_F32 } ql_qout;

/* What a kernel does after its last K block; arrays padded to whole panels. */
typedef struct {
    ql_qout out;
    const int32_t *off;   /* (Npad) bias - a_zero*colsum */
    const float *mult;    /* (Npad) */
    const float *fbias;   /* (Npad) or NULL */
    float lo, hi;         /* u8: clamp of acc*mult, = qmin - y_zero, qmax - y_zero */
    int32_t y_zero;
    int k;                /* K (the A row bytes that hold data) */
} ql_qgemm_ctx;

/* KFIRST/KLAST: first/last K block; AHIGH: the packed A block has codes
 * >= 128 (pack_a says so; kernels whose products could saturate need it);
 * ALAST: the tile holds A's last row (a kernel that reads whole rows of
 * ksteps*4 bytes past K must not read there in place) */
enum { QL_KFIRST = 1, QL_KLAST = 2, QL_AHIGH = 4, QL_ALAST = 8 };

/* One micro-tile: rows mr <= MR, columns nr <= NR, ns steps. part (MR*NR s32)
 * holds partial sums between K blocks: loaded unless KFIRST, stored unless
 * KLAST; with KLAST the epilogue writes y (tile origin, row stride ldy elements). */
typedef void (*ql_qgemm_kernel_fn)(int mr, int nr, int64_t ns, const uint8_t *ap, const uint8_t *wp,
                                   int32_t *part, int flags, const ql_qgemm_ctx *c, int64_t n0,
                                   void *y, int64_t ldy);
/* rows x [s0, s0+ns) steps of A (row stride lda, K columns) -> packed groups;
 * returns nonzero when some packed code is >= 128 */
typedef int (*ql_qgemm_pack_a_fn)(const uint8_t *a, int64_t lda, int rows, int k, int64_t s0,
                                   int64_t ns, uint8_t *dst);

typedef struct {
    ql_isa isa;
    int mr, nr, kstep;
    int kc_steps;         /* K block, in steps: the W panel slice stays in L1 */
    int kalign;           /* packed ksteps rounded up to a multiple of this (AMX: 16, one tile) */
    int mc_max;           /* rows per task (multiple of mr): the A block stays in L2 */
    ql_qgemm_pack_a_fn pack_a;
    ql_qgemm_kernel_fn kernel;
    /* Optional: the same tile reading A in place (row r, step s at
     * ap + r*lda + s*4), for K a multiple of 4: no packing, so rows split
     * across threads by columns do not each pack the whole A block.
     * scratch: MR * ns * 4 bytes the kernel may use (AMX: the ALAST rows). */
    void (*kernel_direct)(int mr, int nr, int64_t ns, const uint8_t *ap, int64_t lda, const uint8_t *wp,
                          int32_t *part, int flags, const ql_qgemm_ctx *c, int64_t n0, void *y, int64_t ldy,
                          uint8_t *scratch);
    /* Optional: per thread, before its first and after its last tile of a call (AMX tile config) */
    void (*begin)(void), (*end)(void);
} ql_qgemm_impl;

/* W (N, K) s8 back from its packed layout. */
void ql_qgemm_unpack(const ql_qgemm_packed *p, int8_t *w);
/* 0: always pack A (kernel_direct unused), 1: in place where possible (default). */
void ql_qgemm_set_direct(int on);
/* Largest padded input copy qconv's im2col makes (default 8 MB; 0: never,
 * the tests' way to run the unpadded path on every geometry). Set it only
 * between convs: the workspace size depends on it. */
void ql_qconv_set_pad_budget(size_t bytes);

/* Below this batch qconv runs im2col over every tap; from it, by live-tap
 * regions where they save MACs (default 8; 1: always, 0: never). Set it only
 * between convs: the workspace size depends on it. */
void ql_qconv_set_region_min_batch(int n);
int ql_qconv_uses_regions(const ql_qconv *c, int n);   /* would a batch of n take that path */

/* Output regions by live taps (qconv_regions.c): NULL when they would not
 * save a tenth of the MACs (or on failure: *failed set, error raised). */
typedef struct ql_qconv_regions ql_qconv_regions;
ql_qconv_regions *ql_qconv_regions_new(const ql_conv2d_shape *s, const int8_t *w_ohwi, ql_isa isa, int a_max,
                                       int *failed);
void ql_qconv_regions_free(ql_qconv_regions *q);
size_t ql_qconv_regions_workspace(const ql_qconv_regions *q, int n, size_t es);
void ql_qconv_regions_forward(const ql_qconv_regions *q, const ql_qgemm_epilogue *e, int f32_out, int n,
                              const uint8_t *x, void *y, void *ws);

extern const ql_qgemm_impl ql_qgemm_impl_scalar, ql_qgemm_impl_avx2, ql_qgemm_impl_avx2_s16, ql_qgemm_impl_avx512,
    ql_qgemm_impl_amx;

struct ql_qgemm_packed {
    int n, k;
    int64_t ksteps, npanels;
    const ql_qgemm_impl *impl;
    int32_t *colsum;      /* (N) sum_k W[n][k] */
    uint8_t *w;           /* npanels * ksteps * NR * 4 bytes */
    size_t bytes;
};

/* Byte-quad A packing (kstep 4), shared by the scalar and VNNI kernels. */
void ql_qgemm_pack_a_quads(const uint8_t *a, int64_t lda, int rows, int k, int64_t s0, int64_t ns,
                           uint8_t *dst, int mr);
/* Scalar epilogue of one tile acc (mr x nr, row stride lda): writes y. */
void ql_qgemm_store_scalar(const ql_qgemm_ctx *c, int mr, int nr, const int32_t *acc, int64_t lda,
                           int64_t n0, void *y, int64_t ldy);

/* u8 clamp [qmin, qmax] (within [0,255]) as bounds on acc*mult, before rounding:
 * clamping first and rounding after gives the same codes (the bounds are
 * integers) and keeps out-of-range values away from the int conversion. */
static inline void ql_qclamp_bounds(int32_t qmin, int32_t qmax, int32_t y_zero, float *lo, float *hi) {
    int64_t a = qmin < 0 ? 0 : qmin, b = qmax > 255 ? 255 : qmax;
    *lo = (float)(a - y_zero);
    *hi = (float)(b - y_zero);
}

/* The requantization every path implements: the comparisons are written as
 * _mm256_max_ps(v, lo) / _mm256_min_ps(v, hi) behave (NaN -> lo), and
 * nearbyintf rounds half to even like cvtps2dq under the default MXCSR. */
static inline int32_t ql_requant(int32_t acc, float mult, float lo, float hi, int32_t y_zero) {
    float v = (float)acc * mult;
    v = v > lo ? v : lo;
    v = v < hi ? v : hi;
    return (int32_t)nearbyintf(v) + y_zero;
}

/* s32 bias in accumulator units, nearbyint(b / (x_scale * w_scale)), kept
 * within +-2^30 so sums cannot overflow; 0 when the scale is 0 or b is NaN. */
static inline int32_t ql_quantize_bias(float b, float x_scale, float w_scale) {
    float sb = x_scale * w_scale;
    if (!(sb > 0)) return 0;
    float q = nearbyintf(b / sb);
    const float lim = 1073741824.0f;
    if (q != q) return 0;
    return q > lim ? (1 << 30) : q < -lim ? -(1 << 30) : (int32_t)q;
}

/* Wrapping s32 add, as the SIMD lanes do (no UB on overflow). */
static inline int32_t ql_wrap_add(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

/* ---- depthwise conv (qconv_dw.c, qconv_dw_avx2.c) ---------------------- */
typedef struct {
    const ql_conv2d_shape *s;   /* groups == c == oc */
    const int32_t *w;           /* (KH*KW, C) s32 */
    const int32_t *bias;        /* (C) s32 */
    const float *mult, *fbias;  /* (C); fbias NULL unless f32 out */
    int32_t x_zero, y_zero;
    float lo, hi;
    int f32_out;
    /* The AVX2 kernel's operands (ql_qdw_pack_pairs): taps in pairs, weights as
     * s16 pairs in the order vpmaddwd meets them, per block of 16 channels;
     * off = bias - x_zero * sum of the taps' weights; zrow: C bytes of x_zero,
     * read for taps in the padding (they then add x_zero * w, which off takes back). */
    const int16_t *wpair;       /* (npairs, C/16, 32) */
    const int16_t *wpair32;     /* the AVX-512 kernel's: (npairs, C/32, 64), or NULL */
    const int32_t *off;         /* (C) */
    const uint8_t *zrow;        /* (C) */
    int npairs;
} ql_qdw_args;
/* Builds wpair (npairs*(C/16)*32 s16), off (C) and zrow (C) from d->w, d->bias,
 * d->x_zero: the arrays are allocated here (ql_malloc) and owned by the caller. */
int ql_qdw_pack_pairs(const ql_conv2d_shape *s, const int32_t *w, const int32_t *bias, int32_t x_zero,
                      int16_t **wpair, int32_t **off, uint8_t **zrow);
/* The same weights for 32-channel blocks (AVX-512: lane L of lo holds channels
 * 8L..8L+3, of hi 8L+4..8L+7); NULL when C < 32 or more than 64 taps. */
int16_t *ql_qdw_pack_pairs32(const ql_conv2d_shape *s, const int32_t *w);
/* Output pixel (n, oh, ow), channels [c0, c1); y points at the pixel's channel 0. */
void ql_qdw_range_scalar(const ql_qdw_args *d, const uint8_t *x, int64_t n, int oh, int ow, int c0,
                         int c1, void *y);
/* All channels of one output row (n, oh), y at its first pixel, es bytes per
 * value: 16 channels at a time, the tail through the scalar code. */
/* The row kernels' tap pointers: rows[ki] = the input row kernel row ki
 * reads for output row (n, oh), NULL in the padding; then per output pixel
 * tap[t] (t < 2 * npairs), zrow for padding and for the odd tap's partner. */
static inline void ql_qdw_rows(const ql_qdw_args *d, const uint8_t *x, int64_t n, int oh, const uint8_t **rows) {
    const ql_conv2d_shape *s = d->s;
    for (int ki = 0; ki < s->kh; ki++) {
        int ih = oh * s->sh - s->ph + ki * s->dh;
        rows[ki] = ih < 0 || ih >= s->h ? NULL : x + (n * s->h + ih) * (int64_t)s->w * s->c;
    }
}
static inline void ql_qdw_taps(const ql_qdw_args *d, const uint8_t *const *rows, int ow, const uint8_t **tap) {
    const ql_conv2d_shape *s = d->s;
    const int iw0 = ow * s->sw - s->pw;
    int t = 0;
    for (int ki = 0; ki < s->kh; ki++)
        for (int kj = 0; kj < s->kw; kj++, t++) {
            int iw = iw0 + kj * s->dw;
            tap[t] = !rows[ki] || iw < 0 || iw >= s->w ? d->zrow : rows[ki] + (int64_t)iw * s->c;
        }
    for (; t < 2 * d->npairs; t++) tap[t] = d->zrow;
}
/* Depthwise 3x3 at stride 1 or 2, u8 out, on AVX-512 VNNI (qconv_dw3_avx512.c):
 * weights, offsets and multipliers per pattern of 64 channels-in-a-row. */
typedef struct {
    int P;          /* patterns: chunks of 64 outputs before the channels repeat */
    int8_t *w;      /* (P, 3 tap quadruples, 4 vectors, 64) */
    int32_t *off;   /* (P, 4, 16) */
    float *mult;    /* (P, 4, 16) */
} ql_qdw3;
int      ql_qdw3_supported(const ql_conv2d_shape *s);
ql_qdw3 *ql_qdw3_pack(const ql_conv2d_shape *s, const int32_t *w, const int32_t *off, const float *mult);
void     ql_qdw3_free(ql_qdw3 *k);
/* output rows [t0, t1) (t = n * OH + oh) into y, the whole output */
void     ql_qdw3_rows_avx512(const ql_qdw3 *k, const ql_qdw_args *d, const uint8_t *x, int64_t t0, int64_t t1,
                             uint8_t *y);
void ql_qdw_row_avx2(const ql_qdw_args *d, const uint8_t *x, int64_t n, int oh, void *yrow, size_t es);
void ql_qdw_row_avx512(const ql_qdw_args *d, const uint8_t *x, int64_t n, int oh, void *yrow, size_t es);
/* 16 channels [c0, c0+16) of one pixel whose tap pointers are tap[] (block blk of nblk). */
void ql_qdw_block16_avx2(const ql_qdw_args *d, const uint8_t *const *tap, int c0, int blk, int nblk, void *y);

/* ---- elementwise AVX2 twins (qelem_avx2.c); same results as the scalar code */
void ql_quantize_u8_avx2(int64_t n, const float *x, float scale, int32_t zp, float lo, float hi, uint8_t *y);
void ql_dequantize_u8_avx2(int64_t n, const uint8_t *x, float scale, int32_t zp, float *y);
void ql_qadd_u8_avx2(int64_t n, const uint8_t *a, float sa, int32_t za, const uint8_t *b, float sb,
                     int32_t zb, uint8_t *y, float sy, int32_t zy, float lo, float hi);
/* y (C) = max(init, every x[ih*ldh + iw*ldw + j] of a kh x kw window) */
void ql_qmax_window_avx2(int c, int kh, int kw, const uint8_t *x, int64_t ldh, int64_t ldw, uint8_t init,
                         uint8_t *y);
/* sum[j] = sum_p x[p*ldx + j], j < c, p < hw (s32) */
void ql_qsum_hw_avx2(int hw, int c, int64_t ldx, const uint8_t *x, int32_t *sum);
/* y[j] = clamp(round((sum[j] / div - zx) * m), lo, hi) + zy, as qpool.c's scalar loop */
void ql_qmean_requant_avx2(int c, const int32_t *sum, float div, int32_t zx, float m, float lo, float hi,
                           int32_t zy, uint8_t *y);

#endif
