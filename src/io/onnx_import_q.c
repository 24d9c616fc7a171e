/* Quantized ONNX onto qlab's INT8 nodes.
 * QDQ: QuantizeLinear / DequantizeLinear become quantize / dequantize nodes;
 * a float op whose inputs are dequantized uint8 tensors (and s8 weights,
 * zero points 0) and whose output is quantized again - Conv, Gemm, MatMul
 * (+ bias Add), Add, GlobalAveragePool, Relu / Clip, MaxPool, Flatten, with
 * a Relu / Clip(0,6) before the QuantizeLinear fused - becomes qconv2d,
 * qlinear, qadd, qglobal_avgpool, qrelu, qmaxpool2d, qflatten. Anything else
 * runs in FP32 between dequantize and quantize nodes, which is also what
 * ql_onnx_import.simulate asks for everywhere (a fake-quant simulation).
 * QOperator: QLinearConv, QLinearMatMul, QLinearAdd and
 * QLinearGlobalAveragePool (com.microsoft) map onto the same nodes. */
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "io/onnx_import.h"

/* ---- qparams ---------------------------------------------------------------------- */

/* Per-tensor activation qparams from inputs ks / kz of node n (zero point absent = 0, uint8). */
static ql_status act_qparams(onnx_imp *c, int ks, int kz, float *s, int32_t *z) {
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

static void set_out(ql_node *n, float s, int32_t z, int32_t lo, int32_t hi) {
    n->out_scale = s;
    n->out_zero = z;
    n->out_qmin = lo;
    n->out_qmax = hi;
}

/* A u8 value read through DequantizeLinear (or directly): its node, -1 otherwise. */
static int u8_node(onnx_imp *c, const onnx_val *v, int direct_ok) {
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
    QL_TRY(act_qparams(c, 1, 2, &s, &z));
    code_range(c->cur, &lo, &hi);
    onnx_vkind k = x->kind;
    int u = u8_node(c, x, 0);
    if (u >= 0 && c->g->nodes[u].out_scale == s && c->g->nodes[u].out_zero == z)   /* DQ -> Q: the same codes */
        return imp_out(c, 0, u, k) ? QL_OK : QL_EFORMAT;
    int fx = imp_f32(c, x);
    char base[300];
    int idx = fx < 0 ? -1 : imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_QUANTIZE, &fx, 1, NULL);
    if (idx < 0) return QL_EINVAL;
    set_out(&c->g->nodes[idx], s, z, lo, hi);
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
    int u = u8_node(c, x, 1);
    if (u < 0 || x->dq) return imp_unsupported(c, "DequantizeLinear of a tensor that is not uint8");
    float s;
    int32_t z;
    QL_TRY(act_qparams(c, 1, 2, &s, &z));
    const ql_node *n = &c->g->nodes[u];
    if (n->out_scale != s || n->out_zero != z)
        return imp_unsupported(c, "DequantizeLinear with other qparams than the QuantizeLinear that made the tensor");
    onnx_val *v = imp_out(c, 0, u, x->kind);
    if (v) v->dq = 1;
    return v ? QL_OK : QL_EFORMAT;
}

/* ---- INT8 weights ------------------------------------------------------------------------------ */

/* s8 weight, zero points 0, per-tensor or per-channel along the output axis oaxis: 0 when not usable. */
static int s8_weight(const onnx_val *w, int oaxis) {
    if (!w || w->node >= 0 || !w->q || w->q->dtype != QL_DTYPE_S8) return 0;
    if (w->qzero)
        for (int64_t k = 0; k < w->qzero->numel; k++)
            if (onnx_tensor_get(w->qzero, k) != 0) return 0;
    return w->qscale->numel == 1 || w->qaxis == oaxis;
}

static void fill_scales(float *dst, const ql_tensor *s, int64_t n) {
    for (int64_t k = 0; k < n; k++) dst[k] = ql_f32(s)[s->numel == 1 ? 0 : k];
}

/* ---- fused patterns ----------------------------------------------------------------------------------- */

typedef struct {
    int act;                       /* QL_ACT_* folded from a Relu / Clip before the Q */
    const Onnx__NodeProto *q;      /* the QuantizeLinear closing the pattern */
    int chain[4], nchain;          /* gp->node indices taken */
    const ql_tensor *bias;         /* MatMul: the Add's constant */
    float s;
    int32_t z, lo, hi;
} qtail;

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

/* From the current node's output: [Add bias] [Relu|Clip] QuantizeLinear, each the sole consumer. */
static int find_tail(onnx_imp *c, int want_bias, int want_act, qtail *t) {
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
    if (!is_op(n, "QuantizeLinear") || strcmp(n->input[0], out)) return 0;
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
static ql_status close_tail(onnx_imp *c, const qtail *t, int idx, onnx_vkind kind) {
    ql_node *n = &c->g->nodes[idx];
    set_out(n, t->s, t->z, t->lo, t->hi);
    strcpy(n->precision, "int8");
    for (int k = 0; k < t->nchain; k++) c->done[t->chain[k]] = 1;
    const Onnx__NodeProto *cur = c->cur;
    c->cur = t->q;
    onnx_val *v = imp_out(c, 0, idx, kind);
    c->cur = cur;
    return v ? QL_OK : QL_EFORMAT;
}

static ql_status fuse_conv(onnx_imp *c, int u, const onnx_val *w, const qtail *t) {
    const ql_tensor *wq = w->q, *b = imp_has_in(c, 2) ? imp_const(c, 2) : NULL;
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = (int)wq->shape[0];
    a.kernel[0] = (int)wq->shape[2];
    a.kernel[1] = (int)wq->shape[3];
    a.groups = (int)onnx_attr_int(c->cur, "group", 1);
    a.bias = b != NULL;
    a.act = t->act;
    QL_TRY(imp_window(c, &c->g->nodes[u], 1, &a));
    char base[300];
    int idx = imp_add(c, imp_base(c, c->cur->input[1], base, sizeof base), QL_OP_QCONV2D, &u, 1, &a);
    if (idx < 0) return QL_EINVAL;
    ql_node *n = &c->g->nodes[idx];
    if (n->params[0].value->numel != wq->numel) return imp_unsupported(c, "the weight does not match the input channels");
    if (wq->numel) memcpy(n->params[0].value->data, wq->data, (size_t)wq->numel);
    fill_scales(ql_f32(n->params[1].value), w->qscale, a.out_ch);
    if (b) QL_TRY(imp_copy_f32(c, &n->params[3], b, "the bias"));
    return close_tail(c, t, idx, V_NCHW);
}

/* Gemm (B (out,in) with transB, else (in,out)) or MatMul (B (in,out)). */
static ql_status fuse_linear(onnx_imp *c, int u, const onnx_val *w, int trans_b, const ql_tensor *b, const qtail *t) {
    const ql_tensor *wq = w->q;
    int64_t out = trans_b ? wq->shape[0] : wq->shape[1], in = trans_b ? wq->shape[1] : wq->shape[0];
    if (imp_numel(&c->g->nodes[u]) != in || c->g->nodes[u].out_ndim != 1) return imp_unsupported(c, "the input must be (N, K) with K the rows of B");
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = (int)out;
    a.bias = b != NULL;
    a.act = t->act;
    char base[300];
    int idx = imp_add(c, imp_base(c, c->cur->input[1], base, sizeof base), QL_OP_QLINEAR, &u, 1, &a);
    if (idx < 0) return QL_EINVAL;
    ql_node *n = &c->g->nodes[idx];
    int8_t *dw = n->params[0].value->data;
    const int8_t *sw = wq->data;
    for (int64_t o = 0; o < out; o++)
        for (int64_t k = 0; k < in; k++) dw[o * in + k] = trans_b ? sw[o * in + k] : sw[k * out + o];
    fill_scales(ql_f32(n->params[1].value), w->qscale, out);
    if (b) {
        if (b->numel != out && b->numel != 1) return imp_unsupported(c, "the bias must have one value per output");
        for (int64_t o = 0; o < out; o++) ql_f32(n->params[3].value)[o] = ql_f32(b)[b->numel == 1 ? 0 : o];
    }
    return close_tail(c, t, idx, V_PLAIN);
}

/* A node on u8 input node u with the input's qparams (max pool, flatten, relu). */
static ql_status passthrough(onnx_imp *c, int u, ql_op_type op, const ql_attrs *a, const qtail *t, onnx_vkind kind) {
    char base[300];
    int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), op, &u, 1, a);
    if (idx < 0) return QL_EINVAL;
    const ql_node *in = &c->g->nodes[u];
    qtail own = {.s = in->out_scale, .z = in->out_zero, .lo = in->out_qmin, .hi = in->out_qmax};
    if (t) own = *t;
    if (!t) {   /* on the uint8 tensor itself: the current node's output is the u8 value */
        set_out(&c->g->nodes[idx], own.s, own.z, own.lo, own.hi);
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

static int same_qp(const ql_node *n, const qtail *t) { return n->out_scale == t->s && n->out_zero == t->z; }

int imp_try_fused(onnx_imp *c, ql_status *st) {
    const Onnx__NodeProto *n = c->cur;
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx")) return 0;
    onnx_val *x = imp_has_in(c, 0) ? imp_find(c, n->input[0]) : NULL;
    qtail t;
    ql_attrs a;
    int u = u8_node(c, x, 0), ud = u8_node(c, x, 1);
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
        if (!s8_weight(w, 0) || w->q->ndim != 4 || (imp_has_in(c, 2) && !b) || !find_tail(c, 0, 1, &t)) return 0;
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
        if (!s8_weight(w, tb ? 0 : 1) || w->q->ndim != 2 || !find_tail(c, !gemm, 1, &t)) return 0;
        *st = fuse_linear(c, u, w, tb, gemm ? b : t.bias, &t);
        return 1;
    }
    if (is_op(n, "Add")) {
        onnx_val *y = imp_has_in(c, 1) ? imp_find(c, n->input[1]) : NULL;
        int u2 = u8_node(c, y, 0);
        if (u2 < 0 || y->kind != x->kind || !find_tail(c, 0, 1, &t)) return 0;
        ql_attrs_default(&a);
        a.act = t.act;
        int in[2] = {u, u2};
        char base[300];
        int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_QADD, in, 2, &a);
        *st = idx < 0 ? QL_EINVAL : close_tail(c, &t, idx, x->kind);
        return 1;
    }
    if (is_op(n, "GlobalAveragePool") && x->kind == V_NCHW) {
        if (!find_tail(c, 0, 0, &t)) return 0;
        char base[300];
        int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_QGLOBAL_AVGPOOL, &u, 1, NULL);
        *st = idx < 0 ? QL_EINVAL : close_tail(c, &t, idx, V_C11);
        return 1;
    }
    if (act_of(c, n) || is_op(n, "MaxPool") || is_op(n, "Flatten")) {
        if (!find_tail(c, 0, 0, &t) || !same_qp(&c->g->nodes[u], &t)) return 0;
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

/* ---- QOperator ------------------------------------------------------------------------------------------ */

/* The u8 node of input k, with qparams (inputs ks, kz) equal to its own. */
static int qop_input(onnx_imp *c, int k, int ks, int kz) {
    onnx_val *v;
    float s;
    int32_t z;
    if (imp_in(c, k, &v) != QL_OK || act_qparams(c, ks, kz, &s, &z) != QL_OK) return -1;
    int u = u8_node(c, v, 1);
    if (u < 0 || v->dq) { imp_unsupported(c, "the input must be a uint8 tensor"); return -1; }
    if (c->g->nodes[u].out_scale != s || c->g->nodes[u].out_zero != z) {
        imp_unsupported(c, "input qparams differ from those the tensor was quantized with");
        return -1;
    }
    return u;
}

/* A weight given as integers plus scale / zero point inputs: a temporary dq-constant view. */
static int qop_weight(onnx_imp *c, int kw, int ks, int kz, onnx_val *w) {
    memset(w, 0, sizeof *w);
    w->node = -1;
    w->q = (ql_tensor *)imp_const(c, kw);
    w->qscale = (ql_tensor *)imp_const(c, ks);
    w->qzero = imp_has_in(c, kz) ? (ql_tensor *)imp_const(c, kz) : NULL;
    w->qaxis = w->q && w->qscale && w->qscale->numel > 1 ? 0 : -1;
    return w->q && w->qscale && w->qscale->dtype == QL_DTYPE_F32;
}

static ql_status op_qlinearconv(onnx_imp *c) {
    int u = qop_input(c, 0, 1, 2);
    if (u < 0) return QL_EUNSUPPORTED;
    onnx_val w;
    if (!qop_weight(c, 3, 4, 5, &w) || !s8_weight(&w, 0) || w.q->ndim != 4)
        return imp_unsupported(c, "the weight must be an int8 constant with zero points 0 (qlab's symmetric weights)");
    qtail t = {0};
    QL_TRY(act_qparams(c, 6, 7, &t.s, &t.z));
    t.hi = 255;
    const ql_tensor *b = imp_has_in(c, 8) ? imp_const(c, 8) : NULL;
    if (imp_has_in(c, 8) && (!b || b->dtype != QL_DTYPE_S32)) return imp_unsupported(c, "the bias must be an int32 constant");
    ql_tensor *fb = NULL;
    if (b) {   /* int32 at x_scale * w_scale -> float */
        if (!(fb = ql_tensor_new(QL_DTYPE_F32, 1, &b->numel))) return QL_ENOMEM;
        float xs = c->g->nodes[u].out_scale;
        for (int64_t o = 0; o < b->numel; o++)
            ql_f32(fb)[o] = (float)onnx_tensor_get(b, o) * xs * ql_f32(w.qscale)[w.qscale->numel == 1 ? 0 : o];
    }
    /* fuse_conv reads the bias as input 2: give it the float one through a temporary value */
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = (int)w.q->shape[0];
    a.kernel[0] = (int)w.q->shape[2];
    a.kernel[1] = (int)w.q->shape[3];
    a.groups = (int)onnx_attr_int(c->cur, "group", 1);
    a.bias = fb != NULL;
    ql_status st = imp_window(c, &c->g->nodes[u], 1, &a);
    char base[300];
    int idx = st == QL_OK ? imp_add(c, imp_base(c, c->cur->input[3], base, sizeof base), QL_OP_QCONV2D, &u, 1, &a) : -1;
    if (st == QL_OK && idx < 0) st = QL_EINVAL;
    ql_node *n = idx >= 0 ? &c->g->nodes[idx] : NULL;
    if (st == QL_OK && n->params[0].value->numel != w.q->numel) st = imp_unsupported(c, "the weight does not match the input channels");
    if (st == QL_OK) {
        if (w.q->numel) memcpy(n->params[0].value->data, w.q->data, (size_t)w.q->numel);
        fill_scales(ql_f32(n->params[1].value), w.qscale, a.out_ch);
        if (fb) st = imp_copy_f32(c, &n->params[3], fb, "the bias");
    }
    ql_tensor_free(fb);
    if (st != QL_OK) return st;
    set_out(n, t.s, t.z, 0, 255);
    strcpy(n->precision, "int8");
    return imp_out(c, 0, idx, V_NCHW) ? QL_OK : QL_EFORMAT;
}

static ql_status op_qlinearmatmul(onnx_imp *c) {
    int u = qop_input(c, 0, 1, 2);
    if (u < 0) return QL_EUNSUPPORTED;
    onnx_val w;
    if (!qop_weight(c, 3, 4, 5, &w) || w.q->ndim != 2) return imp_unsupported(c, "B must be a 2-D int8 constant");
    w.qaxis = w.qscale->numel > 1 ? 1 : -1;
    if (!s8_weight(&w, 1)) return imp_unsupported(c, "B must be int8 with zero points 0 (qlab's symmetric weights)");
    qtail t = {0};
    QL_TRY(act_qparams(c, 6, 7, &t.s, &t.z));
    t.hi = 255;
    const Onnx__NodeProto *cur = c->cur;
    t.q = cur;   /* the output is this node's own */
    return fuse_linear(c, u, &w, 0, NULL, &t);
}

static ql_status op_qlinearadd(onnx_imp *c) {
    int u = qop_input(c, 0, 1, 2), v = u < 0 ? -1 : qop_input(c, 3, 4, 5);
    if (u < 0 || v < 0) return QL_EUNSUPPORTED;
    qtail t = {0};
    QL_TRY(act_qparams(c, 6, 7, &t.s, &t.z));
    int in[2] = {u, v};
    char base[300];
    int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_QADD, in, 2, NULL);
    if (idx < 0) return QL_EINVAL;
    set_out(&c->g->nodes[idx], t.s, t.z, 0, 255);
    strcpy(c->g->nodes[idx].precision, "int8");
    onnx_val *x = imp_find(c, c->cur->input[0]);
    return imp_out(c, 0, idx, x->kind) ? QL_OK : QL_EFORMAT;
}

static ql_status op_qlineargap(onnx_imp *c) {
    if (onnx_attr_int(c->cur, "channels_last", 0)) return imp_unsupported(c, "channels_last = 1");
    int u = qop_input(c, 0, 1, 2);
    if (u < 0) return QL_EUNSUPPORTED;
    qtail t = {0};
    QL_TRY(act_qparams(c, 3, 4, &t.s, &t.z));
    char base[300];
    int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_QGLOBAL_AVGPOOL, &u, 1, NULL);
    if (idx < 0) return QL_EINVAL;
    set_out(&c->g->nodes[idx], t.s, t.z, 0, 255);
    strcpy(c->g->nodes[idx].precision, "int8");
    return imp_out(c, 0, idx, V_C11) ? QL_OK : QL_EFORMAT;
}

imp_fn imp_q_handler(const char *op, const char *domain) {
    int std = !domain[0] || !strcmp(domain, "ai.onnx"), ms = !strcmp(domain, "com.microsoft");
    if (std && !strcmp(op, "QuantizeLinear")) return op_quantize;
    if (std && !strcmp(op, "DequantizeLinear")) return op_dequantize;
    if (std && !strcmp(op, "QLinearConv")) return op_qlinearconv;
    if (std && !strcmp(op, "QLinearMatMul")) return op_qlinearmatmul;
    if ((std || ms) && !strcmp(op, "QLinearAdd")) return op_qlinearadd;
    if (ms && !strcmp(op, "QLinearGlobalAveragePool")) return op_qlineargap;
    return NULL;
}
