/* Dynamic quantization and half-precision weights: a new graph in which the
 * chosen linear / lstm (and, for f16 / bf16, conv2d) nodes hold s8, f16 or
 * bf16 weights and take f32 activations, so no quantize / dequantize is
 * needed around them. The same per-node conversion serves convert() for the
 * f16 / bf16 entries of a static prepare map. */
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/half.h"
#include "qlab/qops.h"
#include "qlab/quant.h"
#include "graph/op.h"

ql_op_type ql_dynamic_op(ql_op_type op, ql_dtype dtype) {
    if (dtype == QL_DTYPE_S8) return op == QL_OP_LINEAR ? QL_OP_DLINEAR : op == QL_OP_LSTM ? QL_OP_DLSTM : QL_OP_COUNT;
    if (dtype != QL_DTYPE_F16 && dtype != QL_DTYPE_BF16) return QL_OP_COUNT;
    int b = dtype == QL_DTYPE_BF16;
    switch (op) {
    case QL_OP_LINEAR: return b ? QL_OP_BF16LINEAR : QL_OP_F16LINEAR;
    case QL_OP_CONV2D: return b ? QL_OP_BF16CONV2D : QL_OP_F16CONV2D;
    case QL_OP_LSTM: return b ? QL_OP_BF16LSTM : QL_OP_F16LSTM;
    default: return QL_OP_COUNT;
    }
}

ql_dtype ql_plan_half_dtype(const ql_node *n) {
    ql_dtype d = n->plan.mode == QL_QMODE_F16 ? QL_DTYPE_F16 : n->plan.mode == QL_QMODE_BF16 ? QL_DTYPE_BF16 : QL_DTYPE_F32;
    return d != QL_DTYPE_F32 && ql_dynamic_op(n->op, d) != QL_OP_COUNT ? d : QL_DTYPE_F32;
}

/* w (R,C) f32 -> q s8 with per-row symmetric scales (zero points 0): the
 * minmax observer's qparams, as static convert quantizes weights. */
static ql_status quantize_rows(const char *node, const ql_tensor *w, ql_tensor *q, ql_tensor *scale, ql_tensor *zp) {
    ql_observer_opts o;
    ql_observer_opts_default(&o, QL_OBS_MINMAX);
    o.dtype = QL_DTYPE_S8;
    o.symmetric = 1;
    o.per_channel = 1;
    o.ch_axis = 0;
    ql_observer *ob = ql_observer_new(&o);
    if (!ob) return ql_error_prefix(QL_EINVAL, "node '%s' weight observer", node);
    ql_status st = ql_observer_observe(ob, w);
    if (st == QL_OK && ql_observer_channels(ob) != w->shape[0])
        st = ql_error(QL_ESHAPE, "node '%s': weight observer has %d channels for %lld rows", node,
                      ql_observer_channels(ob), (long long)w->shape[0]);
    if (st == QL_OK) st = ql_observer_qparams(ob, ql_f32(scale), zp->data);
    ql_observer_free(ob);
    QL_TRY(st);
    int32_t qmin, qmax;
    ql_observer_qrange(&o, &qmin, &qmax);
    int64_t rows = w->shape[0], per = w->numel / rows;
    for (int64_t r = 0; r < rows; r++)
        ql_quantize_s8(per, ql_f32(w) + r * per, ql_f32(scale)[r], 0, qmin, qmax, (int8_t *)q->data + r * per);
    return QL_OK;
}

/* w f32 -> half; f16 saturates at +-65504 (finite weights stay finite). */
static void to_half(ql_dtype d, const ql_tensor *w, ql_tensor *h) {
    uint16_t *y = h->data;
    ql_f32_to_half(d, w->numel, ql_f32(w), y);
    if (d != QL_DTYPE_F16) return;
    const float *x = ql_f32(w);
    for (int64_t i = 0; i < w->numel; i++)
        if ((y[i] & 0x7fffu) == 0x7c00u && x[i] - x[i] == 0.0f) y[i] = (uint16_t)((y[i] & 0x8000u) | 0x7bffu);
}

static ql_status copy_param(const ql_node *n, const ql_param *src, ql_param *dst) {
    if (src->value->dtype != dst->value->dtype || src->value->numel != dst->value->numel)
        return ql_error(QL_ESTATE, "node '%s': parameter '%s' does not match its converted form", n->name, src->name);
    return ql_tensor_copy(dst->value, src->value);
}

/* Weights of src node n (f32) into the converted node d. */
static ql_status fill_params(const ql_node *n, ql_node *d, ql_dtype dtype) {
    for (int k = 0; k < n->nparams; k++)
        if (n->params[k].value->dtype != QL_DTYPE_F32)
            return ql_error(QL_EINVAL, "node '%s': parameter '%s' is %s, conversion needs f32 weights", n->name,
                            n->params[k].name, ql_dtype_name(n->params[k].value->dtype));
    if (dtype != QL_DTYPE_S8) {   /* same parameters: weights to half, biases copied */
        for (int k = 0; k < n->nparams; k++) {
            if (d->params[k].value->dtype == dtype) to_half(dtype, n->params[k].value, d->params[k].value);
            else QL_TRY(copy_param(n, &n->params[k], &d->params[k]));
        }
        return QL_OK;
    }
    if (n->op == QL_OP_LINEAR) {   /* weight -> weight, weight_scale, weight_zero_point; bias */
        QL_TRY(quantize_rows(n->name, n->params[0].value, d->params[0].value, d->params[1].value, d->params[2].value));
        if (n->a.bias) QL_TRY(copy_param(n, &n->params[1], &d->params[3]));
        return QL_OK;
    }
    /* lstm, per layer: weight_ih, weight_hh (+ bias_ih, bias_hh) -> each weight with _scale, _zero_point */
    int ps = n->a.bias ? 4 : 2, pd = n->a.bias ? 8 : 6;
    for (int l = 0; l < n->a.layers; l++) {
        const ql_param *s = &n->params[l * ps];
        ql_param *t = &d->params[l * pd];
        for (int k = 0; k < 2; k++)
            QL_TRY(quantize_rows(n->name, s[k].value, t[3 * k].value, t[3 * k + 1].value, t[3 * k + 2].value));
        for (int k = 2; k < ps; k++) QL_TRY(copy_param(n, &s[k], &t[k + 4]));
    }
    return QL_OK;
}

int ql_dynamic_add_node(ql_graph *dst, const ql_node *n, const int *in, ql_dtype dtype) {
    ql_op_type op = ql_dynamic_op(n->op, dtype);
    if (op == QL_OP_COUNT) {
        ql_error(QL_EINVAL, "node '%s' is %s, which has no %s version (s8: linear, lstm; f16 and bf16: linear, "
                 "conv2d, lstm)", n->name, ql_op_name(n->op), ql_dtype_name(dtype));
        return -1;
    }
    int idx = ql_graph_add(dst, n->name, op, in, n->ninputs, &n->a);
    if (idx < 0) return -1;
    if (fill_params(n, &dst->nodes[idx], dtype) != QL_OK) {
        ql_error_prefix(QL_EINVAL, "converting node '%s'", n->name);
        return -1;
    }
    return idx;
}

/* Node n copied as it is (parameters, precision, quantization state). */
static ql_status copy_node(ql_graph *dst, const ql_node *n) {
    int idx = ql_graph_add(dst, n->name, n->op, n->inputs, n->ninputs, &n->a);
    if (idx < 0) return QL_EINVAL;
    ql_node *d = &dst->nodes[idx];
    for (int k = 0; k < n->nparams; k++) QL_TRY(copy_param(n, &n->params[k], &d->params[k]));
    strcpy(d->precision, n->precision);
    d->out_scale = n->out_scale;
    d->out_zero = n->out_zero;
    d->out_qmin = n->out_qmin;
    d->out_qmax = n->out_qmax;
    d->plan = n->plan;
    if (n->obs && !(d->obs = ql_observer_clone(n->obs))) return QL_ENOMEM;
    return QL_OK;
}

ql_status ql_quantize_dynamic(const ql_graph *g, const int *node_mask, ql_dtype dtype, ql_graph **out) {
    *out = NULL;
    if (dtype != QL_DTYPE_S8 && dtype != QL_DTYPE_F16 && dtype != QL_DTYPE_BF16)
        return ql_error(QL_EINVAL, "quantize_dynamic: dtype must be s8, f16 or bf16, not %s", ql_dtype_name(dtype));
    for (int i = 1; node_mask && i < g->nnodes; i++)
        if (node_mask[i] && ql_dynamic_op(g->nodes[i].op, dtype) == QL_OP_COUNT)
            return ql_error(QL_EINVAL, "quantize_dynamic: node '%s' is %s, which has no %s version (s8: linear, "
                            "lstm; f16 and bf16: linear, conv2d, lstm)", g->nodes[i].name,
                            ql_op_name(g->nodes[i].op), ql_dtype_name(dtype));
    ql_graph *d = ql_graph_new(g->nodes[0].out_ndim, g->nodes[0].out_shape);
    if (!d) return QL_ENOMEM;
    ql_status st = QL_OK;
    if (g->nodes[0].obs && !(d->nodes[0].obs = ql_observer_clone(g->nodes[0].obs))) st = QL_ENOMEM;
    for (int i = 1; st == QL_OK && i < g->nnodes; i++) {
        const ql_node *n = &g->nodes[i];
        int convert = node_mask ? node_mask[i] : ql_dynamic_op(n->op, dtype) != QL_OP_COUNT;
        if (!convert) { st = copy_node(d, n); continue; }
        int idx = ql_dynamic_add_node(d, n, n->inputs, dtype);   /* node i lands at index i */
        if (idx < 0) { st = QL_EINVAL; break; }
        if (n->obs && !(d->nodes[idx].obs = ql_observer_clone(n->obs))) st = QL_ENOMEM;
    }
    if (st == QL_OK) st = ql_graph_set_output(d, g->output);
    if (st != QL_OK) {
        ql_graph_free(d);
        return st;
    }
    d->profile = g->profile;
    *out = d;
    return QL_OK;
}
