/* FP32 kernels, forward and backward. Pure functions on raw buffers: the
 * caller owns all memory (THNN style: input, output, weight, bias, buffers).
 * Activations are NHWC. Conventions for backward:
 *   - dx (input gradient) is OVERWRITTEN; pass NULL to skip it;
 *   - parameter gradients (dw, db, dgamma, ...) are ACCUMULATED (+=); NULL skips.
 * Every kernel has a naive reference in tests/c that it is checked against. */
#ifndef QLAB_OPS_H
#define QLAB_OPS_H
#include <stddef.h>
#include <stdint.h>
#include "error.h"

/* ---- conv2d ------------------------------------------------------------ */
typedef struct {
    int n, h, w, c;          /* input (N,H,W,C) */
    int oc, kh, kw;          /* output channels, kernel */
    int sh, sw, ph, pw, dh, dw;
    int groups;              /* c % groups == 0 && oc % groups == 0 */
    int oh, ow;              /* filled by ql_conv2d_shape_init */
} ql_conv2d_shape;

/* Validates and computes oh, ow. */
ql_status ql_conv2d_shape_init(ql_conv2d_shape *s);
/* Scratch floats needed by forward/backward (im2col buffer); 0 when none. */
size_t ql_conv2d_workspace(const ql_conv2d_shape *s);
/* x (N,H,W,C), w (OC,KH,KW,C/groups) "OHWI" packed, b (OC) or NULL -> y (N,OH,OW,OC).
 * im2col + cblas_sgemm; 1x1/stride-1/no-pad convs are a direct GEMM;
 * depthwise (groups == c == oc) uses a direct kernel. */
void ql_conv2d_forward(const ql_conv2d_shape *s, const float *x, const float *w,
                       const float *b, float *y, float *ws);
void ql_conv2d_backward(const ql_conv2d_shape *s, const float *x, const float *w,
                        const float *dy, float *dx, float *dw, float *db, float *ws);
/* Layout moves between PyTorch's OIHW and our OHWI. */
void ql_conv_weight_oihw_to_ohwi(const float *src, float *dst, int oc, int ic, int kh, int kw);
void ql_conv_weight_ohwi_to_oihw(const float *src, float *dst, int oc, int ic, int kh, int kw);

/* The same convolutions through oneDNN (src/ops/conv2d_dnnl.c): JIT kernels
 * for the machine's ISA, primitives kept per node in a plan (by shape, batch
 * and direction). w is OHWI unless w_oihw; wver changes whenever w's contents do (0: always
 * re-read); w_oihw says w and dw are OIHW (PyTorch's layout, the parameters
 * themselves) instead. act (QL_ACT_*) is fused into the forward. Each returns 1 when it
 * did the work, 0 when oneDNN is unavailable (QLAB_FP32=blas) or refused the
 * shape: the caller then runs ql_conv2d_forward/backward. Same gradient
 * conventions as those (dx overwritten, dw/db accumulated). */
typedef struct ql_conv_plan ql_conv_plan;
int  ql_conv2d_dnnl_available(void);
int  ql_conv2d_dnnl_forward(ql_conv_plan **plan, const ql_conv2d_shape *s, int training, const float *x,
                            const float *w, int w_oihw, uint64_t wver, const float *b, int act, float *y);
int  ql_conv2d_dnnl_backward(ql_conv_plan **plan, const ql_conv2d_shape *s, const float *x, const float *w,
                             int w_oihw, uint64_t wver, const float *dy, float *dx, float *dw, float *db);
void ql_conv_plan_free(ql_conv_plan *plan);

/* FP32 inference conv by live-tap regions (conv2d_regions.c): border pixels
 * multiply only the taps that read the image. *st caches the geometry and
 * the regions' weights (cut again when w or wkey moves). forward returns 1
 * when it wrote y (bias added, no activation), 0 when regions would not save
 * a tenth of the MACs (the caller runs another path), -1 out of memory.
 * workspace: floats ws needs. */
typedef struct ql_conv_fregions ql_conv_fregions;
size_t ql_conv2d_regions_workspace(ql_conv_fregions **st, const ql_conv2d_shape *s);
int  ql_conv2d_regions_forward(ql_conv_fregions **st, const ql_conv2d_shape *s, const float *x, const float *w,
                               uint64_t wkey, const float *b, float *y, float *ws);
void ql_conv2d_regions_free(ql_conv_fregions *st);

/* ---- batchnorm2d (x viewed as (M,C), M = N*H*W) ------------------------ */
/* A batchnorm folded into the conv or linear before it, per output channel o
 * (rows of per weights): k = gamma/sqrt(var+eps), w' = w*k, b' = (b - mean)*k + beta.
 * b NULL reads as zeros; wout may be w and bout may be b. */
void ql_batchnorm_fold(int oc, int64_t per, const float *w, const float *b, const float *gamma,
                       const float *beta, const float *mean, const float *var, float eps,
                       float *wout, float *bout);
void ql_batchnorm_forward_eval(int64_t m, int c, const float *x, const float *gamma,
                               const float *beta, const float *rmean, const float *rvar,
                               float eps, float *y);
/* Batch statistics; running stats updated as PyTorch does
 * (r = (1-momentum) r + momentum batch, running var unbiased);
 * save_mean / save_invstd (C) are kept for backward. */
void ql_batchnorm_forward_train(int64_t m, int c, const float *x, const float *gamma,
                                const float *beta, float *rmean, float *rvar, float eps,
                                float momentum, float *y, float *save_mean, float *save_invstd);
void ql_batchnorm_backward_train(int64_t m, int c, const float *x, const float *gamma,
                                 const float *save_mean, const float *save_invstd,
                                 const float *dy, float *dx, float *dgamma, float *dbeta);
/* Backward with frozen (running) statistics. */
void ql_batchnorm_backward_eval(int64_t m, int c, const float *x, const float *gamma,
                                const float *rmean, const float *rvar, float eps,
                                const float *dy, float *dx, float *dgamma, float *dbeta);

/* ---- activations ------------------------------------------------------- */
void ql_relu_forward(int64_t n, const float *x, float *y);
void ql_relu_backward(int64_t n, const float *x, const float *dy, float *dx);
void ql_relu6_forward(int64_t n, const float *x, float *y);
void ql_relu6_backward(int64_t n, const float *x, const float *dy, float *dx);

/* ---- pooling ------------------------------------------------------------ */
typedef struct {
    int n, h, w, c;
    int kh, kw, sh, sw, ph, pw;
    int ceil_mode;           /* PyTorch's ceil_mode */
    int count_include_pad;   /* avgpool: PyTorch default 1 */
    int oh, ow;              /* filled by ql_pool2d_shape_init */
} ql_pool2d_shape;

ql_status ql_pool2d_shape_init(ql_pool2d_shape *s);
/* y (N,OH,OW,C); argmax (N,OH,OW,C) = h*W+w of the max inside the image, or NULL */
void ql_maxpool2d_forward(const ql_pool2d_shape *s, const float *x, float *y, int32_t *argmax);
void ql_maxpool2d_backward(const ql_pool2d_shape *s, const int32_t *argmax, const float *dy, float *dx);
void ql_avgpool2d_forward(const ql_pool2d_shape *s, const float *x, float *y);
void ql_avgpool2d_backward(const ql_pool2d_shape *s, const float *dy, float *dx);
/* x (N,HW,C) -> y (N,C) */
void ql_global_avgpool_forward(int n, int hw, int c, const float *x, float *y);
void ql_global_avgpool_backward(int n, int hw, int c, const float *dy, float *dx);

/* ---- linear -------------------------------------------------------------- */
/* x (M,K), w (N,K) as PyTorch [out,in], b (N) or NULL -> y (M,N) */
void ql_linear_forward(int64_t m, int k, int n, const float *x, const float *w,
                       const float *b, float *y);
void ql_linear_backward(int64_t m, int k, int n, const float *x, const float *w,
                        const float *dy, float *dx, float *dw, float *db);

/* ---- elementwise / reshaping ----------------------------------------------- */
void ql_add_forward(int64_t n, const float *a, const float *b, float *y);
/* NHWC (N,H,W,C) -> (N, C*H*W) in PyTorch's NCHW flatten order, so Linear
 * weights trained in PyTorch apply unchanged. */
void ql_flatten_nchw_forward(int n, int h, int w, int c, const float *x, float *y);
void ql_flatten_nchw_backward(int n, int h, int w, int c, const float *dy, float *dx);
/* (N,T,H) -> (N,H): the last time step */
void ql_seq_last_forward(int n, int t, int h, const float *x, float *y);
void ql_seq_last_backward(int n, int t, int h, const float *dy, float *dx);

/* ---- LSTM (batch first, PyTorch gate order i,f,g,o, zero initial state) ---- */
typedef struct {
    int n, t, input, hidden, layers;
} ql_lstm_shape;

/* Per layer l: w_ih[l] (4H, I_l) with I_0 = input, I_l = hidden after;
 * w_hh[l] (4H, H); b_ih[l], b_hh[l] (4H) or NULL. */
typedef struct {
    const float *const *w_ih, *const *w_hh, *const *b_ih, *const *b_hh;
} ql_lstm_weights;

size_t ql_lstm_cache_floats(const ql_lstm_shape *s);      /* what backward needs saved */
size_t ql_lstm_workspace_floats(const ql_lstm_shape *s);
/* x (N,T,I) -> y (N,T,H) (last layer's hidden states). cache may be NULL (inference). */
void ql_lstm_forward(const ql_lstm_shape *s, const float *x, const ql_lstm_weights *wt,
                     float *y, float *cache, float *ws);
/* dy (N,T,H) -> dx (N,T,I) or NULL; dw_ih[l], dw_hh[l], db_ih[l], db_hh[l] accumulated. */
void ql_lstm_backward(const ql_lstm_shape *s, const float *x, const ql_lstm_weights *wt,
                      const float *cache, const float *dy, float *dx,
                      float *const *dw_ih, float *const *dw_hh,
                      float *const *db_ih, float *const *db_hh, float *ws);

/* ---- softmax and loss -------------------------------------------------------- */
void ql_softmax(int64_t n, int k, const float *x, float *y);
/* Mean cross-entropy of logits (N,K) against labels (N); if dlogits is not
 * NULL it receives d(mean loss)/d(logits) = (softmax - onehot) / N. */
float ql_softmax_xent(int64_t n, int k, const float *logits, const int32_t *labels, float *dlogits);

#endif
