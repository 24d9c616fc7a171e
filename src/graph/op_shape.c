/* Nodes that only move data: input (node 0, never run), flatten, seq_last. */
#include <string.h>
#include "qlab/ops.h"
#include "graph/op.h"

static ql_status input_infer(ql_node *n, const ql_node *const *in) { return QL_OK; }

/* {H,W,C} -> {C*H*W} in PyTorch's NCHW order; {T,F} and {F} keep row-major order. */
static ql_status flatten_infer(ql_node *n, const ql_node *const *in) {
    n->out_ndim = 1;
    n->out_shape[0] = ql_node_numel(in[0]);
    return QL_OK;
}

static ql_status flatten_forward(ql_op_ctx *c) {
    const ql_tensor *x = c->x[0];
    if (x->ndim == 4)
        ql_flatten_nchw_forward((int)c->batch, (int)x->shape[1], (int)x->shape[2], (int)x->shape[3],
                                ql_f32(x), ql_f32(c->y));
    else
        memcpy(ql_f32(c->y), ql_f32(x), (size_t)x->numel * sizeof(float));
    return QL_OK;
}

static ql_status flatten_backward(ql_op_ctx *c) {
    const ql_tensor *x = c->x[0];
    if (!c->dx[0]) return QL_OK;
    if (x->ndim == 4)
        ql_flatten_nchw_backward((int)c->batch, (int)x->shape[1], (int)x->shape[2], (int)x->shape[3],
                                 c->dy, c->dx[0]);
    else
        memcpy(c->dx[0], c->dy, (size_t)x->numel * sizeof(float));
    return QL_OK;
}

static ql_status seq_last_infer(ql_node *n, const ql_node *const *in) {
    if (in[0]->out_ndim != 2) {
        char b[128];
        return ql_error(QL_ESHAPE, "node '%s': seq_last expects a {T,H} input, got %s from '%s'", n->name,
                        ql_shape_str(in[0]->out_ndim, in[0]->out_shape, b, sizeof b), in[0]->name);
    }
    n->out_ndim = 1;
    n->out_shape[0] = in[0]->out_shape[1];
    return QL_OK;
}

static ql_status seq_last_forward(ql_op_ctx *c) {
    const ql_tensor *x = c->x[0];
    ql_seq_last_forward((int)c->batch, (int)x->shape[1], (int)x->shape[2], ql_f32(x), ql_f32(c->y));
    return QL_OK;
}

static ql_status seq_last_backward(ql_op_ctx *c) {
    const ql_tensor *x = c->x[0];
    if (c->dx[0]) ql_seq_last_backward((int)c->batch, (int)x->shape[1], (int)x->shape[2], c->dy, c->dx[0]);
    return QL_OK;
}

const ql_op_def ql_op_input_def = {0, 0, input_infer, NULL, NULL, NULL, NULL};
const ql_op_def ql_op_flatten_def = {1, 1, flatten_infer, NULL, flatten_forward, flatten_backward, NULL};
const ql_op_def ql_op_seq_last_def = {1, 1, seq_last_infer, NULL, seq_last_forward, seq_last_backward, NULL};
