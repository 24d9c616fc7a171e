/* Max, average and global-average pooling, NHWC, with PyTorch's output-size
 * rules (ceil_mode: the last window must start inside the input or the left
 * padding) and avgpool's count_include_pad divisor. Inner loops run over the
 * C contiguous channels of a pixel, vectorised (AVX2 twins, ops_internal.h);
 * maxpool does no argmax work when argmax is NULL (inference). */
#include <math.h>
#include <string.h>
#include "ops/ops_internal.h"

static int64_t out_size(int in, int k, int st, int pad, int ceil_mode) {
    int64_t span = (int64_t)in + 2 * pad - k;
    int64_t o = (ceil_mode ? (span + st - 1) / st : span / st) + 1;
    if (ceil_mode && (o - 1) * st >= (int64_t)in + pad) o--;
    return o;
}

ql_status ql_pool2d_shape_init(ql_pool2d_shape *s) {
    if (s->n < 0 || s->h <= 0 || s->w <= 0 || s->c <= 0)
        return ql_error(QL_ESHAPE, "pool2d: bad input shape (N,H,W,C) = (%d,%d,%d,%d)",
                        s->n, s->h, s->w, s->c);
    if (s->kh <= 0 || s->kw <= 0 || s->sh <= 0 || s->sw <= 0)
        return ql_error(QL_EINVAL, "pool2d: kernel %dx%d and stride (%d,%d) must be positive",
                        s->kh, s->kw, s->sh, s->sw);
    if (s->ph < 0 || s->pw < 0 || 2 * s->ph > s->kh || 2 * s->pw > s->kw)
        return ql_error(QL_EINVAL, "pool2d: padding (%d,%d) must be >= 0 and at most half the kernel %dx%d",
                        s->ph, s->pw, s->kh, s->kw);
    if ((int64_t)s->h + 2 * s->ph < s->kh || (int64_t)s->w + 2 * s->pw < s->kw)
        return ql_error(QL_ESHAPE, "pool2d: kernel %dx%d larger than padded input %dx%d",
                        s->kh, s->kw, s->h + 2 * s->ph, s->w + 2 * s->pw);
    int64_t oh = out_size(s->h, s->kh, s->sh, s->ph, s->ceil_mode);
    int64_t ow = out_size(s->w, s->kw, s->sw, s->pw, s->ceil_mode);
    if (oh <= 0 || ow <= 0 || oh > (1 << 30) || ow > (1 << 30))
        return ql_error(QL_ESHAPE, "pool2d: bad output size %lldx%lld", (long long)oh, (long long)ow);
    s->oh = (int)oh;
    s->ow = (int)ow;
    return QL_OK;
}

// output rows t in [t0, t1), t = n*OH + oh: y (OW,C) and argmax (OW,C) or NULL
// of each. Each window is folded into y one input pixel at a time,
// vectorised over the C channels.
QL_OPS_INLINE void maxpool_rows(const ql_pool2d_shape *s, const float *x, int64_t t0, int64_t t1,
                                float *y, int32_t *argmax) {
    const int C = s->c;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / s->oh;
        int oh = (int)(t % s->oh), h0 = oh * s->sh - s->ph, h1 = h0 + s->kh;
        if (h0 < 0) h0 = 0;
        if (h1 > s->h) h1 = s->h;
        for (int ow = 0; ow < s->ow; ow++) {
            int w0 = ow * s->sw - s->pw, w1 = w0 + s->kw;
            if (w0 < 0) w0 = 0;
            if (w1 > s->w) w1 = s->w;
            int64_t o = (t * s->ow + ow) * C;
            float *yo = y + o;
            int32_t *ao = argmax ? argmax + o : NULL;
            const int32_t idx0 = h0 * s->w + w0;
            #pragma omp simd
            for (int c = 0; c < C; c++) yo[c] = -INFINITY;
            if (ao) {
                #pragma omp simd
                for (int c = 0; c < C; c++) ao[c] = idx0;
            }
            for (int ih = h0; ih < h1; ih++)
                for (int iw = w0; iw < w1; iw++) {
                    const float *xp = x + ((n * s->h + ih) * s->w + iw) * C;
                    const int32_t idx = ih * s->w + iw;
                    if (ao) {
                        #pragma omp simd
                        for (int c = 0; c < C; c++) {
                            float v = xp[c], m = yo[c];
                            int take = v > m || v != v;   // NaN wins, as in PyTorch
                            yo[c] = take ? v : m;
                            ao[c] = take ? idx : ao[c];
                        }
                    } else {
                        #pragma omp simd
                        for (int c = 0; c < C; c++) {
                            float v = xp[c], m = yo[c];
                            yo[c] = v > m || v != v ? v : m;
                        }
                    }
                }
        }
    }
}

static void maxpool_rows_generic(const ql_pool2d_shape *s, const float *x, int64_t t0, int64_t t1,
                                 float *y, int32_t *argmax) {
    maxpool_rows(s, x, t0, t1, y, argmax);
}

QL_OPS_AVX2 static void maxpool_rows_avx2(const ql_pool2d_shape *s, const float *x, int64_t t0,
                                          int64_t t1, float *y, int32_t *argmax) {
    maxpool_rows(s, x, t0, t1, y, argmax);
}

// x (N,H,W,C) -> y (N,OH,OW,C); argmax = ih*W+iw of the max (NaN wins, as in PyTorch)
void ql_maxpool2d_forward(const ql_pool2d_shape *s, const float *x, float *y, int32_t *argmax) {
    void (*rows)(const ql_pool2d_shape *, const float *, int64_t, int64_t, float *, int32_t *) =
        ql_ops_use_avx2() ? maxpool_rows_avx2 : maxpool_rows_generic;
    const int64_t tasks = (int64_t)s->n * s->oh;
    if (tasks < 2 || !ql_ops_parallel(tasks * s->ow * s->c * s->kh * s->kw, QL_OPS_PAR_WORK)) {
        rows(s, x, 0, tasks, y, argmax);
        return;
    }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(tasks, 1, &lo, &hi);
        rows(s, x, lo, hi, y, argmax);
    }
}

// dx (N,H,W,C) = scatter-add of dy at argmax; images are independent
static void maxpool_backward_image(const ql_pool2d_shape *s, const int32_t *argmax, const float *dy,
                                   float *dx) {
    const int C = s->c;
    const int64_t out_px = (int64_t)s->oh * s->ow;
    memset(dx, 0, sizeof(float) * (size_t)s->h * s->w * C);
    for (int64_t p = 0; p < out_px; p++) {
        const float *g = dy + p * C;
        const int32_t *a = argmax + p * C;
        for (int c = 0; c < C; c++) dx[(int64_t)a[c] * C + c] += g[c];
    }
}

void ql_maxpool2d_backward(const ql_pool2d_shape *s, const int32_t *argmax, const float *dy, float *dx) {
    const int64_t in_img = (int64_t)s->h * s->w * s->c, out_img = (int64_t)s->oh * s->ow * s->c;
    if (s->n < 2 || !ql_ops_parallel(out_img * s->n, QL_OPS_PAR_WORK)) {
        for (int64_t n = 0; n < s->n; n++)
            maxpool_backward_image(s, argmax + n * out_img, dy + n * out_img, dx + n * in_img);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < s->n; n++)
        maxpool_backward_image(s, argmax + n * out_img, dy + n * out_img, dx + n * in_img);
}

// window rows [*lo,*hi) clipped to the input, and the unclipped size (pads
// count but not the part past the right padding, as in PyTorch)
static int window(int o, int st, int pad, int k, int in, int *lo, int *hi) {
    int a = o * st - pad, b = a + k;
    if (b > in + pad) b = in + pad;
    int size = b - a;
    *lo = a < 0 ? 0 : a;
    *hi = b > in ? in : b;
    return size;
}

// output rows t in [t0, t1), t = n*OH + oh: y (OW,C) = window sums (in window
// order) times 1/count
QL_OPS_INLINE void avgpool_rows(const ql_pool2d_shape *s, const float *x, int64_t t0, int64_t t1,
                                float *y) {
    const int C = s->c;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / s->oh;
        int oh = (int)(t % s->oh), h0, h1, w0, w1;
        int sz_h = window(oh, s->sh, s->ph, s->kh, s->h, &h0, &h1);
        for (int ow = 0; ow < s->ow; ow++) {
            int sz_w = window(ow, s->sw, s->pw, s->kw, s->w, &w0, &w1);
            int cnt = s->count_include_pad ? sz_h * sz_w : (h1 - h0) * (w1 - w0);
            float inv = cnt > 0 ? 1.0f / (float)cnt : 0.0f;
            float *yo = y + (t * s->ow + ow) * C;
            #pragma omp simd
            for (int c = 0; c < C; c++) yo[c] = 0.0f;
            for (int ih = h0; ih < h1; ih++)
                for (int iw = w0; iw < w1; iw++) {
                    const float *xp = x + ((n * s->h + ih) * s->w + iw) * C;
                    #pragma omp simd
                    for (int c = 0; c < C; c++) yo[c] += xp[c];
                }
            #pragma omp simd
            for (int c = 0; c < C; c++) yo[c] *= inv;
        }
    }
}

static void avgpool_rows_generic(const ql_pool2d_shape *s, const float *x, int64_t t0, int64_t t1,
                                 float *y) {
    avgpool_rows(s, x, t0, t1, y);
}

QL_OPS_AVX2 static void avgpool_rows_avx2(const ql_pool2d_shape *s, const float *x, int64_t t0,
                                          int64_t t1, float *y) {
    avgpool_rows(s, x, t0, t1, y);
}

// x (N,H,W,C) -> y (N,OH,OW,C)
void ql_avgpool2d_forward(const ql_pool2d_shape *s, const float *x, float *y) {
    void (*rows)(const ql_pool2d_shape *, const float *, int64_t, int64_t, float *) =
        ql_ops_use_avx2() ? avgpool_rows_avx2 : avgpool_rows_generic;
    const int64_t tasks = (int64_t)s->n * s->oh;
    if (tasks < 2 || !ql_ops_parallel(tasks * s->ow * s->c * s->kh * s->kw, QL_OPS_PAR_WORK)) {
        rows(s, x, 0, tasks, y);
        return;
    }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(tasks, 1, &lo, &hi);
        rows(s, x, lo, hi, y);
    }
}

// dx (H,W,C) of one image = each dy (OH,OW,C) spread evenly over its window
static void avgpool_backward_image(const ql_pool2d_shape *s, const float *dy, float *dx) {
    const int C = s->c;
    memset(dx, 0, sizeof(float) * (size_t)s->h * s->w * C);
    for (int oh = 0; oh < s->oh; oh++) {
        int h0, h1, w0, w1;
        int sz_h = window(oh, s->sh, s->ph, s->kh, s->h, &h0, &h1);
        for (int ow = 0; ow < s->ow; ow++) {
            int sz_w = window(ow, s->sw, s->pw, s->kw, s->w, &w0, &w1);
            int cnt = s->count_include_pad ? sz_h * sz_w : (h1 - h0) * (w1 - w0);
            float inv = cnt > 0 ? 1.0f / (float)cnt : 0.0f;
            const float *g = dy + ((int64_t)oh * s->ow + ow) * C;
            for (int ih = h0; ih < h1; ih++)
                for (int iw = w0; iw < w1; iw++) {
                    float *dp = dx + ((int64_t)ih * s->w + iw) * C;
                    #pragma omp simd
                    for (int c = 0; c < C; c++) dp[c] += g[c] * inv;
                }
        }
    }
}

void ql_avgpool2d_backward(const ql_pool2d_shape *s, const float *dy, float *dx) {
    const int64_t in_img = (int64_t)s->h * s->w * s->c, out_img = (int64_t)s->oh * s->ow * s->c;
    if (s->n < 2 || !ql_ops_parallel(out_img * s->n, QL_OPS_PAR_WORK)) {
        for (int64_t n = 0; n < s->n; n++) avgpool_backward_image(s, dy + n * out_img, dx + n * in_img);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < s->n; n++) avgpool_backward_image(s, dy + n * out_img, dx + n * in_img);
}

// x (HW,C) of one image -> y (C): sums in pixel order, times 1/HW
static void gap_image(int hw, int c, const float *x, float *y) {
    memset(y, 0, sizeof(float) * c);
    for (int64_t p = 0; p < hw; p++) {
        const float *xp = x + p * c;
        #pragma omp simd
        for (int j = 0; j < c; j++) y[j] += xp[j];
    }
    float inv = hw > 0 ? 1.0f / (float)hw : 0.0f;
    #pragma omp simd
    for (int j = 0; j < c; j++) y[j] *= inv;
}

// x (N,HW,C) -> y (N,C)
void ql_global_avgpool_forward(int n, int hw, int c, const float *x, float *y) {
    const int64_t img = (int64_t)hw * c;
    if (n < 2 || !ql_ops_parallel(img * n, QL_OPS_PAR_ELEMS)) {
        for (int64_t i = 0; i < n; i++) gap_image(hw, c, x + i * img, y + i * c);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) gap_image(hw, c, x + i * img, y + i * c);
}

// dy (N,C) -> dx (N,HW,C) = dy / HW everywhere
static void gap_backward_image(int hw, int c, const float *dy, float *dx) {
    float inv = hw > 0 ? 1.0f / (float)hw : 0.0f;
    for (int64_t p = 0; p < hw; p++) {
        float *d = dx + p * c;
        #pragma omp simd
        for (int j = 0; j < c; j++) d[j] = dy[j] * inv;
    }
}

void ql_global_avgpool_backward(int n, int hw, int c, const float *dy, float *dx) {
    const int64_t img = (int64_t)hw * c;
    if (n < 2 || !ql_ops_parallel(img * n, QL_OPS_PAR_ELEMS)) {
        for (int64_t i = 0; i < n; i++) gap_backward_image(hw, c, dy + i * c, dx + i * img);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) gap_backward_image(hw, c, dy + i * c, dx + i * img);
}
