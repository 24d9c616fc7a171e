/* Dynamic INT8 kernels (PyTorch's quantize_dynamic): weights s8 symmetric
 * per output channel, quantized once; activations quantized to u8 affine at
 * run time, per call and per tensor, from their own min/max (the range
 * stretched to include 0, qparams as ql_qparams_from_range with [0, 255]);
 * s32 accumulation through the static path's packed GEMM (ql_qgemm_f32),
 * f32 out: y = acc * x_scale * w_scale[n] + bias[n]. */
#ifndef QLAB_QDYNAMIC_H
#define QLAB_QDYNAMIC_H
#include <stddef.h>
#include <stdint.h>
#include "cpu.h"

/* u8 qparams of x (rows x cols, row stride ldx) from its own range. */
void ql_dynamic_qparams(int64_t rows, int64_t cols, const float *x, int64_t ldx, float *scale,
                        int32_t *zero_point);

/* ---- dynamic linear: x (M,K) f32 -> y (M,N) f32 --------------------------- */
typedef struct ql_dlinear ql_dlinear;
/* w (N,K) s8, w_scale (N) finite and >= 0, bias (N) or NULL; all copied / packed. */
ql_dlinear *ql_dlinear_new(int k, int n, const int8_t *w, const float *w_scale, const float *bias, ql_isa isa);
void        ql_dlinear_free(ql_dlinear *l);
size_t      ql_dlinear_workspace(const ql_dlinear *l, int64_t m);   /* bytes */
/* x row stride ldx, y row stride ldy; ws of ql_dlinear_workspace(l, m) bytes. */
void        ql_dlinear_forward(const ql_dlinear *l, int64_t m, const float *x, int64_t ldx, float *y,
                               int64_t ldy, void *ws);

/* ---- dynamic LSTM: batch first, PyTorch gate order (i,f,g,o), zero state --- */
typedef struct {
    const int8_t *const *w_ih, *const *w_hh;   /* [layers] (4H, I_l), (4H, H) s8; I_0 = input, else H */
    const float *const *s_ih, *const *s_hh;    /* [layers] (4H) per-row weight scales */
    const float *const *b_ih, *const *b_hh;    /* [layers] (4H), or NULL arrays (no bias) */
} ql_dlstm_weights;

/* Per layer: the input projection of all steps at once (x quantized once
 * per layer), then per step h_{t-1} quantized and multiplied by W_hh; gates
 * and nonlinearities in f32. */
typedef struct ql_dlstm ql_dlstm;
ql_dlstm *ql_dlstm_new(int input, int hidden, int layers, const ql_dlstm_weights *w, ql_isa isa);
void      ql_dlstm_free(ql_dlstm *l);
size_t    ql_dlstm_workspace(const ql_dlstm *l, int n, int t);   /* bytes */
/* x (N,T,I) -> y (N,T,H), the last layer's hidden states. */
void      ql_dlstm_forward(const ql_dlstm *l, int n, int t, const float *x, float *y, void *ws);

#endif
