/* Softmax and mean cross-entropy, numerically stable (max subtracted).
 * Labels outside [0,K) are IGNORED, as PyTorch's ignore_index: such rows add
 * nothing to the loss or to dlogits (their row is zero), and the mean is taken
 * over the valid rows only (so it is (softmax - onehot) / N when all are
 * valid). With no valid row the loss is 0 and dlogits is all zero. */
#include <math.h>
#include <string.h>
#include "ops/ops_internal.h"

// x (K) -> y (K) of one row
static void softmax_row(int k, const float *x, float *y) {
    float mx = x[0];
    for (int j = 1; j < k; j++) mx = x[j] > mx ? x[j] : mx;
    double sum = 0;
    for (int j = 0; j < k; j++) { y[j] = expf(x[j] - mx); sum += y[j]; }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < k; j++) y[j] *= inv;
}

// x (N,K) -> y (N,K), rows sum to 1
void ql_softmax(int64_t n, int k, const float *x, float *y) {
    if (k <= 0) return;
    if (n < 2 || !ql_ops_parallel(n * (int64_t)k, QL_OPS_PAR_WORK)) {
        for (int64_t i = 0; i < n; i++) softmax_row(k, x + i * k, y + i * k);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) softmax_row(k, x + i * k, y + i * k);
}

// logits (N,K), labels (N) -> mean loss; dlogits (N,K) or NULL
float ql_softmax_xent(int64_t n, int k, const float *logits, const int32_t *labels, float *dlogits) {
    if (n <= 0 || k <= 0) return 0.0f;
    int64_t valid = 0;
    for (int64_t i = 0; i < n; i++) valid += labels[i] >= 0 && labels[i] < k;
    double total = 0;
    #pragma omp parallel for schedule(static) reduction(+ : total) if (n * (int64_t)k > (1 << 15))
    for (int64_t i = 0; i < n; i++) {
        const float *xi = logits + i * k;
        float *di = dlogits ? dlogits + i * k : NULL;
        int32_t lab = labels[i];
        if (lab < 0 || lab >= k) {
            if (di) memset(di, 0, sizeof(float) * k);
            continue;
        }
        float mx = xi[0];
        for (int j = 1; j < k; j++) mx = xi[j] > mx ? xi[j] : mx;
        double sum = 0;
        for (int j = 0; j < k; j++) sum += exp((double)xi[j] - mx);
        double lse = mx + log(sum);
        total += lse - xi[lab];
        if (di) {
            double scale = 1.0 / (double)valid;
            for (int j = 0; j < k; j++) di[j] = (float)(exp(xi[j] - lse) * scale);
            di[lab] -= (float)scale;
        }
    }
    return valid ? (float)(total / (double)valid) : 0.0f;
}
