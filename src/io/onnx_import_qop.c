/* QOperator ONNX onto qlab's INT8 nodes: QLinearConv, QLinearMatMul,
 * QLinearAdd and (com.microsoft) QLinearGlobalAveragePool, with uint8
 * activations and int8 weights of zero point 0 (qlab's symmetric weights). */
#include <string.h>
#include "qlab/alloc.h"
#include "io/onnx_import.h"

/* The u8 node of input k, with qparams (inputs ks, kz) equal to its own. */
static int qop_input(onnx_imp *c, int k, int ks, int kz) {
    onnx_val *v;
    float s;
    int32_t z;
    if (imp_in(c, k, &v) != QL_OK || imp_act_qparams(c, ks, kz, &s, &z) != QL_OK) return -1;
    int u = imp_u8_node(c, v, 1);
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
    if (!qop_weight(c, 3, 4, 5, &w) || !imp_s8_weight(&w, 0) || w.q->ndim != 4)
        return imp_unsupported(c, "the weight must be an int8 constant with zero points 0 (qlab's symmetric weights)");
    imp_qtail t = {0};
    QL_TRY(imp_act_qparams(c, 6, 7, &t.s, &t.z));
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
        imp_fill_scales(ql_f32(n->params[1].value), w.qscale, a.out_ch);
        if (fb) st = imp_copy_f32(c, &n->params[3], fb, "the bias");
    }
    ql_tensor_free(fb);
    if (st != QL_OK) return st;
    imp_set_out(n, t.s, t.z, 0, 255);
    strcpy(n->precision, "int8");
    return imp_out(c, 0, idx, V_NCHW) ? QL_OK : QL_EFORMAT;
}

static ql_status op_qlinearmatmul(onnx_imp *c) {
    int u = qop_input(c, 0, 1, 2);
    if (u < 0) return QL_EUNSUPPORTED;
    onnx_val w;
    if (!qop_weight(c, 3, 4, 5, &w) || w.q->ndim != 2) return imp_unsupported(c, "B must be a 2-D int8 constant");
    w.qaxis = w.qscale->numel > 1 ? 1 : -1;
    if (!imp_s8_weight(&w, 1)) return imp_unsupported(c, "B must be int8 with zero points 0 (qlab's symmetric weights)");
    imp_qtail t = {0};
    QL_TRY(imp_act_qparams(c, 6, 7, &t.s, &t.z));
    t.hi = 255;
    const Onnx__NodeProto *cur = c->cur;
    t.q = cur;   /* the output is this node's own */
    return imp_fuse_linear(c, u, &w, 0, NULL, &t);
}

static ql_status op_qlinearadd(onnx_imp *c) {
    int u = qop_input(c, 0, 1, 2), v = u < 0 ? -1 : qop_input(c, 3, 4, 5);
    if (u < 0 || v < 0) return QL_EUNSUPPORTED;
    imp_qtail t = {0};
    QL_TRY(imp_act_qparams(c, 6, 7, &t.s, &t.z));
    int in[2] = {u, v};
    char base[300];
    int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_QADD, in, 2, NULL);
    if (idx < 0) return QL_EINVAL;
    imp_set_out(&c->g->nodes[idx], t.s, t.z, 0, 255);
    strcpy(c->g->nodes[idx].precision, "int8");
    onnx_val *x = imp_find(c, c->cur->input[0]);
    return imp_out(c, 0, idx, x->kind) ? QL_OK : QL_EFORMAT;
}

static ql_status op_qlineargap(onnx_imp *c) {
    if (onnx_attr_int(c->cur, "channels_last", 0)) return imp_unsupported(c, "channels_last = 1");
    int u = qop_input(c, 0, 1, 2);
    if (u < 0) return QL_EUNSUPPORTED;
    imp_qtail t = {0};
    QL_TRY(imp_act_qparams(c, 3, 4, &t.s, &t.z));
    char base[300];
    int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_QGLOBAL_AVGPOOL, &u, 1, NULL);
    if (idx < 0) return QL_EINVAL;
    imp_set_out(&c->g->nodes[idx], t.s, t.z, 0, 255);
    strcpy(c->g->nodes[idx].precision, "int8");
    return imp_out(c, 0, idx, V_C11) ? QL_OK : QL_EFORMAT;
}

imp_fn imp_q_handler(const char *op, const char *domain) {
    int std = !domain[0] || !strcmp(domain, "ai.onnx"), ms = !strcmp(domain, "com.microsoft");
    imp_fn f = imp_qdq_handler(op, domain);
    if (f) return f;
    if (std && !strcmp(op, "QLinearConv")) return op_qlinearconv;
    if (std && !strcmp(op, "QLinearMatMul")) return op_qlinearmatmul;
    if ((std || ms) && !strcmp(op, "QLinearAdd")) return op_qlinearadd;
    if (ms && !strcmp(op, "QLinearGlobalAveragePool")) return op_qlineargap;
    return NULL;
}
