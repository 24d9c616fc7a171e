/* Accuracy and loss of a classifier over a loader, in inference mode. */
#include <math.h>
#include "qlab/dataset.h"
#include "qlab/ops.h"
#include "graph/op.h"

/* Labels outside the logits would index out of bounds in the loss. */
static ql_status check_batch(const ql_tensor *out, const ql_tensor *labels) {
    char b[128];
    if (out->ndim != 2 || out->shape[0] != labels->numel)
        return ql_error(QL_ESHAPE, "evaluate: the model must output (N,classes) logits, got %s for %lld labels",
                        ql_shape_str(out->ndim, out->shape, b, sizeof b), (long long)labels->numel);
    const int32_t *y = labels->data;
    for (int64_t i = 0; i < labels->numel; i++)
        if (y[i] < 0 || y[i] >= out->shape[1])
            return ql_error(QL_EINVAL, "evaluate: label %d outside the model's %lld classes",
                            (int)y[i], (long long)out->shape[1]);
    return QL_OK;
}

/* Rank of the true class = logits strictly above it (a NaN logit never counts as right). */
static void count_hits(const ql_tensor *out, const int32_t *y, int64_t *top1, int64_t *top5) {
    int64_t k = out->shape[1];
    for (int64_t i = 0; i < out->shape[0]; i++) {
        const float *row = ql_f32(out) + i * k;
        float t = row[y[i]];
        if (isnan(t)) continue;
        int64_t rank = 0;
        for (int64_t j = 0; j < k; j++) rank += row[j] > t;
        *top1 += rank < 1;
        *top5 += rank < 5;
    }
}

ql_status ql_evaluate(ql_graph *g, struct ql_loader *ld, const ql_progress *p, ql_eval_result *res) {
    static const int64_t zero[1] = {0};
    ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 1, zero), *labels = ql_tensor_new(QL_DTYPE_S32, 1, zero);
    ql_status st = (x && labels) ? QL_OK : QL_ENOMEM;
    int64_t n = 0, top1 = 0, top5 = 0, batches = 0, total = ql_loader_num_batches(ld);
    double loss = 0;
    ql_loader_reset(ld);
    while (st == QL_OK && ql_loader_next(ld, x, labels)) {
        const ql_tensor *out;
        if ((st = ql_graph_forward(g, x, &out, 0)) != QL_OK || (st = check_batch(out, labels)) != QL_OK) break;
        loss += (double)ql_softmax_xent(out->shape[0], (int)out->shape[1], ql_f32(out), labels->data, NULL) *
                (double)out->shape[0];
        count_hits(out, labels->data, &top1, &top5);
        n += out->shape[0];
        if (ql_progress_report(p, ++batches, total, "evaluate"))
            st = ql_error(QL_ECANCEL, "evaluation cancelled after %lld of %lld batches", (long long)batches,
                          (long long)total);
    }
    ql_tensor_free(x);
    ql_tensor_free(labels);
    if (st != QL_OK) return st;
    res->n = n;
    res->top1 = n ? 100.0 * (double)top1 / (double)n : 0.0;
    res->top5 = n ? 100.0 * (double)top5 / (double)n : 0.0;
    res->loss = n ? loss / (double)n : 0.0;
    return QL_OK;
}
