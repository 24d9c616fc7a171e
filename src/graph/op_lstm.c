/* lstm node {T,F} -> {T,H}: PyTorch's names (weight_ih_l0 ...) and gate order;
 * training forwards keep the kernel's cache for backward. */
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/ops.h"
#include "graph/op.h"

#define MAX_LAYERS 16

typedef struct {
    float *cache;        /* ql_lstm_cache_floats of the last training forward */
    size_t cache_cap;
} lstm_priv;

static void lstm_priv_free(void *priv) {
    lstm_priv *p = priv;
    ql_free(p->cache);
    ql_free(p);
}

static ql_status lstm_infer(ql_node *n, const ql_node *const *in) {
    ql_attrs *a = &n->a;
    const ql_node *x = in[0];
    if (x->out_ndim != 2) {
        char b[128];
        return ql_error(QL_ESHAPE, "node '%s': lstm expects a {T,F} input, got %s from '%s'", n->name,
                        ql_shape_str(x->out_ndim, x->out_shape, b, sizeof b), x->name);
    }
    if (a->in_ch == 0) a->in_ch = (int)x->out_shape[1];
    if (a->in_ch != x->out_shape[1])
        return ql_error(QL_ESHAPE, "node '%s': lstm expects %d input features, got %lld from '%s'",
                        n->name, a->in_ch, (long long)x->out_shape[1], x->name);
    if (a->out_ch < 1)
        return ql_error(QL_EINVAL, "node '%s': lstm hidden size (out_ch) must be >= 1, got %d", n->name, a->out_ch);
    if (a->layers < 1 || a->layers > MAX_LAYERS)
        return ql_error(QL_EINVAL, "node '%s': lstm layers must be in 1..%d, got %d", n->name, MAX_LAYERS, a->layers);
    n->out_ndim = 2;
    n->out_shape[0] = x->out_shape[0];
    n->out_shape[1] = a->out_ch;
    return QL_OK;
}

/* Per layer, in state_dict order: weight_ih, weight_hh, bias_ih, bias_hh. */
static ql_status lstm_params(ql_node *n) {
    const ql_attrs *a = &n->a;
    int64_t h4 = 4 * (int64_t)a->out_ch;
    char s[32];
    for (int l = 0; l < a->layers; l++) {
        int64_t wi[2] = {h4, l ? a->out_ch : a->in_ch}, wh[2] = {h4, a->out_ch}, b[1] = {h4};
        snprintf(s, sizeof s, "weight_ih_l%d", l); QL_TRY(ql_node_add_param(n, s, 2, wi, 1));
        snprintf(s, sizeof s, "weight_hh_l%d", l); QL_TRY(ql_node_add_param(n, s, 2, wh, 1));
        if (!a->bias) continue;
        snprintf(s, sizeof s, "bias_ih_l%d", l); QL_TRY(ql_node_add_param(n, s, 1, b, 1));
        snprintf(s, sizeof s, "bias_hh_l%d", l); QL_TRY(ql_node_add_param(n, s, 1, b, 1));
    }
    return QL_OK;
}

static int per_layer(const ql_node *n) { return n->a.bias ? 4 : 2; }

static ql_lstm_shape lstm_shape(const ql_op_ctx *c) {
    const ql_attrs *a = &c->n->a;
    return (ql_lstm_shape){.n = (int)c->batch, .t = (int)c->x[0]->shape[1], .input = a->in_ch,
                           .hidden = a->out_ch, .layers = a->layers};
}

/* Pointers into the parameters (what = 0 values, 1 grads); NULL for missing biases. */
static void gather(const ql_node *n, int what, float **wi, float **wh, float **bi, float **bh) {
    for (int l = 0; l < n->a.layers; l++) {
        const ql_param *p = &n->params[l * per_layer(n)];
        float *v[4] = {NULL, NULL, NULL, NULL};
        for (int k = 0; k < per_layer(n); k++) {
            const ql_tensor *t = what ? p[k].grad : p[k].value;
            v[k] = t ? ql_f32(t) : NULL;
        }
        wi[l] = v[0]; wh[l] = v[1]; bi[l] = v[2]; bh[l] = v[3];
    }
}

static ql_status lstm_forward(ql_op_ctx *c) {
    ql_node *n = c->n;
    ql_lstm_shape s = lstm_shape(c);
    float *wi[MAX_LAYERS], *wh[MAX_LAYERS], *bi[MAX_LAYERS], *bh[MAX_LAYERS];
    gather(n, 0, wi, wh, bi, bh);
    ql_lstm_weights wt = {(const float *const *)wi, (const float *const *)wh,
                          (const float *const *)bi, (const float *const *)bh};
    float *cache = NULL;
    if (c->training) {
        size_t need = ql_lstm_cache_floats(&s);
        lstm_priv *p = n->priv;
        if (!p) {
            if (!(p = ql_calloc(sizeof *p))) return QL_ENOMEM;
            n->priv = p;
        }
        if (p->cache_cap < need) {
            ql_free(p->cache);
            p->cache_cap = 0;
            if (!(p->cache = ql_malloc(need * sizeof(float)))) return QL_ENOMEM;
            p->cache_cap = need;
        }
        cache = p->cache;
    }
    size_t nws = ql_lstm_workspace_floats(&s);
    float *ws = ql_graph_scratch(c->g, nws);
    if (nws && !ws) return QL_ENOMEM;
    ql_lstm_forward(&s, ql_f32(c->x[0]), &wt, ql_f32(c->y), cache, ws);
    return QL_OK;
}

static ql_status lstm_backward(ql_op_ctx *c) {
    ql_node *n = c->n;
    ql_lstm_shape s = lstm_shape(c);
    lstm_priv *p = n->priv;
    if (!p || p->cache_cap < ql_lstm_cache_floats(&s))
        return ql_error(QL_ESTATE, "no cache saved (forward with training=1 first)");
    float *wi[MAX_LAYERS], *wh[MAX_LAYERS], *bi[MAX_LAYERS], *bh[MAX_LAYERS];
    float *gwi[MAX_LAYERS], *gwh[MAX_LAYERS], *gbi[MAX_LAYERS], *gbh[MAX_LAYERS];
    gather(n, 0, wi, wh, bi, bh);
    gather(n, 1, gwi, gwh, gbi, gbh);
    /* Weights without an allocated grad get a throw-away buffer: the kernel
     * always accumulates weight gradients. */
    size_t nws = ql_lstm_workspace_floats(&s), dummy = 0;
    for (int k = 0; k < n->nparams; k++)
        if (!n->params[k].grad && (size_t)n->params[k].value->numel > dummy) dummy = n->params[k].value->numel;
    float *ws = ql_graph_scratch(c->g, nws + dummy);
    if (nws + dummy && !ws) return QL_ENOMEM;
    if (dummy) {
        float *d = ws + nws;
        memset(d, 0, dummy * sizeof *d);
        for (int l = 0; l < n->a.layers; l++) {
            if (!gwi[l]) gwi[l] = d;
            if (!gwh[l]) gwh[l] = d;
            if (bi[l] && !gbi[l]) gbi[l] = d;
            if (bh[l] && !gbh[l]) gbh[l] = d;
        }
    }
    ql_lstm_weights wt = {(const float *const *)wi, (const float *const *)wh,
                          (const float *const *)bi, (const float *const *)bh};
    ql_lstm_backward(&s, ql_f32(c->x[0]), &wt, p->cache, c->dy, c->dx[0], gwi, gwh, gbi, gbh, ws);
    return QL_OK;
}

const ql_op_def ql_op_lstm_def = {1, 1, lstm_infer, lstm_params, lstm_forward, lstm_backward, lstm_priv_free};
