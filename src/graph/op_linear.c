/* linear node: {F} -> {out}, or per time step {T,F} -> {T,out} (M = N*T rows). */
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/ops.h"
#include "graph/op.h"

static ql_status linear_infer(ql_node *n, const ql_node *const *in) {
    ql_attrs *a = &n->a;
    const ql_node *x = in[0];
    if (x->out_ndim != 1 && x->out_ndim != 2) {
        char b[128];
        return ql_error(QL_ESHAPE, "node '%s': linear expects an {F} or {T,F} input, got %s from '%s'%s",
                        n->name, ql_shape_str(x->out_ndim, x->out_shape, b, sizeof b), x->name,
                        x->out_ndim == 3 ? " (flatten or global_avgpool it first)" : "");
    }
    int64_t f = x->out_shape[x->out_ndim - 1];
    if (a->in_ch == 0) a->in_ch = (int)f;
    if (a->in_ch != f)
        return ql_error(QL_ESHAPE, "node '%s': linear expects %d input features, got %lld from '%s'",
                        n->name, a->in_ch, (long long)f, x->name);
    if (a->out_ch < 1)
        return ql_error(QL_EINVAL, "node '%s': linear out_ch must be >= 1, got %d", n->name, a->out_ch);
    n->out_ndim = x->out_ndim;
    n->out_shape[0] = x->out_shape[0];
    n->out_shape[n->out_ndim - 1] = a->out_ch;
    return QL_OK;
}

static ql_status linear_params(ql_node *n) {
    int64_t ws[2] = {n->a.out_ch, n->a.in_ch}, bs[1] = {n->a.out_ch};
    QL_TRY(ql_node_add_param(n, "weight", 2, ws, 1));
    if (n->a.bias) QL_TRY(ql_node_add_param(n, "bias", 1, bs, 1));
    return QL_OK;
}

/* QAT: fq(weight) and its state, rebuilt every forward while a weight observer is attached. */
typedef struct { ql_wfq wfq; float *fq; } lin_priv;

static void lin_priv_free(void *pv) {
    lin_priv *p = pv;
    if (p) { ql_wfq_free(&p->wfq); ql_free(p->fq); }
    ql_free(p);
}

static const float *weight_for(ql_op_ctx *c) {
    ql_node *n = c->n;
    const ql_tensor *w = n->params[0].value;
    if (!n->wobs) return ql_f32(w);
    lin_priv *p = n->priv;
    if (!p && !(p = n->priv = ql_calloc(sizeof *p))) return NULL;
    if (!p->fq && !(p->fq = ql_malloc((size_t)w->numel * sizeof(float)))) return NULL;
    if (ql_qat_weight_forward(n, c->training, ql_f32(w), n->a.out_ch, n->a.in_ch, p->fq, &p->wfq) != QL_OK) return NULL;
    return p->fq;
}

static ql_status linear_forward(ql_op_ctx *c) {
    ql_node *n = c->n;
    const float *b = n->a.bias ? ql_f32(n->params[1].value) : NULL;
    const float *w = weight_for(c);
    if (!w) return QL_ENOMEM;
    ql_linear_forward(c->x[0]->numel / n->a.in_ch, n->a.in_ch, n->a.out_ch, ql_f32(c->x[0]),
                      w, b, ql_f32(c->y));
    ql_act_forward(n->a.act, c->y->numel, ql_f32(c->y));
    return QL_OK;
}

static ql_status linear_backward(ql_op_ctx *c) {
    ql_node *n = c->n;
    lin_priv *lp = n->wobs ? n->priv : NULL;
    ql_tensor *gw = n->params[0].grad, *gb = n->a.bias ? n->params[1].grad : NULL;
    const float *dy = c->dy;
    if (n->a.act) {   /* through the fused activation first */
        float *m = ql_graph_scratch(c->g, (size_t)c->y->numel);
        if (!m) return QL_ENOMEM;
        memcpy(m, c->dy, (size_t)c->y->numel * sizeof *m);
        ql_act_backward(n->a.act, c->y->numel, ql_f32(c->y), m);
        dy = m;
    }
    if (lp && lp->wfq.active && gw) {   /* QAT: straight-through the weight fake-quant */
        size_t nw = (size_t)gw->numel;
        float *d = ql_calloc(nw * sizeof(float));
        if (!d) return QL_ENOMEM;
        ql_linear_backward(c->x[0]->numel / n->a.in_ch, n->a.in_ch, n->a.out_ch, ql_f32(c->x[0]), lp->fq, dy,
                           c->dx[0], d, gb ? ql_f32(gb) : NULL);
        ql_qat_weight_backward(&lp->wfq, ql_f32(n->params[0].value), d);
        float *G = ql_f32(gw);
        for (size_t e = 0; e < nw; e++) G[e] += d[e];
        ql_free(d);
        return QL_OK;
    }
    ql_linear_backward(c->x[0]->numel / n->a.in_ch, n->a.in_ch, n->a.out_ch, ql_f32(c->x[0]),
                       lp ? lp->fq : ql_f32(n->params[0].value), dy, c->dx[0], gw ? ql_f32(gw) : NULL,
                       gb ? ql_f32(gb) : NULL);
    return QL_OK;
}

const ql_op_def ql_op_linear_def = {1, 1, linear_infer, linear_params, linear_forward, linear_backward, lin_priv_free};
