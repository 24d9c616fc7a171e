/* relu and relu6 nodes: elementwise, any shape. */
#include "qlab/ops.h"
#include "graph/op.h"

static ql_status same_infer(ql_node *n, const ql_node *const *in) {
    n->out_ndim = in[0]->out_ndim;
    for (int i = 0; i < n->out_ndim; i++) n->out_shape[i] = in[0]->out_shape[i];
    return QL_OK;
}

static ql_status relu_forward(ql_op_ctx *c) {
    ql_relu_forward(c->y->numel, ql_f32(c->x[0]), ql_f32(c->y));
    return QL_OK;
}

static ql_status relu_backward(ql_op_ctx *c) {
    if (c->dx[0]) ql_relu_backward(c->y->numel, ql_f32(c->x[0]), c->dy, c->dx[0]);
    return QL_OK;
}

static ql_status relu6_forward(ql_op_ctx *c) {
    ql_relu6_forward(c->y->numel, ql_f32(c->x[0]), ql_f32(c->y));
    return QL_OK;
}

static ql_status relu6_backward(ql_op_ctx *c) {
    if (c->dx[0]) ql_relu6_backward(c->y->numel, ql_f32(c->x[0]), c->dy, c->dx[0]);
    return QL_OK;
}

const ql_op_def ql_op_relu_def = {1, 1, same_infer, NULL, relu_forward, relu_backward, NULL};
const ql_op_def ql_op_relu6_def = {1, 1, same_infer, NULL, relu6_forward, relu6_backward, NULL};

void ql_act_forward(int act, int64_t n, float *y) {
    if (act == QL_ACT_RELU) ql_relu_forward(n, y, y);
    else if (act == QL_ACT_RELU6) ql_relu6_forward(n, y, y);
}

/* The output y tells where the activation passed the gradient: relu where
 * y > 0, relu6 where 0 < y < 6. */
void ql_act_backward(int act, int64_t n, const float *y, float *dy) {
    if (act == QL_ACT_RELU) ql_relu_backward(n, y, dy, dy);
    else if (act == QL_ACT_RELU6) ql_relu6_backward(n, y, dy, dy);
}
