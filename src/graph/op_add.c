/* add node: the elementwise sum of two inputs of the same shape (residuals). */
#include <string.h>
#include "qlab/ops.h"
#include "graph/op.h"

static ql_status add_infer(ql_node *n, const ql_node *const *in) {
    const ql_node *a = in[0], *b = in[1];
    int same = a->out_ndim == b->out_ndim;
    for (int i = 0; same && i < a->out_ndim; i++) same = a->out_shape[i] == b->out_shape[i];
    if (!same) {
        char sa[128], sb[128];
        return ql_error(QL_ESHAPE, "node '%s': add inputs differ: %s from '%s' and %s from '%s'", n->name,
                        ql_shape_str(a->out_ndim, a->out_shape, sa, sizeof sa), a->name,
                        ql_shape_str(b->out_ndim, b->out_shape, sb, sizeof sb), b->name);
    }
    n->out_ndim = a->out_ndim;
    for (int i = 0; i < n->out_ndim; i++) n->out_shape[i] = a->out_shape[i];
    return QL_OK;
}

static ql_status add_forward(ql_op_ctx *c) {
    ql_add_forward(c->y->numel, ql_f32(c->x[0]), ql_f32(c->x[1]), ql_f32(c->y));
    ql_act_forward(c->n->a.act ? c->n->a.act : c->act, c->y->numel, ql_f32(c->y));
    return QL_OK;
}

/* d(a+b)/da = d(a+b)/db = 1: both inputs receive dy. */
static ql_status add_backward(ql_op_ctx *c) {
    for (int k = 0; k < 2; k++)
        if (c->dx[k]) {
            memcpy(c->dx[k], c->dy, (size_t)c->y->numel * sizeof(float));
            ql_act_backward(c->n->a.act, c->y->numel, ql_f32(c->y), c->dx[k]);
        }
    return QL_OK;
}

const ql_op_def ql_op_add_def = {2, 2, add_infer, NULL, add_forward, add_backward, NULL};
