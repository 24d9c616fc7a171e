/* Quantized ONNX onto qlab's INT8 nodes.
 * QDQ: QuantizeLinear / DequantizeLinear become quantize / dequantize nodes;
 * a float op whose inputs are dequantized uint8 tensors (and s8 weights,
 * zero points 0) and whose output is quantized again - Conv, Gemm, MatMul
 * (+ bias Add), Add, GlobalAveragePool, Relu / Clip, MaxPool, Flatten, with
 * a Relu / Clip(0,6) before the QuantizeLinear fused - becomes qconv2d,
 * qlinear, qadd, qglobal_avgpool, qrelu, qmaxpool2d, qflatten. Anything else
 * runs in FP32 between dequantize and quantize nodes, which is also what
 * ql_onnx_import.simulate asks for everywhere (a fake-quant simulation).
 * QOperator models: onnx_import_qop.c. */
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "io/onnx_import.h"

/* ---- qparams ---------------------------------------------------------------------- */

/* Per-tensor activation qparams from inputs ks / kz of node n (zero point absent = 0, uint8). */
ql_status imp_act_qparams(onnx_imp *c, int ks, int kz, float *s, int32_t *z) {
    const ql_tensor *ts = imp_const(c, ks), *tz = imp_has_in(c, kz) ? imp_const(c, kz) : NULL;
    if (!ts || ts->numel != 1 || ts->dtype != QL_DTYPE_F32 || !(ql_f32(ts)[0] > 0))
        return imp_unsupported(c, "activation scales must be positive float scalar constants");
    if (imp_has_in(c, kz) && (!tz || tz->numel != 1)) return imp_unsupported(c, "activation zero points must be scalar constants");
    if (tz && tz->dtype != QL_DTYPE_U8)
        return imp_unsupported(c, "int8 activations (qlab's INT8 kernels take uint8 activations, zero point type uint8)");
    *s = ql_f32(ts)[0];
    *z = tz ? (int32_t)onnx_tensor_get(tz, 0) : 0;
    return QL_OK;
}

/* "qlab codes 0..127" in a QuantizeLinear's doc_string: the narrowed code range qlab exported. */
static void code_range(const Onnx__NodeProto *q, int32_t *lo, int32_t *hi) {
    int a, b;
    *lo = 0;
    *hi = 255;
    if (q->doc_string && sscanf(q->doc_string, "qlab codes %d..%d", &a, &b) == 2 && a >= 0 && a < b && b <= 255) {
        *lo = a;
        *hi = b;
    }
}

void imp_set_out(ql_node *n, float s, int32_t z, int32_t lo, int32_t hi) {
    n->out_scale = s;
    n->out_zero = z;
    n->out_qmin = lo;
    n->out_qmax = hi;
}

/* A u8 value read through DequantizeLinear (or directly): its node, -1 otherwise. */
int imp_u8_node(onnx_imp *c, const onnx_val *v, int direct_ok) {
    if (!v || v->node < 0 || c->g->nodes[v->node].out_dtype != QL_DTYPE_U8) return -1;
    return v->dq || direct_ok ? v->node : -1;
}

/* ---- QuantizeLinear / DequantizeLinear ---------------------------------------------------- */

/* A constant quantized per axis: float weights with Q -> DQ in the file. */
static ql_status quantize_const(onnx_imp *c, const ql_tensor *x) {
    const ql_tensor *ts = imp_const(c, 1), *tz = imp_has_in(c, 2) ? imp_const(c, 2) : NULL;
    if (!ts || x->dtype != QL_DTYPE_F32) return imp_unsupported(c, "QuantizeLinear of a constant needs constant qparams");
    int64_t axis = onnx_attr_int(c->cur, "axis", 1);
    if (axis < 0) axis += x->ndim;
    int64_t ch = ts->numel, inner = 1;
    if (ch > 1 && (axis < 0 || axis >= x->ndim || x->shape[axis] != ch)) return imp_unsupported(c, "per-axis scales that do not match the axis");
    for (int i = (int)axis + 1; ch > 1 && i < x->ndim; i++) inner *= x->shape[i];
    ql_dtype d = tz ? tz->dtype : QL_DTYPE_U8;
    ql_tensor *q = ql_tensor_new(d, x->ndim, x->shape);
    if (!q) return QL_ENOMEM;
    for (int64_t k = 0; k < x->numel; k++) {
        int64_t j = ch > 1 ? (k / inner) % ch : 0;
        double s = onnx_tensor_get(ts, j), z = tz ? onnx_tensor_get(tz, tz->numel > 1 ? j : 0) : 0;
        double v = __builtin_nearbyint(ql_f32(x)[k] / s) + z, lo = d == QL_DTYPE_S8 ? -128 : 0, hi = d == QL_DTYPE_S8 ? 127 : 255;
        v = v < lo ? lo : v > hi ? hi : v;
        if (d == QL_DTYPE_S8) ((int8_t *)q->data)[k] = (int8_t)v; else ((uint8_t *)q->data)[k] = (uint8_t)v;
    }
    return imp_out_const(c, 0, q) ? QL_OK : QL_EFORMAT;
}

static ql_status op_quantize(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    if (x->node < 0) return quantize_const(c, x->cst);
    float s;
    int32_t z, lo, hi;
    QL_TRY(imp_act_qparams(c, 1, 2, &s, &z));
    code_range(c->cur, &lo, &hi);
    onnx_vkind k = x->kind;
    int u = imp_u8_node(c, x, 0);
    if (u >= 0 && c->g->nodes[u].out_scale == s && c->g->nodes[u].out_zero == z)   /* DQ -> Q: the same codes */
        return imp_out(c, 0, u, k) ? QL_OK : QL_EFORMAT;
    int fx = imp_f32(c, x);
    char base[300];
    int idx = fx < 0 ? -1 : imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_QUANTIZE, &fx, 1, NULL);
    if (idx < 0) return QL_EINVAL;
    imp_set_out(&c->g->nodes[idx], s, z, lo, hi);
    strcpy(c->g->nodes[idx].precision, "u8");
    return imp_out(c, 0, idx, k) ? QL_OK : QL_EFORMAT;
}

/* DequantizeLinear of a constant: the float values, and the integers with their qparams. */
static ql_status dequantize_const(onnx_imp *c, const ql_tensor *x) {
    const ql_tensor *ts = imp_const(c, 1), *tz = imp_has_in(c, 2) ? imp_const(c, 2) : NULL;
    if (!ts || ts->dtype != QL_DTYPE_F32 || (imp_has_in(c, 2) && !tz)) return imp_unsupported(c, "DequantizeLinear needs constant qparams");
    int64_t axis = onnx_attr_int(c->cur, "axis", 1), ch = ts->numel, inner = 1;
    if (axis < 0) axis += x->ndim;
    if (ch > 1 && (axis < 0 || axis >= x->ndim || x->shape[axis] != ch)) return imp_unsupported(c, "per-axis scales that do not match the axis");
    if (tz && tz->numel != ch) return imp_unsupported(c, "zero points and scales of different sizes");
    for (int i = (int)axis + 1; ch > 1 && i < x->ndim; i++) inner *= x->shape[i];
    ql_tensor *f = ql_tensor_new(QL_DTYPE_F32, x->ndim, x->shape);
    if (!f) return QL_ENOMEM;
    for (int64_t k = 0; k < x->numel; k++) {
        int64_t j = ch > 1 ? (k / inner) % ch : 0;
        ql_f32(f)[k] = (float)(onnx_tensor_get(x, k) - (tz ? onnx_tensor_get(tz, j) : 0)) * ql_f32(ts)[j];
    }
    onnx_val *v = imp_out_const(c, 0, f);
    if (!v) return QL_EFORMAT;
    v->q = ql_tensor_clone(x);
    v->qscale = ql_tensor_clone(ts);
    v->qzero = tz ? ql_tensor_clone(tz) : NULL;
    v->qaxis = ch > 1 ? (int)axis : -1;
    return v->q && v->qscale && (!tz || v->qzero) ? QL_OK : QL_ENOMEM;
}

static ql_status op_dequantize(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    if (x->node < 0) return dequantize_const(c, x->cst);
    int u = imp_u8_node(c, x, 1);
    if (u < 0 || x->dq) return imp_unsupported(c, "DequantizeLinear of a tensor that is not uint8");
    float s;
    int32_t z;
    QL_TRY(imp_act_qparams(c, 1, 2, &s, &z));
    const ql_node *n = &c->g->nodes[u];
    if (n->out_scale != s || n->out_zero != z)
        return imp_unsupported(c, "DequantizeLinear with other qparams than the QuantizeLinear that made the tensor");
    onnx_val *v = imp_out(c, 0, u, x->kind);
    if (v) v->dq = 1;
    return v ? QL_OK : QL_EFORMAT;
}

/* ---- INT8 weights ------------------------------------------------------------------------------ */

/* s8 weight, zero points 0, per-tensor or per-channel along the output axis oaxis: 0 when not usable. */
int imp_s8_weight(const onnx_val *w, int oaxis) {
    if (!w || w->node >= 0 || !w->q || w->q->dtype != QL_DTYPE_S8) return 0;
    if (w->qzero)
        for (int64_t k = 0; k < w->qzero->numel; k++)
            if (onnx_tensor_get(w->qzero, k) != 0) return 0;
    return w->qscale->numel == 1 || w->qaxis == oaxis;
}

void imp_fill_scales(float *dst, const ql_tensor *s, int64_t n) {
    for (int64_t k = 0; k < n; k++) dst[k] = ql_f32(s)[s->numel == 1 ? 0 : k];
}

/* ---- fused patterns ----------------------------------------------------------------------------------- */

static const Onnx__NodeProto *node_at(onnx_imp *c, int j) { return j >= 0 ? c->gp->node[j] : NULL; }

static int is_op(const Onnx__NodeProto *n, const char *op) {
    return n && n->op_type && !strcmp(n->op_type, op) && (!n->domain || !n->domain[0] || !strcmp(n->domain, "ai.onnx"));
}

/* Constant input k of node n (not the current one). */
static const ql_tensor *const_in(onnx_imp *c, const Onnx__NodeProto *n, int k) {
    if (k >= (int)n->n_input || !n->input[k] || !n->input[k][0]) return NULL;
    onnx_val *v = imp_find(c, n->input[k]);
    return v && v->node < 0 ? v->cst : NULL;
}

/* Clip n whose bounds are exactly the narrowed code range of the QuantizeLinear
 * consuming it (qlab's export of 7-bit activations): the Q's own clamp. */
int imp_narrow_clip(onnx_imp *c, const Onnx__NodeProto *n) {
    if (!is_op(n, "Clip") || n->n_input < 3 || c->opset < 11) return 0;
    const Onnx__NodeProto *q = node_at(c, imp_sole_consumer(c, n->output[0]));
    if (!is_op(q, "QuantizeLinear") || q->n_input < 2) return 0;
    const ql_tensor *lo = const_in(c, n, 1), *hi = const_in(c, n, 2), *ts = const_in(c, q, 1);
    const ql_tensor *tz = q->n_input > 2 && q->input[2][0] ? const_in(c, q, 2) : NULL;
    if (!lo || !hi || !ts || lo->dtype != QL_DTYPE_F32 || hi->dtype != QL_DTYPE_F32 || ts->dtype != QL_DTYPE_F32 ||
        lo->numel != 1 || hi->numel != 1 || ts->numel != 1 || (tz && tz->numel != 1))
        return 0;
    int32_t a, b, z = tz ? (int32_t)onnx_tensor_get(tz, 0) : 0;
    float s = ql_f32(ts)[0];
    code_range(q, &a, &b);
    return (a != 0 || b != 255) && ql_f32(lo)[0] == (float)(a - z) * s && ql_f32(hi)[0] == (float)(b - z) * s;
}

/* Clip(0,6) -> RELU6, Clip(0) -> RELU, Relu -> RELU; 0 otherwise. */
static int act_of(onnx_imp *c, const Onnx__NodeProto *n) {
    if (is_op(n, "Relu")) return QL_ACT_RELU;
    if (!is_op(n, "Clip")) return 0;
    double lo = -1, hi = -1;
    if (c->opset < 11) {
        const Onnx__AttributeProto *a = onnx_attr(n, "min"), *b = onnx_attr(n, "max");
        lo = a ? a->f : -1;
        hi = b ? b->f : 1e30;
    } else {
        const ql_tensor *a = const_in(c, n, 1), *b = const_in(c, n, 2);
        lo = a ? onnx_tensor_get(a, 0) : -1;
        hi = n->n_input > 2 && n->input[2][0] ? (b ? onnx_tensor_get(b, 0) : -1) : 1e30;
    }
    return lo == 0 && hi == 6 ? QL_ACT_RELU6 : lo == 0 && hi >= 1e30 ? QL_ACT_RELU : 0;
}

/* From the current node's output: [Add bias] [Relu|Clip] QuantizeLinear, each the sole consumer.
 * float_ok: a conv / linear may end without the QuantizeLinear (t->q NULL): it writes f32. */
static int find_tail(onnx_imp *c, int want_bias, int want_act, int float_ok, imp_qtail *t) {
    memset(t, 0, sizeof *t);
    const char *out = c->cur->output[0];
    int j = imp_sole_consumer(c, out);
    const Onnx__NodeProto *n = node_at(c, j);
    if (want_bias && is_op(n, "Add") && n->n_input == 2) {
        int other = strcmp(n->input[0], out) ? 0 : 1;
        if (!(t->bias = const_in(c, n, other)) || t->bias->dtype != QL_DTYPE_F32) return 0;
        t->chain[t->nchain++] = j;
        out = n->output[0];
        n = node_at(c, j = imp_sole_consumer(c, out));
    }
    if (want_act && (t->act = act_of(c, n))) {
        t->chain[t->nchain++] = j;
        out = n->output[0];
        n = node_at(c, j = imp_sole_consumer(c, out));
    }
    if (is_op(n, "Clip") && imp_narrow_clip(c, n)) {
        t->chain[t->nchain++] = j;
        out = n->output[0];
        n = node_at(c, j = imp_sole_consumer(c, out));
    }
    if (!is_op(n, "QuantizeLinear") || strcmp(n->input[0], out)) {
        if (!float_ok || (t->nchain && is_op(node_at(c, t->chain[t->nchain - 1]), "Clip") && !t->act)) return 0;
        t->q = NULL;   /* the float result is the value: what qlab's export writes for f32_out */
        return 1;
    }
    const ql_tensor *ts = const_in(c, n, 1), *tz = n->n_input > 2 && n->input[2][0] ? const_in(c, n, 2) : NULL;
    if (!ts || ts->numel != 1 || ts->dtype != QL_DTYPE_F32 || !(ql_f32(ts)[0] > 0)) return 0;
    if ((n->n_input > 2 && n->input[2][0] && !tz) || (tz && (tz->dtype != QL_DTYPE_U8 || tz->numel != 1))) return 0;
    t->s = ql_f32(ts)[0];
    t->z = tz ? (int32_t)onnx_tensor_get(tz, 0) : 0;
    code_range(n, &t->lo, &t->hi);
    t->q = n;
    t->chain[t->nchain++] = j;
    return 1;
}

/* Takes the tail's nodes and defines the Q output as node idx. */
static ql_status close_tail(onnx_imp *c, const imp_qtail *t, int idx, onnx_vkind kind) {
    ql_node *n = &c->g->nodes[idx];
    if (t->q) imp_set_out(n, t->s, t->z, t->lo, t->hi);
    strcpy(n->precision, "int8");
    for (int k = 0; k < t->nchain; k++) c->done[t->chain[k]] = 1;
    const Onnx__NodeProto *cur = c->cur;
    c->cur = t->q ? t->q : t->nchain ? node_at(c, t->chain[t->nchain - 1]) : cur;
    onnx_val *v = imp_out(c, 0, idx, kind);
    c->cur = cur;
    return v ? QL_OK : QL_EFORMAT;
}

static ql_status fuse_conv(onnx_imp *c, int u, const onnx_val *w, const imp_qtail *t) {
    const ql_tensor *wq = w->q, *b = imp_has_in(c, 2) ? imp_const(c, 2) : NULL;
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = (int)wq->shape[0];
    a.kernel[0] = (int)wq->shape[2];
    a.kernel[1] = (int)wq->shape[3];
    a.groups = (int)onnx_attr_int(c->cur, "group", 1);
    a.bias = b != NULL;
    a.act = t->act;
    a.f32_out = t->q == NULL;
    QL_TRY(imp_window(c, &c->g->nodes[u], 1, &a));
    char base[300];
    int idx = imp_add(c, imp_base(c, c->cur->input[1], base, sizeof base), QL_OP_QCONV2D, &u, 1, &a);
    if (idx < 0) return QL_EINVAL;
    ql_node *n = &c->g->nodes[idx];
    if (n->params[0].value->numel != wq->numel) return imp_unsupported(c, "the weight does not match the input channels");
    if (wq->numel) memcpy(n->params[0].value->data, wq->data, (size_t)wq->numel);
    imp_fill_scales(ql_f32(n->params[1].value), w->qscale, a.out_ch);
    if (b) QL_TRY(imp_copy_f32(c, &n->params[3], b, "the bias"));
    return close_tail(c, t, idx, V_NCHW);
}

/* Gemm (B (out,in) with transB, else (in,out)) or MatMul (B (in,out)). */
ql_status imp_fuse_linear(onnx_imp *c, int u, const onnx_val *w, int trans_b, const ql_tensor *b, const imp_qtail *t) {
    const ql_tensor *wq = w->q;
    int64_t out = trans_b ? wq->shape[0] : wq->shape[1], in = trans_b ? wq->shape[1] : wq->shape[0];
    if (imp_numel(&c->g->nodes[u]) != in || c->g->nodes[u].out_ndim != 1) return imp_unsupported(c, "the input must be (N, K) with K the rows of B");
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = (int)out;
    a.bias = b != NULL;
    a.act = t->act;
    a.f32_out = t->q == NULL;
    char base[300];
    int idx = imp_add(c, imp_base(c, c->cur->input[1], base, sizeof base), QL_OP_QLINEAR, &u, 1, &a);
    if (idx < 0) return QL_EINVAL;
    ql_node *n = &c->g->nodes[idx];
    int8_t *dw = n->params[0].value->data;
    const int8_t *sw = wq->data;
    for (int64_t o = 0; o < out; o++)
        for (int64_t k = 0; k < in; k++) dw[o * in + k] = trans_b ? sw[o * in + k] : sw[k * out + o];
    imp_fill_scales(ql_f32(n->params[1].value), w->qscale, out);
    if (b) {
        if (b->numel != out && b->numel != 1) return imp_unsupported(c, "the bias must have one value per output");
        for (int64_t o = 0; o < out; o++) ql_f32(n->params[3].value)[o] = ql_f32(b)[b->numel == 1 ? 0 : o];
    }
    return close_tail(c, t, idx, V_PLAIN);
}

/* A node on u8 input node u with the input's qparams (max pool, flatten, relu). */
static ql_status passthrough(onnx_imp *c, int u, ql_op_type op, const ql_attrs *a, const imp_qtail *t, onnx_vkind kind) {
    char base[300];
    int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), op, &u, 1, a);
    if (idx < 0) return QL_EINVAL;
    const ql_node *in = &c->g->nodes[u];
    imp_qtail own = {.s = in->out_scale, .z = in->out_zero, .lo = in->out_qmin, .hi = in->out_qmax};
    if (t) own = *t;
    if (!t) {   /* on the uint8 tensor itself: the current node's output is the u8 value */
        imp_set_out(&c->g->nodes[idx], own.s, own.z, own.lo, own.hi);
        strcpy(c->g->nodes[idx].precision, "int8");
        return imp_out(c, 0, idx, kind) ? QL_OK : QL_EFORMAT;
    }
    return close_tail(c, &own, idx, kind);
}

static ql_status maxpool_attrs(onnx_imp *c, int u, ql_attrs *a) {
    int64_t ks[4];
    if (onnx_attr_ints(c->cur, "kernel_shape", ks, 2) != 2) return imp_unsupported(c, "kernel_shape must have 2 values");
    if (c->cur->n_output > 1 && c->cur->output[1] && c->cur->output[1][0]) return imp_unsupported(c, "the Indices output");
    ql_attrs_default(a);
    a->kernel[0] = (int)ks[0];
    a->kernel[1] = (int)ks[1];
    a->ceil_mode = (int)onnx_attr_int(c->cur, "ceil_mode", 0);
    QL_TRY(imp_window(c, &c->g->nodes[u], 0, a));
    if (2 * a->padding[0] > a->kernel[0] || 2 * a->padding[1] > a->kernel[1]) return imp_unsupported(c, "pads larger than half the kernel");
    return QL_OK;
}

static int same_qp(const ql_node *n, const imp_qtail *t) { return n->out_scale == t->s && n->out_zero == t->z; }

int imp_try_fused(onnx_imp *c, ql_status *st) {
    const Onnx__NodeProto *n = c->cur;
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx")) return 0;
    onnx_val *x = imp_has_in(c, 0) ? imp_find(c, n->input[0]) : NULL;
    imp_qtail t;
    ql_attrs a;
    int u = imp_u8_node(c, x, 0), ud = imp_u8_node(c, x, 1);
    /* data movement on the codes themselves (a raw uint8 input), in simulation too */
    if (ud >= 0 && !x->dq) {
        if (is_op(n, "MaxPool") && x->kind == V_NCHW) {
            *st = maxpool_attrs(c, ud, &a);
            if (*st == QL_OK) *st = passthrough(c, ud, QL_OP_QMAXPOOL2D, &a, NULL, V_NCHW);
            return 1;
        }
        if ((is_op(n, "Flatten") || is_op(n, "Reshape")) && x->kind == V_NCHW) {
            *st = passthrough(c, ud, QL_OP_QFLATTEN, NULL, NULL, V_PLAIN);
            return 1;
        }
        if ((is_op(n, "Flatten") || is_op(n, "Reshape") || is_op(n, "Squeeze")) && x->kind == V_C11) {
            *st = imp_out(c, 0, ud, V_PLAIN) ? QL_OK : QL_EFORMAT;
            return 1;
        }
        return 0;
    }
    if (c->simulate || u < 0) return 0;
    if (is_op(n, "Conv") && x->kind == V_NCHW) {
        onnx_val *w = imp_has_in(c, 1) ? imp_find(c, n->input[1]) : NULL;
        const ql_tensor *b = imp_has_in(c, 2) ? imp_const(c, 2) : NULL;
        if (!imp_s8_weight(w, 0) || w->q->ndim != 4 || (imp_has_in(c, 2) && !b) || !find_tail(c, 0, 1, 1, &t)) return 0;
        *st = fuse_conv(c, u, w, &t);
        return 1;
    }
    if (is_op(n, "Gemm") || is_op(n, "MatMul")) {
        int gemm = is_op(n, "Gemm"), tb = gemm && onnx_attr_int(n, "transB", 0);
        onnx_val *w = imp_has_in(c, 1) ? imp_find(c, n->input[1]) : NULL;
        const ql_tensor *b = gemm && imp_has_in(c, 2) ? imp_const(c, 2) : NULL;
        if (gemm && (onnx_attr_int(n, "transA", 0) || onnx_attr_float(n, "alpha", 1) != 1 ||
                     onnx_attr_float(n, "beta", 1) != 1 || (imp_has_in(c, 2) && !b)))
            return 0;
        if (!imp_s8_weight(w, tb ? 0 : 1) || w->q->ndim != 2 || !find_tail(c, !gemm, 1, 1, &t)) return 0;
        *st = imp_fuse_linear(c, u, w, tb, gemm ? b : t.bias, &t);
        return 1;
    }
    if (is_op(n, "Add")) {
        onnx_val *y = imp_has_in(c, 1) ? imp_find(c, n->input[1]) : NULL;
        int u2 = imp_u8_node(c, y, 0);
        if (u2 < 0 || y->kind != x->kind || !find_tail(c, 0, 1, 0, &t)) return 0;
        ql_attrs_default(&a);
        a.act = t.act;
        int in[2] = {u, u2};
        char base[300];
        int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_QADD, in, 2, &a);
        *st = idx < 0 ? QL_EINVAL : close_tail(c, &t, idx, x->kind);
        return 1;
    }
    if (is_op(n, "GlobalAveragePool") && x->kind == V_NCHW) {
        if (!find_tail(c, 0, 0, 0, &t)) return 0;
        char base[300];
        int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_QGLOBAL_AVGPOOL, &u, 1, NULL);
        *st = idx < 0 ? QL_EINVAL : close_tail(c, &t, idx, V_C11);
        return 1;
    }
    if (act_of(c, n) || is_op(n, "MaxPool") || is_op(n, "Flatten")) {
        if (!find_tail(c, 0, 0, 0, &t) || !same_qp(&c->g->nodes[u], &t)) return 0;
        if (act_of(c, n)) {
            ql_attrs_default(&a);
            a.act = act_of(c, n);
            *st = passthrough(c, u, QL_OP_QRELU, &a, &t, x->kind);
        } else if (is_op(n, "MaxPool") && x->kind == V_NCHW) {
            *st = maxpool_attrs(c, u, &a);
            if (*st == QL_OK) *st = passthrough(c, u, QL_OP_QMAXPOOL2D, &a, &t, V_NCHW);
        } else if (is_op(n, "Flatten") && x->kind == V_NCHW && onnx_attr_int(n, "axis", 1) == 1) {
            *st = passthrough(c, u, QL_OP_QFLATTEN, NULL, &t, V_PLAIN);
        } else {
            return 0;
        }
        return 1;
    }
    return 0;
}

imp_fn imp_qdq_handler(const char *op, const char *domain) {
    if (domain[0] && strcmp(domain, "ai.onnx")) return NULL;
    if (!strcmp(op, "QuantizeLinear")) return op_quantize;
    if (!strcmp(op, "DequantizeLinear")) return op_dequantize;
    return NULL;
}
