/* Accuracy and loss of a classifier over a loader, in inference mode, and
 * optionally its agreement with a reference model on the same images. The
 * counting rule is ql_topk_row's (ties go to the lower class index). */
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/dataset.h"
#include "qlab/ops.h"
#include "qlab/topk.h"
#include "graph/op.h"

/* Labels outside the logits would index out of bounds in the loss. */
static ql_status check_batch(const ql_tensor *out, const ql_tensor *labels, const char *who) {
    char b[128];
    if (out->ndim != 2 || out->shape[0] != labels->numel || out->dtype != QL_DTYPE_F32)
        return ql_error(QL_ESHAPE, "evaluate: the %s must output (N,classes) f32 logits, got %s %s for %lld labels",
                        who, ql_dtype_name(out->dtype), ql_shape_str(out->ndim, out->shape, b, sizeof b),
                        (long long)labels->numel);
    const int32_t *y = labels->data;
    for (int64_t i = 0; i < labels->numel; i++)
        if (y[i] < 0 || y[i] >= out->shape[1])
            return ql_error(QL_EINVAL, "evaluate: label %d outside the %s's %lld classes",
                            (int)y[i], who, (long long)out->shape[1]);
    return QL_OK;
}

/* The reference's logits for this batch, copied (its output buffer is reused by its next forward). */
static ql_status ref_logits(ql_graph *ref, const ql_tensor *x, const ql_tensor *labels, float **buf, size_t *cap) {
    const ql_tensor *out;
    QL_TRY(ql_graph_forward(ref, x, &out, 0));
    QL_TRY(check_batch(out, labels, "reference model"));
    size_t need = (size_t)out->numel * sizeof(float);
    if (need > *cap) {
        float *p = ql_realloc(*buf, need);
        if (!p) return QL_ENOMEM;
        *buf = p;
        *cap = need;
    }
    memcpy(*buf, ql_f32(out), need);
    return QL_OK;
}

ql_status ql_evaluate(ql_graph *g, ql_graph *ref, struct ql_loader *ld, const ql_progress *p, ql_eval_result *res) {
    static const int64_t zero[1] = {0};
    ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 1, zero), *labels = ql_tensor_new(QL_DTYPE_S32, 1, zero);
    ql_status st = (x && labels) ? QL_OK : QL_ENOMEM;
    ql_topk_counts k = {0};
    int64_t batches = 0, total = ql_loader_num_batches(ld);
    double loss = 0;
    float *rbuf = NULL;
    size_t rcap = 0;
    ql_loader_reset(ld);
    while (st == QL_OK && ql_loader_next(ld, x, labels)) {
        const ql_tensor *out;
        if (ref && (st = ref_logits(ref, x, labels, &rbuf, &rcap)) != QL_OK) break;
        if ((st = ql_graph_forward(g, x, &out, 0)) != QL_OK || (st = check_batch(out, labels, "model")) != QL_OK) break;
        loss += (double)ql_softmax_xent(out->shape[0], (int)out->shape[1], ql_f32(out), labels->data, NULL) *
                (double)out->shape[0];
        ql_topk_count(&k, ql_f32(out), ref ? rbuf : NULL, out->shape[0], out->shape[1], labels->data);
        if (ql_progress_report(p, ++batches, total, "evaluate"))
            st = ql_error(QL_ECANCEL, "evaluation cancelled after %lld of %lld batches", (long long)batches,
                          (long long)total);
    }
    ql_tensor_free(x);
    ql_tensor_free(labels);
    ql_free(rbuf);
    if (st != QL_OK) return st;
    memset(res, 0, sizeof *res);
    double n = (double)k.n;
    res->n = k.n;
    res->ties = k.ties;
    if (k.n) {
        res->top1 = 100.0 * (double)k.top1 / n;
        res->top5 = 100.0 * (double)k.top5 / n;
        res->loss = loss / n;
    }
    res->has_ref = ref != NULL;
    if (ref && k.n) {
        res->agree = 100.0 * (double)k.agree / n;
        res->ref_top1 = 100.0 * (double)k.ref_top1 / n;
        res->ref_right_wrong = k.ref_right_wrong;
        res->ref_wrong_right = k.ref_wrong_right;
    }
    return QL_OK;
}
