/* qconv2d and qlinear nodes: s8 weights (PyTorch layout, per-channel scales),
 * f32 bias, u8 activations in; u8 out, or f32 (attr f32_out: the accumulator
 * scaled by sx*sw[n] plus the float bias, where only FP32 nodes consume it). The kernels' packed form (ql_qconv /
 * ql_qlinear) is built on first use from the parameters and the input's
 * qparams, and rebuilt when g->version moves. */
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/qops.h"
#include "graph/op.h"

typedef struct {
    uint64_t version;
    ql_qconv *conv;
    ql_qlinear *lin;
    ql_conv2d_shape s;    /* the (possibly pruned) geometry the conv was packed for, n = 1 */
} qpriv;

static void qpriv_free(void *p) {
    qpriv *q = p;
    if (!q) return;
    ql_qconv_free(q->conv);
    ql_qlinear_free(q->lin);
    ql_free(q);
}

static ql_status qconv_infer(ql_node *n, const ql_node *const *in) {
    QL_TRY(ql_op_conv2d_def.infer(n, in));
    n->out_dtype = n->a.f32_out ? QL_DTYPE_F32 : QL_DTYPE_U8;
    return QL_OK;
}

/* weight (OC,IC/g,KH,KW) s8, weight_scale (OC), weight_zero_point (OC) s32, bias (OC) f32 */
static ql_status qconv_params(ql_node *n) {
    const ql_attrs *a = &n->a;
    int64_t ws[4] = {a->out_ch, a->in_ch / a->groups, a->kernel[0], a->kernel[1]}, cs[1] = {a->out_ch};
    QL_TRY(ql_node_add_param_dtype(n, "weight", QL_DTYPE_S8, 4, ws, 0));
    QL_TRY(ql_node_add_param_dtype(n, "weight_scale", QL_DTYPE_F32, 1, cs, 0));
    QL_TRY(ql_node_add_param_dtype(n, "weight_zero_point", QL_DTYPE_S32, 1, cs, 0));
    if (a->bias) QL_TRY(ql_node_add_param_dtype(n, "bias", QL_DTYPE_F32, 1, cs, 0));
    return QL_OK;
}

static ql_status qconv_pack(ql_op_ctx *c, qpriv **out) {
    ql_node *n = c->n;
    qpriv *q = n->priv;
    if (q && q->version == c->g->version && q->conv) { *out = q; return QL_OK; }
    QL_TRY(ql_check_symmetric_weight(n, 0));
    if (!q) {
        if (!(q = ql_calloc(sizeof *q))) return QL_ENOMEM;
        n->priv = q;
    }
    ql_qconv_free(q->conv);
    q->conv = NULL;
    const ql_attrs *a = &n->a;
    const ql_tensor *x = c->x[0];
    ql_conv2d_shape s;
    QL_TRY(ql_conv_shape_of(a, x, 1, &s));
    int kh0 = 0, kw0 = 0, ic = s.c / s.groups;
    ql_conv2d_shape t = s;
    ql_conv_prune_taps(&s, &kh0, &kw0, &t);   /* inference only: drop taps that read only padding */
    int8_t *w = ql_malloc((size_t)s.oc * t.kh * t.kw * ic);
    if (!w) return QL_ENOMEM;
    ql_conv_weight_live_ohwi(n->params[0].value->data, 1, &s, kh0, kw0, t.kh, t.kw, w);
    ql_qconv_params p = {.w = w, .w_scale = ql_f32(n->params[1].value),
                         .bias = a->bias ? ql_f32(n->params[3].value) : NULL,
                         .x_scale = x->scale, .x_zero = x->zero_point, .y_scale = n->out_scale,
                         .y_zero = n->out_zero, .relu = a->act, .f32_out = a->f32_out,
                         .y_qmin = n->out_qmin, .y_qmax = n->out_qmax,
                         .x_qmax = c->g->nodes[n->inputs[0]].out_qmax};
    q->conv = ql_qconv_new(&t, &p, ql_isa_active());
    ql_free(w);
    if (!q->conv) return QL_ENOMEM;
    q->s = t;
    q->version = c->g->version;
    *out = q;
    return QL_OK;
}

static ql_status qconv_forward(ql_op_ctx *c) {
    if (c->x[0]->dtype != QL_DTYPE_U8) return ql_error(QL_ESTATE, "node '%s': qconv2d needs a u8 input", c->n->name);
    qpriv *q;
    QL_TRY(qconv_pack(c, &q));
    size_t nws = ql_qconv_workspace(q->conv, (int)c->batch);
    void *ws = nws ? ql_graph_scratch(c->g, (nws + 3) / 4) : NULL;
    if (nws && !ws) return QL_ENOMEM;
    return ql_qconv_forward(q->conv, (int)c->batch, c->x[0]->data, c->y->data, ws,
                            nws ? ql_graph_scratch_size(c->g) * sizeof(float) : 0);
}

/* ---- qlinear ---------------------------------------------------------------- */
static ql_status qlinear_infer(ql_node *n, const ql_node *const *in) {
    QL_TRY(ql_op_linear_def.infer(n, in));
    n->out_dtype = n->a.f32_out ? QL_DTYPE_F32 : QL_DTYPE_U8;
    return QL_OK;
}

static ql_status qlinear_forward(ql_op_ctx *c) {
    ql_node *n = c->n;
    const ql_tensor *x = c->x[0];
    if (x->dtype != QL_DTYPE_U8) return ql_error(QL_ESTATE, "node '%s': qlinear needs a u8 input", n->name);
    qpriv *q = n->priv;
    if (!q || q->version != c->g->version || !q->lin) {
        QL_TRY(ql_check_symmetric_weight(n, 0));
        if (!q) {
            if (!(q = ql_calloc(sizeof *q))) return QL_ENOMEM;
            n->priv = q;
        }
        ql_qlinear_free(q->lin);
        ql_qlinear_params p = {.w = n->params[0].value->data, .w_scale = ql_f32(n->params[1].value),
                               .bias = n->a.bias ? ql_f32(n->params[3].value) : NULL, .x_scale = x->scale,
                               .x_zero = x->zero_point, .y_scale = n->out_scale, .y_zero = n->out_zero,
                               .relu = n->a.act, .f32_out = n->a.f32_out, .y_qmin = n->out_qmin, .y_qmax = n->out_qmax,
                               .x_qmax = c->g->nodes[n->inputs[0]].out_qmax};
        if (!(q->lin = ql_qlinear_new(n->a.in_ch, n->a.out_ch, &p, ql_isa_active()))) return QL_ENOMEM;
        q->version = c->g->version;
    }
    ql_qlinear_forward(q->lin, x->numel / n->a.in_ch, x->data, c->y->data);
    return QL_OK;
}

static ql_status no_backward(ql_op_ctx *c) {
    return ql_error(QL_EUNSUPPORTED, "node '%s': quantized ops have no backward; train the FP32 model "
                    "(or use QAT) before convert", c->n->name);
}

const ql_op_def ql_op_qconv2d_def = {1, 1, qconv_infer, qconv_params, qconv_forward, no_backward, qpriv_free};
const ql_op_def ql_op_qlinear_def = {1, 1, qlinear_infer, ql_s8_linear_params, qlinear_forward, no_backward, qpriv_free};
