/* Pooling nodes: maxpool2d (keeps its argmax in training for backward),
 * avgpool2d, global_avgpool {H,W,C} -> {C}. */
#include "qlab/alloc.h"
#include "qlab/ops.h"
#include "graph/op.h"

typedef struct {
    size_t cap;                /* int32 elements in argmax */
    _Alignas(64) int32_t argmax[];   /* (N,OH,OW,C) of the last training forward */
} maxpool_priv;

static ql_pool2d_shape pool_shape(const ql_attrs *a, int64_t n, int64_t h, int64_t w, int64_t c) {
    return (ql_pool2d_shape){.n = (int)n, .h = (int)h, .w = (int)w, .c = (int)c, .kh = a->kernel[0],
                             .kw = a->kernel[1], .sh = a->stride[0], .sw = a->stride[1],
                             .ph = a->padding[0], .pw = a->padding[1], .ceil_mode = a->ceil_mode,
                             .count_include_pad = a->count_include_pad};
}

static ql_status pool_infer(ql_node *n, const ql_node *const *in) {
    const ql_attrs *a = &n->a;
    QL_TRY(ql_check_image(n, in[0]));
    QL_TRY(ql_check_window(n, 0));
    for (int i = 0; i < 2; i++)
        if (2 * a->padding[i] > a->kernel[i])
            return ql_error(QL_EINVAL, "node '%s': %s padding [%d,%d] must be at most half the kernel [%d,%d]",
                            n->name, ql_op_name(n->op), a->padding[0], a->padding[1], a->kernel[0], a->kernel[1]);
    if ((a->ceil_mode != 0 && a->ceil_mode != 1) || (a->count_include_pad != 0 && a->count_include_pad != 1))
        return ql_error(QL_EINVAL, "node '%s': ceil_mode and count_include_pad must be 0 or 1", n->name);
    const int64_t *s = in[0]->out_shape;
    if (a->kernel[0] > s[0] + 2 * a->padding[0] || a->kernel[1] > s[1] + 2 * a->padding[1])
        return ql_error(QL_ESHAPE, "node '%s': %s kernel %dx%d is larger than the padded input %lldx%lld",
                        n->name, ql_op_name(n->op), a->kernel[0], a->kernel[1],
                        (long long)(s[0] + 2 * a->padding[0]), (long long)(s[1] + 2 * a->padding[1]));
    ql_pool2d_shape ps = pool_shape(a, 1, s[0], s[1], s[2]);
    if (ql_pool2d_shape_init(&ps) != QL_OK) return ql_error_prefix(QL_ESHAPE, "node '%s'", n->name);
    n->out_ndim = 3;
    n->out_shape[0] = ps.oh; n->out_shape[1] = ps.ow; n->out_shape[2] = s[2];
    return QL_OK;
}

static ql_status pool_ctx_shape(const ql_op_ctx *c, ql_pool2d_shape *s) {
    const int64_t *x = c->x[0]->shape;
    *s = pool_shape(&c->n->a, c->batch, x[1], x[2], x[3]);
    return ql_pool2d_shape_init(s);
}

/* Argmax storage for backward, grown (never shrunk) with the batch. */
static int32_t *argmax_buf(ql_node *n, size_t count) {
    maxpool_priv *p = n->priv;
    if (p && p->cap >= count) return p->argmax;
    ql_free(p);
    n->priv = NULL;
    if (!(p = ql_malloc(sizeof *p + count * sizeof(int32_t)))) return NULL;
    p->cap = count;
    n->priv = p;
    return p->argmax;
}

static ql_status maxpool_forward(ql_op_ctx *c) {
    ql_pool2d_shape s;
    QL_TRY(pool_ctx_shape(c, &s));
    int32_t *am = NULL;
    if (c->training && !(am = argmax_buf(c->n, (size_t)c->y->numel))) return QL_ENOMEM;
    ql_maxpool2d_forward(&s, ql_f32(c->x[0]), ql_f32(c->y), am);
    return QL_OK;
}

static ql_status maxpool_backward(ql_op_ctx *c) {
    ql_pool2d_shape s;
    QL_TRY(pool_ctx_shape(c, &s));
    maxpool_priv *p = c->n->priv;
    if (!p || p->cap < (size_t)c->y->numel)
        return ql_error(QL_ESTATE, "no argmax saved (forward with training=1 first)");
    if (c->dx[0]) ql_maxpool2d_backward(&s, p->argmax, c->dy, c->dx[0]);
    return QL_OK;
}

static ql_status avgpool_forward(ql_op_ctx *c) {
    ql_pool2d_shape s;
    QL_TRY(pool_ctx_shape(c, &s));
    ql_avgpool2d_forward(&s, ql_f32(c->x[0]), ql_f32(c->y));
    return QL_OK;
}

static ql_status avgpool_backward(ql_op_ctx *c) {
    ql_pool2d_shape s;
    QL_TRY(pool_ctx_shape(c, &s));
    if (c->dx[0]) ql_avgpool2d_backward(&s, c->dy, c->dx[0]);
    return QL_OK;
}

static ql_status gap_infer(ql_node *n, const ql_node *const *in) {
    QL_TRY(ql_check_image(n, in[0]));
    n->out_ndim = 1;
    n->out_shape[0] = in[0]->out_shape[2];
    return QL_OK;
}

static ql_status gap_forward(ql_op_ctx *c) {
    const int64_t *x = c->x[0]->shape;
    ql_global_avgpool_forward((int)c->batch, (int)(x[1] * x[2]), (int)x[3], ql_f32(c->x[0]), ql_f32(c->y));
    return QL_OK;
}

static ql_status gap_backward(ql_op_ctx *c) {
    const int64_t *x = c->x[0]->shape;
    if (c->dx[0]) ql_global_avgpool_backward((int)c->batch, (int)(x[1] * x[2]), (int)x[3], c->dy, c->dx[0]);
    return QL_OK;
}

const ql_op_def ql_op_maxpool2d_def = {1, 1, pool_infer, NULL, maxpool_forward, maxpool_backward, NULL};
const ql_op_def ql_op_avgpool2d_def = {1, 1, pool_infer, NULL, avgpool_forward, avgpool_backward, NULL};
const ql_op_def ql_op_global_avgpool_def = {1, 1, gap_infer, NULL, gap_forward, gap_backward, NULL};
