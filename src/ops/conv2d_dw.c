/* Depthwise conv2d (groups == c == oc), direct NHWC kernels: the inner loop
 * runs over contiguous channels, with the weight transposed once to
 * (KH,KW,C) in the workspace so it is contiguous along C too. */
#include <string.h>
#include "ops/ops_internal.h"

// w (C,KH,KW,1) -> wt (KH*KW, C)
static void transpose_w(const ql_conv2d_shape *s, const float *w, float *wt) {
    int kk = s->kh * s->kw;
    for (int c = 0; c < s->c; c++)
        for (int p = 0; p < kk; p++) wt[(int64_t)p * s->c + c] = w[(int64_t)c * kk + p];
}

// x (N,H,W,C), w (C,KH,KW,1), b (C) or NULL -> y (N,OH,OW,C)
void ql_conv2d_dw_forward(const ql_conv2d_shape *s, const float *x, const float *w,
                          const float *b, float *y, float *ws) {
    const int C = s->c;
    float *wt = ws;
    transpose_w(s, w, wt);
    const int64_t tasks = (int64_t)s->n * s->oh;
    #pragma omp parallel for schedule(static) if (tasks * s->ow * C * s->kh * s->kw > (1 << 15))
    for (int64_t task = 0; task < tasks; task++) {
        int64_t n = task / s->oh;
        int oh = (int)(task % s->oh);
        for (int ow = 0; ow < s->ow; ow++) {
            float *yo = y + ((n * s->oh + oh) * s->ow + ow) * C;
            if (b) memcpy(yo, b, sizeof(float) * C);
            else memset(yo, 0, sizeof(float) * C);
            for (int ki = 0; ki < s->kh; ki++) {
                int ih = oh * s->sh - s->ph + ki * s->dh;
                if (ih < 0 || ih >= s->h) continue;
                for (int kj = 0; kj < s->kw; kj++) {
                    int iw = ow * s->sw - s->pw + kj * s->dw;
                    if (iw < 0 || iw >= s->w) continue;
                    const float *xp = x + ((n * s->h + ih) * s->w + iw) * C;
                    const float *wp = wt + (int64_t)(ki * s->kw + kj) * C;
                    for (int c = 0; c < C; c++) yo[c] += xp[c] * wp[c];
                }
            }
        }
    }
}

// dx (N,H,W,C) = gather of dy * w over the taps that read each input pixel
static void dw_backward_input(const ql_conv2d_shape *s, const float *wt, const float *dy,
                              float *dx) {
    const int C = s->c;
    const int64_t tasks = (int64_t)s->n * s->h;
    #pragma omp parallel for schedule(static) if (tasks * s->w * C * s->kh * s->kw > (1 << 15))
    for (int64_t task = 0; task < tasks; task++) {
        int64_t n = task / s->h;
        int ih = (int)(task % s->h);
        for (int iw = 0; iw < s->w; iw++) {
            float *d = dx + ((n * s->h + ih) * s->w + iw) * C;
            memset(d, 0, sizeof(float) * C);
            for (int ki = 0; ki < s->kh; ki++) {
                int th = ih + s->ph - ki * s->dh;
                if (th < 0) break;
                if (th % s->sh || th / s->sh >= s->oh) continue;
                for (int kj = 0; kj < s->kw; kj++) {
                    int tw = iw + s->pw - kj * s->dw;
                    if (tw < 0) break;
                    if (tw % s->sw || tw / s->sw >= s->ow) continue;
                    const float *g = dy + ((n * s->oh + th / s->sh) * s->ow + tw / s->sw) * C;
                    const float *wp = wt + (int64_t)(ki * s->kw + kj) * C;
                    for (int c = 0; c < C; c++) d[c] += g[c] * wp[c];
                }
            }
        }
    }
}

// dwt (KH*KW, C) = sum over output pixels of dy * x; one thread per kernel tap
static void dw_backward_weight(const ql_conv2d_shape *s, const float *x, const float *dy,
                               float *dwt) {
    const int C = s->c, kk = s->kh * s->kw;
    #pragma omp parallel for schedule(static) if ((int64_t)s->n * s->oh * s->ow * C > (1 << 14))
    for (int p = 0; p < kk; p++) {
        int ki = p / s->kw, kj = p % s->kw;
        float *acc = dwt + (int64_t)p * C;
        memset(acc, 0, sizeof(float) * C);
        for (int64_t n = 0; n < s->n; n++)
            for (int oh = 0; oh < s->oh; oh++) {
                int ih = oh * s->sh - s->ph + ki * s->dh;
                if (ih < 0 || ih >= s->h) continue;
                for (int ow = 0; ow < s->ow; ow++) {
                    int iw = ow * s->sw - s->pw + kj * s->dw;
                    if (iw < 0 || iw >= s->w) continue;
                    const float *g = dy + ((n * s->oh + oh) * s->ow + ow) * C;
                    const float *xp = x + ((n * s->h + ih) * s->w + iw) * C;
                    for (int c = 0; c < C; c++) acc[c] += g[c] * xp[c];
                }
            }
    }
}

void ql_conv2d_dw_backward(const ql_conv2d_shape *s, const float *x, const float *w,
                           const float *dy, float *dx, float *dw, float *db, float *ws) {
    const int C = s->c, kk = s->kh * s->kw;
    float *wt = ws, *dwt = ws + (int64_t)kk * C;
    if (db) ql_ops_colsum_add((int64_t)s->n * s->oh * s->ow, C, dy, C, db);
    if (dx) {
        transpose_w(s, w, wt);
        dw_backward_input(s, wt, dy, dx);
    }
    if (dw) {
        dw_backward_weight(s, x, dy, dwt);
        for (int c = 0; c < C; c++)
            for (int p = 0; p < kk; p++) dw[(int64_t)c * kk + p] += dwt[(int64_t)p * C + c];
    }
}
