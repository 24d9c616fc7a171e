/* f16lstm / bf16lstm nodes {T,F} -> {T,H}: the FP32 LSTM's parameters under
 * the same names, weights stored f16 or bf16 (biases f32). Each call widens
 * the weights into the scratch and runs the FP32 kernel (ql_lstm_forward). */
#include <stdio.h>
#include <string.h>
#include "qlab/half.h"
#include "graph/op.h"

#define MAX_LAYERS 16

static ql_dtype wdtype(const ql_node *n) { return n->op == QL_OP_BF16LSTM ? QL_DTYPE_BF16 : QL_DTYPE_F16; }

static ql_status hlstm_infer(ql_node *n, const ql_node *const *in) {
    QL_TRY(ql_op_lstm_def.infer(n, in));
    strcpy(n->precision, ql_dtype_name(wdtype(n)));
    return QL_OK;
}

/* Per layer, in state_dict order: weight_ih, weight_hh (half), bias_ih, bias_hh (f32). */
static ql_status hlstm_params(ql_node *n) {
    const ql_attrs *a = &n->a;
    int64_t h4 = 4 * (int64_t)a->out_ch;
    char s[32];
    for (int l = 0; l < a->layers; l++) {
        int64_t wi[2] = {h4, l ? a->out_ch : a->in_ch}, wh[2] = {h4, a->out_ch}, b[1] = {h4};
        snprintf(s, sizeof s, "weight_ih_l%d", l); QL_TRY(ql_node_add_param_dtype(n, s, wdtype(n), 2, wi, 0));
        snprintf(s, sizeof s, "weight_hh_l%d", l); QL_TRY(ql_node_add_param_dtype(n, s, wdtype(n), 2, wh, 0));
        if (!a->bias) continue;
        snprintf(s, sizeof s, "bias_ih_l%d", l); QL_TRY(ql_node_add_param_dtype(n, s, QL_DTYPE_F32, 1, b, 0));
        snprintf(s, sizeof s, "bias_hh_l%d", l); QL_TRY(ql_node_add_param_dtype(n, s, QL_DTYPE_F32, 1, b, 0));
    }
    return QL_OK;
}

static ql_status hlstm_forward(ql_op_ctx *c) {
    ql_node *n = c->n;
    if (c->x[0]->dtype != QL_DTYPE_F32)
        return ql_error(QL_ESTATE, "node '%s': %s needs an f32 input", n->name, ql_op_name(n->op));
    const ql_attrs *a = &n->a;
    const int L = a->layers, P = a->bias ? 4 : 2;
    ql_lstm_shape s = {.n = (int)c->batch, .t = (int)c->x[0]->shape[1], .input = a->in_ch, .hidden = a->out_ch,
                       .layers = L};
    size_t nw = 0;
    for (int l = 0; l < L; l++) nw += (size_t)n->params[l * P].value->numel + (size_t)n->params[l * P + 1].value->numel;
    size_t nws = ql_lstm_workspace_floats(&s);
    float *ws = ql_graph_scratch(c->g, nw + nws);
    if (!ws) return QL_ENOMEM;
    const float *wi[MAX_LAYERS], *wh[MAX_LAYERS], *bi[MAX_LAYERS], *bh[MAX_LAYERS];
    float *f = ws + nws;
    for (int l = 0; l < L; l++) {
        const ql_param *p = &n->params[l * P];
        for (int k = 0; k < 2; k++) {
            ql_half_to_f32(wdtype(n), p[k].value->numel, p[k].value->data, f);
            if (k) wh[l] = f; else wi[l] = f;
            f += p[k].value->numel;
        }
        bi[l] = a->bias ? ql_f32(p[2].value) : NULL;
        bh[l] = a->bias ? ql_f32(p[3].value) : NULL;
    }
    ql_lstm_weights wt = {wi, wh, a->bias ? bi : NULL, a->bias ? bh : NULL};
    ql_lstm_forward(&s, ql_f32(c->x[0]), &wt, ql_f32(c->y), NULL, ws);
    return QL_OK;
}

static ql_status no_backward(ql_op_ctx *c) {
    return ql_error(QL_EUNSUPPORTED, "node '%s': %s has no backward; train the FP32 model before converting",
                    c->n->name, ql_op_name(c->n->op));
}

const ql_op_def ql_op_f16lstm_def = {1, 1, hlstm_infer, hlstm_params, hlstm_forward, no_backward, NULL};
const ql_op_def ql_op_bf16lstm_def = {1, 1, hlstm_infer, hlstm_params, hlstm_forward, no_backward, NULL};
