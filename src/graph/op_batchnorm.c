/* batchnorm2d node over the channels of an {H,W,C} input. PyTorch's
 * state_dict names, without num_batches_tracked (an I64 we do not carry). */
#include "qlab/alloc.h"
#include "qlab/ops.h"
#include "graph/op.h"

typedef struct {
    int c;
    float *save_mean, *save_invstd;   /* (C) batch statistics of the last training forward */
    float buf[];
} bn_priv;

static ql_status bn_infer(ql_node *n, const ql_node *const *in) {
    ql_attrs *a = &n->a;
    QL_TRY(ql_check_image(n, in[0]));
    int64_t c = in[0]->out_shape[2];
    if (a->in_ch == 0) a->in_ch = (int)c;
    if (a->in_ch != c)
        return ql_error(QL_ESHAPE, "node '%s': batchnorm2d expects %d channels, got %lld from '%s'",
                        n->name, a->in_ch, (long long)c, in[0]->name);
    if (a->out_ch == 0) a->out_ch = (int)c;
    if (a->out_ch != c)
        return ql_error(QL_EINVAL, "node '%s': batchnorm2d out_ch %d differs from its %lld channels",
                        n->name, a->out_ch, (long long)c);
    if (!(a->eps > 0.0f))
        return ql_error(QL_EINVAL, "node '%s': batchnorm2d eps must be > 0, got %g", n->name, a->eps);
    if (!(a->momentum >= 0.0f && a->momentum <= 1.0f))
        return ql_error(QL_EINVAL, "node '%s': batchnorm2d momentum must be in [0,1], got %g", n->name,
                        a->momentum);
    n->out_ndim = 3;
    for (int i = 0; i < 3; i++) n->out_shape[i] = in[0]->out_shape[i];
    return QL_OK;
}

static ql_status bn_params(ql_node *n) {
    int64_t s[1] = {n->a.in_ch};
    QL_TRY(ql_node_add_param(n, "weight", 1, s, 1));
    QL_TRY(ql_node_add_param(n, "bias", 1, s, 1));
    QL_TRY(ql_node_add_param(n, "running_mean", 1, s, 0));
    QL_TRY(ql_node_add_param(n, "running_var", 1, s, 0));
    float *w = ql_f32(n->params[0].value), *v = ql_f32(n->params[3].value);
    for (int i = 0; i < n->a.in_ch; i++) w[i] = v[i] = 1.0f;
    return QL_OK;
}

static bn_priv *get_priv(ql_node *n) {
    bn_priv *p = n->priv;
    if (p) return p;
    int c = n->a.in_ch;
    if (!(p = ql_malloc(sizeof *p + 2 * (size_t)c * sizeof(float)))) return NULL;
    p->c = c;
    p->save_mean = p->buf;
    p->save_invstd = p->buf + c;
    n->priv = p;
    return p;
}

static ql_status bn_forward(ql_op_ctx *c) {
    ql_node *n = c->n;
    int64_t m = c->x[0]->numel / n->a.in_ch;
    float *gamma = ql_f32(n->params[0].value), *beta = ql_f32(n->params[1].value);
    float *rmean = ql_f32(n->params[2].value), *rvar = ql_f32(n->params[3].value);
    if (!c->training) {
        ql_batchnorm_forward_eval(m, n->a.in_ch, ql_f32(c->x[0]), gamma, beta, rmean, rvar, n->a.eps,
                                  ql_f32(c->y));
        return QL_OK;
    }
    bn_priv *p = get_priv(n);
    if (!p) return QL_ENOMEM;
    ql_batchnorm_forward_train(m, n->a.in_ch, ql_f32(c->x[0]), gamma, beta, rmean, rvar, n->a.eps,
                               n->a.momentum, ql_f32(c->y), p->save_mean, p->save_invstd);
    return QL_OK;
}

static ql_status bn_backward(ql_op_ctx *c) {
    ql_node *n = c->n;
    bn_priv *p = n->priv;
    if (!p) return ql_error(QL_ESTATE, "no batch statistics saved (forward with training=1 first)");
    ql_tensor *gg = n->params[0].grad, *gb = n->params[1].grad;
    ql_batchnorm_backward_train(c->x[0]->numel / n->a.in_ch, n->a.in_ch, ql_f32(c->x[0]),
                                ql_f32(n->params[0].value), p->save_mean, p->save_invstd, c->dy,
                                c->dx[0], gg ? ql_f32(gg) : NULL, gb ? ql_f32(gb) : NULL);
    return QL_OK;
}

const ql_op_def ql_op_batchnorm2d_def = {1, 1, bn_infer, bn_params, bn_forward, bn_backward, NULL};
