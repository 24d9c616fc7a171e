/* One training step on a batch: forward (batch statistics), loss, backward, update. */
#include <math.h>
#include "qlab/alloc.h"
#include "qlab/ops.h"
#include "qlab/optim.h"
#include "qlab/topk.h"

ql_status ql_train_step(ql_graph *g, ql_optim *o, const ql_tensor *x, const ql_tensor *labels,
                        float lr, float *loss, int64_t *correct) {
    const ql_tensor *y;
    if (labels->dtype != QL_DTYPE_S32 || labels->numel != x->shape[0])
        return ql_error(QL_ESHAPE, "train_step: need one s32 label per sample (%lld samples, %lld labels)",
                        (long long)x->shape[0], (long long)labels->numel);
    QL_TRY(ql_graph_alloc_grads(g));
    ql_graph_zero_grad(g);
    QL_TRY(ql_graph_forward(g, x, &y, 1));
    if (y->ndim != 2) return ql_error(QL_ESHAPE, "train_step: the model must output (N, classes) logits");
    int64_t n = y->shape[0];
    int k = (int)y->shape[1];
    const int32_t *lab = labels->data;
    for (int64_t i = 0; i < n; i++)
        if (lab[i] < 0 || lab[i] >= k) return ql_error(QL_EINVAL, "label %d outside 0..%d", lab[i], k - 1);
    ql_tensor *dy = ql_tensor_new(QL_DTYPE_F32, 2, y->shape);
    if (!dy) return QL_ENOMEM;
    float l = ql_softmax_xent(n, k, ql_f32(y), lab, ql_f32(dy));
    ql_topk_counts hits = {0};
    ql_topk_count(&hits, ql_f32(y), NULL, n, k, lab);
    int64_t c = hits.top1;
    ql_status st = ql_graph_backward(g, dy);
    ql_tensor_free(dy);
    QL_TRY(st);
    if (!isfinite(l)) return ql_error(QL_EINVAL, "training diverged: loss is %g", l);
    QL_TRY(ql_optim_step(o, g, lr));
    if (loss) *loss = l;
    if (correct) *correct = c;
    return QL_OK;
}
