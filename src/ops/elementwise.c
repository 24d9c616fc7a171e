/* Elementwise add and the reshapes between conv and linear/LSTM layers. */
#include <string.h>
#include "qlab/ops.h"

void ql_add_forward(int64_t n, const float *a, const float *b, float *y) {
    #pragma omp parallel for simd schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

// x (N,H,W,C) -> y (N, C*H*W) with y[n][(c*H + h)*W + w] = x[n][h][w][c]
void ql_flatten_nchw_forward(int n, int h, int w, int c, const float *x, float *y) {
    const int64_t hw = (int64_t)h * w, per = hw * c;
    #pragma omp parallel for schedule(static) if ((int64_t)n * per > (1 << 16))
    for (int i = 0; i < n; i++) {
        const float *xi = x + i * per;
        float *yi = y + i * per;
        for (int64_t p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++) yi[ch * hw + p] = xi[p * c + ch];
    }
}

// dy (N, C*H*W) in NCHW order -> dx (N,H,W,C)
void ql_flatten_nchw_backward(int n, int h, int w, int c, const float *dy, float *dx) {
    const int64_t hw = (int64_t)h * w, per = hw * c;
    #pragma omp parallel for schedule(static) if ((int64_t)n * per > (1 << 16))
    for (int i = 0; i < n; i++) {
        const float *gi = dy + i * per;
        float *di = dx + i * per;
        for (int64_t p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++) di[p * c + ch] = gi[ch * hw + p];
    }
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
