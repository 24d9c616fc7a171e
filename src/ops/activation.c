/* ReLU and ReLU6, elementwise. Backward passes the gradient where the input
 * is strictly inside the linear range (PyTorch: grad 0 at x == 0 and x == 6). */
#include "qlab/ops.h"

#define PAR_MIN (1 << 16)

void ql_relu_forward(int64_t n, const float *x, float *y) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void ql_relu_backward(int64_t n, const float *x, const float *dy, float *dx) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

void ql_relu6_forward(int64_t n, const float *x, float *y) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] > 0.0f ? x[i] : 0.0f;
        y[i] = v < 6.0f ? v : 6.0f;
    }
}

void ql_relu6_backward(int64_t n, const float *x, const float *dy, float *dx) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] = (x[i] > 0.0f && x[i] < 6.0f) ? dy[i] : 0.0f;
}
