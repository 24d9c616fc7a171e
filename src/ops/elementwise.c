/* Elementwise add and the reshapes between conv and linear/LSTM layers. */
#include <string.h>
#include "ops/ops_internal.h"

static void add(int64_t n, const float *a, const float *b, float *y) {
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

// a (n) + b (n) -> y (n); y may be a or b
void ql_add_forward(int64_t n, const float *a, const float *b, float *y) {
    if (!ql_ops_parallel(n, QL_OPS_PAR_ELEMS)) { add(n, a, b, y); return; }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(n, 16, &lo, &hi);
        add(hi - lo, a + lo, b + lo, y + lo);
    }
}

// x (H,W,C) -> y (C*H*W) of one image: y[(c*H + h)*W + w] = x[h][w][c]
static void flatten_image(int64_t hw, int c, const float *x, float *y) {
    for (int64_t p = 0; p < hw; p++)
        for (int ch = 0; ch < c; ch++) y[ch * hw + p] = x[p * c + ch];
}

// the inverse: dy (C*H*W) -> dx (H,W,C)
static void unflatten_image(int64_t hw, int c, const float *dy, float *dx) {
    for (int64_t p = 0; p < hw; p++)
        for (int ch = 0; ch < c; ch++) dx[p * c + ch] = dy[ch * hw + p];
}

// x (N,H,W,C) -> y (N, C*H*W) with y[n][(c*H + h)*W + w] = x[n][h][w][c]
void ql_flatten_nchw_forward(int n, int h, int w, int c, const float *x, float *y) {
    const int64_t hw = (int64_t)h * w, per = hw * c;
    if (n < 2 || !ql_ops_parallel(n * per, QL_OPS_PAR_ELEMS)) {
        for (int64_t i = 0; i < n; i++) flatten_image(hw, c, x + i * per, y + i * per);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) flatten_image(hw, c, x + i * per, y + i * per);
}

// dy (N, C*H*W) in NCHW order -> dx (N,H,W,C)
void ql_flatten_nchw_backward(int n, int h, int w, int c, const float *dy, float *dx) {
    const int64_t hw = (int64_t)h * w, per = hw * c;
    if (n < 2 || !ql_ops_parallel(n * per, QL_OPS_PAR_ELEMS)) {
        for (int64_t i = 0; i < n; i++) unflatten_image(hw, c, dy + i * per, dx + i * per);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) unflatten_image(hw, c, dy + i * per, dx + i * per);
}

// x (N,T,H) -> y (N,H) = x[:, T-1, :]
void ql_seq_last_forward(int n, int t, int h, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++)
        memcpy(y + i * h, x + (i * t + t - 1) * h, sizeof(float) * h);
}

// dy (N,H) -> dx (N,T,H), zero except at the last step
void ql_seq_last_backward(int n, int t, int h, const float *dy, float *dx) {
    memset(dx, 0, sizeof(float) * (size_t)n * t * h);
    for (int64_t i = 0; i < n; i++)
        memcpy(dx + (i * t + t - 1) * h, dy + i * h, sizeof(float) * h);
}
