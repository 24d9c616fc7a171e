/* Quantized nodes in QDQ form, as ONNX Runtime fuses them into its INT8
 * kernels: DequantizeLinear -> float op -> QuantizeLinear around conv,
 * linear, add, global average pool and relu; weights s8 per output channel
 * (DequantizeLinear axis 0), bias s32 at scale x_scale * w_scale (axis 0);
 * a conv / linear with f32 output (f32_out) ends at its float op;
 * max pool and flatten run on the uint8 tensor itself. A u8 output whose
 * codes stay below 255 (7-bit activations) says so in its QuantizeLinear's
 * doc_string ("qlab codes 0..127", which qlab's importer reads back) and,
 * unless ql_onnx_export.keep_fusable, with a Clip to that range before it. */
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qops/qops_internal.h"
#include "io/onnx_export.h"

/* The scale / zero point initializers of u8 node j. */
static void qparams(onnx_ex *e, int j, const char **s, const char **z) {
    const ql_node *n = &e->g->nodes[j];
    if (!e->qscale[j]) {
        e->qscale[j] = ex_scalar_f32(e, ex_fmt(e, "%s.y_scale", n->name), n->out_scale);
        e->qzero[j] = ex_scalar_u8(e, ex_fmt(e, "%s.y_zero_point", n->name), (uint8_t)n->out_zero);
    }
    *s = e->qscale[j];
    *z = e->qzero[j];
}

/* DequantizeLinear of u8 node j for its consumer `user` (one per consumer, as ORT's node units want). */
static const char *dq(onnx_ex *e, int j, const char *user, int k) {
    const char *in[3] = {e->vname[j]}, *out = ex_fmt(e, "%s.dq%d", user, k);
    qparams(e, j, &in[1], &in[2]);
    ex_node(e, "DequantizeLinear", ex_fmt(e, "%s.dequantize%d", user, k), in, 3, &out, 1);
    return out;
}

/* QuantizeLinear of f32 value x into node i's u8 value; a narrowed code range
 * (7-bit activations) is a Clip to its real bounds first, so that ORT computes
 * the same codes (it then runs that node in float: ONNX has no narrower uint8). */
static void q(onnx_ex *e, int i, const char *x) {
    const ql_node *n = &e->g->nodes[i];
    const char *in[3] = {x}, *out = e->vname[i];
    if ((n->out_qmin != 0 || n->out_qmax != 255) && e->clip_narrow) {
        const char *cl[3] = {x, ex_scalar_f32(e, ex_fmt(e, "%s.code_min", n->name), (float)(n->out_qmin - n->out_zero) * n->out_scale),
                             ex_scalar_f32(e, ex_fmt(e, "%s.code_max", n->name), (float)(n->out_qmax - n->out_zero) * n->out_scale)};
        in[0] = ex_fmt(e, "%s.clipped", n->name);
        ex_node(e, "Clip", ex_fmt(e, "%s.code_range", n->name), cl, 3, &in[0], 1);
    }
    qparams(e, i, &in[1], &in[2]);
    const char *qn = n->op == QL_OP_QUANTIZE ? n->name : ex_fmt(e, "%s.quantize", n->name);
    Onnx__NodeProto *o = ex_node(e, "QuantizeLinear", qn, in, 3, &out, 1);
    if (o && (n->out_qmin != 0 || n->out_qmax != 255)) o->doc_string = ex_fmt(e, "qlab codes %d..%d", n->out_qmin, n->out_qmax);
}

/* DequantizeLinear of the s8 weight (OC, ...) per output channel, and of the s32 bias. */
static const char *dq_weight(onnx_ex *e, const ql_node *n) {
    const ql_tensor *w = n->params[0].value, *sc = n->params[1].value;
    int64_t oc = w->shape[0];
    int8_t *zp = ex_alloc(e, (size_t)oc);
    if (!zp) return NULL;
    const char *in[3] = {ex_init(e, n->params[0].name, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, w->ndim, w->shape, w->data, 1),
                         ex_init_f32(e, n->params[1].name, 1, &oc, ql_f32(sc)),
                         ex_init(e, n->params[2].name, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, 1, &oc, zp, 1)};
    const char *out = ex_fmt(e, "%s.weight_dq", n->name);
    Onnx__NodeProto *d = ex_node(e, "DequantizeLinear", ex_fmt(e, "%s.weight_dequantize", n->name), in, 3, &out, 1);
    ex_attr_int(e, d, "axis", 0);
    return out;
}

static const char *dq_bias(onnx_ex *e, const ql_node *n) {
    if (!n->a.bias) return NULL;
    if (n->a.f32_out) {   /* the f32 epilogue adds the float bias itself: keep it float, unrounded */
        int64_t oc = n->params[3].value->numel;
        return ex_init_f32(e, n->params[3].name, 1, &oc, ql_f32(n->params[3].value));
    }
    float xs = e->g->nodes[n->inputs[0]].out_scale, *sw = ql_f32(n->params[1].value), *b = ql_f32(n->params[3].value);
    int64_t oc = n->params[3].value->numel;
    int32_t *bq = ex_alloc(e, sizeof(int32_t) * (size_t)oc), *zp = ex_alloc(e, sizeof(int32_t) * (size_t)oc);
    float *bs = ex_alloc(e, sizeof(float) * (size_t)oc);
    if (!bq || !zp || !bs) return NULL;
    for (int64_t o = 0; o < oc; o++) { bq[o] = ql_quantize_bias(b[o], xs, sw[o]); bs[o] = xs * sw[o]; }
    const char *in[3] = {ex_init(e, ex_fmt(e, "%s.bias_quantized", n->name), ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 1, &oc, bq, 4),
                         ex_init_f32(e, ex_fmt(e, "%s.bias_scale", n->name), 1, &oc, bs),
                         ex_init(e, ex_fmt(e, "%s.bias_zero_point", n->name), ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 1, &oc, zp, 4)};
    const char *out = ex_fmt(e, "%s.bias_dq", n->name);
    Onnx__NodeProto *d = ex_node(e, "DequantizeLinear", ex_fmt(e, "%s.bias_dequantize", n->name), in, 3, &out, 1);
    ex_attr_int(e, d, "axis", 0);
    return out;
}

ql_status ex_quant_node(onnx_ex *e, int i) {
    const ql_node *n = &e->g->nodes[i];
    const char *x = e->vname[n->inputs[0]], *y = e->vname[i];
    /* f32_out (a conv / linear only FP32 nodes read): its float result is the value itself, no QuantizeLinear */
    const char *f = n->a.f32_out ? y : ex_fmt(e, "%s.f32", n->name), *pre = n->a.act ? ex_fmt(e, "%s.preact", n->name) : f;
    Onnx__NodeProto *o = NULL;
    switch (n->op) {
    case QL_OP_QUANTIZE: q(e, i, x); return e->oom ? QL_ENOMEM : QL_OK;
    case QL_OP_DEQUANTIZE: {
        const char *in[3] = {x};
        qparams(e, n->inputs[0], &in[1], &in[2]);
        ex_node(e, "DequantizeLinear", n->name, in, 3, &y, 1);
        return e->oom ? QL_ENOMEM : QL_OK;
    }
    case QL_OP_QMAXPOOL2D: case QL_OP_QFLATTEN: return ex_fp32_node(e, i);   /* on the codes: same qparams */
    case QL_OP_QCONV2D: {
        const char *in[3] = {dq(e, n->inputs[0], n->name, 0), dq_weight(e, n), dq_bias(e, n)};
        ex_conv_attrs(e, o = ex_node(e, "Conv", n->name, in, n->a.bias ? 3 : 2, &pre, 1), &n->a);
        break;
    }
    case QL_OP_QLINEAR: {
        if (e->g->nodes[n->inputs[0]].out_ndim != 1)
            return ql_error(QL_EUNSUPPORTED, "export: qlinear '%s' on a sequence has no QDQ form here", n->name);
        const char *in[3] = {dq(e, n->inputs[0], n->name, 0), dq_weight(e, n), dq_bias(e, n)};
        o = ex_node(e, "Gemm", n->name, in, n->a.bias ? 3 : 2, &pre, 1);
        ex_attr_int(e, o, "transB", 1);
        break;
    }
    case QL_OP_QADD: {
        const char *in[2] = {dq(e, n->inputs[0], n->name, 0), dq(e, n->inputs[1], n->name, 1)};
        o = ex_node(e, "Add", n->name, in, 2, &pre, 1);
        break;
    }
    case QL_OP_QGLOBAL_AVGPOOL: {   /* (N,C,1,1) u8, then flattened on the codes */
        const char *in = dq(e, n->inputs[0], n->name, 0), *p4 = ex_fmt(e, "%s.4d", n->name);
        ex_node(e, "GlobalAveragePool", n->name, &in, 1, &f, 1);
        char *keep = e->vname[i];
        e->vname[i] = (char *)p4;
        q(e, i, f);
        e->vname[i] = keep;
        o = ex_node(e, "Flatten", ex_fmt(e, "%s.flatten", n->name), &p4, 1, &y, 1);
        return e->oom || !o ? QL_ENOMEM : QL_OK;
    }
    case QL_OP_QRELU: {
        const char *in = dq(e, n->inputs[0], n->name, 0);
        int act = n->a.act ? n->a.act : QL_ACT_RELU;
        ex_act(e, act, n->name, in, f);
        q(e, i, f);
        return e->oom ? QL_ENOMEM : QL_OK;
    }
    default:
        return ql_error(QL_EUNSUPPORTED, "export: node '%s' (%s) has no ONNX form", n->name, ql_op_name(n->op));
    }
    if (n->a.act) ex_act(e, n->a.act, ex_fmt(e, "%s.act", n->name), pre, f);
    if (!n->a.f32_out) q(e, i, f);
    return e->oom || !o ? QL_ENOMEM : QL_OK;
}
