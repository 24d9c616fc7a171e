/* ReLU and ReLU6, elementwise. Backward passes the gradient where the input
 * is strictly inside the linear range (PyTorch: grad 0 at x == 0 and x == 6).
 * The loops are branch-free selects so they vectorise: a data-dependent
 * branch mispredicts on about half of the elements of a real activation.
 * Callers run them in place (y == x, dx == dy): each element is read before
 * it is written. */
#include "ops/ops_internal.h"

// x (n) -> y (n)
static void relu_fwd(int64_t n, const float *x, float *y) {
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_bwd(int64_t n, const float *x, const float *dy, float *dx) {
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], g = dy[i];
        dx[i] = v > 0.0f ? g : 0.0f;
    }
}

static void relu6_fwd(int64_t n, const float *x, float *y) {
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] > 0.0f ? x[i] : 0.0f;
        y[i] = v < 6.0f ? v : 6.0f;
    }
}

static void relu6_bwd(int64_t n, const float *x, const float *dy, float *dx) {
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], g = dy[i];   // both loaded: no branch on v
        dx[i] = v > 0.0f && v < 6.0f ? g : 0.0f;
    }
}

void ql_relu_forward(int64_t n, const float *x, float *y) {
    if (!ql_ops_parallel(n, QL_OPS_PAR_ELEMS)) { relu_fwd(n, x, y); return; }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(n, 16, &lo, &hi);
        relu_fwd(hi - lo, x + lo, y + lo);
    }
}

void ql_relu_backward(int64_t n, const float *x, const float *dy, float *dx) {
    if (!ql_ops_parallel(n, QL_OPS_PAR_ELEMS)) { relu_bwd(n, x, dy, dx); return; }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(n, 16, &lo, &hi);
        relu_bwd(hi - lo, x + lo, dy + lo, dx + lo);
    }
}

void ql_relu6_forward(int64_t n, const float *x, float *y) {
    if (!ql_ops_parallel(n, QL_OPS_PAR_ELEMS)) { relu6_fwd(n, x, y); return; }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(n, 16, &lo, &hi);
        relu6_fwd(hi - lo, x + lo, y + lo);
    }
}

void ql_relu6_backward(int64_t n, const float *x, const float *dy, float *dx) {
    if (!ql_ops_parallel(n, QL_OPS_PAR_ELEMS)) { relu6_bwd(n, x, dy, dx); return; }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(n, 16, &lo, &hi);
        relu6_bwd(hi - lo, x + lo, dy + lo, dx + lo);
    }
}
