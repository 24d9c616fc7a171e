/* fakequant node (QAT): observes its input while training (unless the
 * observer is frozen), then quantizes-dequantizes it with the observer's
 * current qparams; backward is straight-through inside the range. */
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/fakequant.h"
#include "graph/op.h"

typedef struct {
    int active;
    float scale;
    int32_t zp, qmin, qmax;
} fq_priv;

static ql_status fq_infer(ql_node *n, const ql_node *const *in) {
    n->out_ndim = in[0]->out_ndim;
    memcpy(n->out_shape, in[0]->out_shape, sizeof n->out_shape);
    return QL_OK;
}

static ql_status fq_forward(ql_op_ctx *c) {
    ql_node *n = c->n;
    fq_priv *p = n->priv;
    if (!p && !(p = n->priv = ql_calloc(sizeof *p))) return QL_ENOMEM;
    const ql_tensor *x = c->x[0];
    p->active = 0;
    if (n->obs && c->training && !ql_observer_frozen(n->obs)) QL_TRY(ql_observer_observe(n->obs, x));
    if (!n->obs || n->fq_off || ql_observer_count(n->obs) == 0) {
        memcpy(ql_f32(c->y), ql_f32(x), (size_t)x->numel * sizeof(float));
        return QL_OK;
    }
    QL_TRY(ql_observer_qparams(n->obs, &p->scale, &p->zp));
    ql_observer_qrange(ql_observer_options(n->obs), &p->qmin, &p->qmax);
    ql_fake_quant(x->numel, ql_f32(x), p->scale, p->zp, p->qmin, p->qmax, ql_f32(c->y));
    p->active = 1;
    return QL_OK;
}

static ql_status fq_backward(ql_op_ctx *c) {
    const fq_priv *p = c->n->priv;
    if (!c->dx[0]) return QL_OK;
    int64_t n = c->x[0]->numel;
    if (p && p->active) ql_fake_quant_backward(n, ql_f32(c->x[0]), p->scale, p->zp, p->qmin, p->qmax, c->dy, c->dx[0]);
    else memcpy(c->dx[0], c->dy, (size_t)n * sizeof(float));
    return QL_OK;
}

const ql_op_def ql_op_fakequant_def = {1, 1, fq_infer, NULL, fq_forward, fq_backward, NULL};
