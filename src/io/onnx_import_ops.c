/* FP32 ONNX ops onto qlab nodes: Conv, BatchNormalization, Relu, Clip,
 * MaxPool, AveragePool, GlobalAveragePool, Add, Flatten, Reshape, Gemm,
 * MatMul (+Add), Constant; LSTM and the data movement around it:
 * onnx_import_seq.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "io/onnx_import.h"

ql_status imp_need_kind(onnx_imp *c, const onnx_val *v, onnx_vkind k, const char *what) {
    if (v->kind == k && v->node >= 0) return QL_OK;
    char b[200];
    snprintf(b, sizeof b, "input '%.100s' must be %s", v->name, what);
    return imp_unsupported(c, b);
}

ql_status imp_copy_f32(onnx_imp *c, ql_param *p, const ql_tensor *t, const char *what) {
    if (!t || t->dtype != QL_DTYPE_F32 || t->numel != p->value->numel) {
        char b[200];
        snprintf(b, sizeof b, "%s must be a float constant of %lld elements (got %lld)", what,
                 (long long)p->value->numel, t ? (long long)t->numel : 0LL);
        return imp_unsupported(c, b);
    }
    if (t->numel) memcpy(p->value->data, t->data, (size_t)t->numel * sizeof(float));
    return QL_OK;
}

/* strides, pads (symmetric only), dilations, auto_pad of a conv or pool on input node in. */
ql_status imp_window(onnx_imp *c, const ql_node *in, int has_dil, ql_attrs *a) {
    int64_t v[8];
    int k;
    if ((k = onnx_attr_ints(c->cur, "strides", v, 2)) >= 0) {
        if (k != 2) return imp_unsupported(c, "strides must have 2 values (2-D only)");
        a->stride[0] = (int)v[0]; a->stride[1] = (int)v[1];
    }
    if ((k = onnx_attr_ints(c->cur, "dilations", v, 2)) >= 0) {
        if (k != 2) return imp_unsupported(c, "dilations must have 2 values (2-D only)");
        if (!has_dil && (v[0] != 1 || v[1] != 1)) return imp_unsupported(c, "pooling with dilations");
        a->dilation[0] = (int)v[0]; a->dilation[1] = (int)v[1];
    }
    char ap[32];
    onnx_attr_str(c->cur, "auto_pad", ap, sizeof ap);
    if (!ap[0] || !strcmp(ap, "NOTSET")) {
        if ((k = onnx_attr_ints(c->cur, "pads", v, 4)) >= 0) {
            if (k != 4) return imp_unsupported(c, "pads must have 4 values (2-D only)");
            if (v[0] != v[2] || v[1] != v[3]) return imp_unsupported(c, "asymmetric pads (qlab pads both sides alike)");
            a->padding[0] = (int)v[0]; a->padding[1] = (int)v[1];
        }
    } else if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
        for (int i = 0; i < 2; i++) {
            int64_t n = in->out_shape[i], s = a->stride[i], o = (n + s - 1) / s;
            int64_t eff = (int64_t)(a->kernel[i] - 1) * a->dilation[i] + 1;
            int64_t tot = (o - 1) * s + eff - n;
            if (tot < 0) tot = 0;
            if (tot % 2) return imp_unsupported(c, "auto_pad SAME with an odd total padding (asymmetric)");
            a->padding[i] = (int)(tot / 2);
        }
    } else if (strcmp(ap, "VALID")) {
        return imp_unsupported(c, "unknown auto_pad");
    }
    return QL_OK;
}

/* ---- Conv ------------------------------------------------------------------- */
static ql_status op_conv(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    QL_TRY(imp_need_kind(c, x, V_NCHW, "an image (N,C,H,W)"));
    const ql_tensor *w = imp_const(c, 1), *b = imp_has_in(c, 2) ? imp_const(c, 2) : NULL;
    if (!w || w->ndim != 4) return imp_unsupported(c, "the weight must be a 4-D constant (2-D convolution)");
    if (imp_has_in(c, 2) && !b) return imp_unsupported(c, "the bias must be a constant");
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = (int)w->shape[0];
    a.kernel[0] = (int)w->shape[2];
    a.kernel[1] = (int)w->shape[3];
    a.groups = (int)onnx_attr_int(c->cur, "group", 1);
    a.bias = b != NULL;
    int fx = imp_f32(c, x);
    if (fx < 0) return QL_EINVAL;
    QL_TRY(imp_window(c, &c->g->nodes[fx], 1, &a));
    char base[300];
    int idx = imp_add(c, imp_base(c, c->cur->input[1], base, sizeof base), QL_OP_CONV2D, &fx, 1, &a);
    if (idx < 0) return QL_EINVAL;
    ql_node *n = &c->g->nodes[idx];
    QL_TRY(imp_copy_f32(c, &n->params[0], w, "the weight"));
    if (b) QL_TRY(imp_copy_f32(c, &n->params[1], b, "the bias"));
    return imp_out(c, 0, idx, V_NCHW) ? QL_OK : QL_EFORMAT;
}

/* ---- BatchNormalization ---------------------------------------------------- */
static ql_status op_bn(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    QL_TRY(imp_need_kind(c, x, V_NCHW, "an image (N,C,H,W)"));
    if (onnx_attr_int(c->cur, "training_mode", 0)) return imp_unsupported(c, "training_mode = 1");
    for (size_t k = 1; k < c->cur->n_output; k++)
        if (c->cur->output[k] && c->cur->output[k][0] && imp_sole_consumer(c, c->cur->output[k]) >= 0)
            return imp_unsupported(c, "the running statistics outputs are used");
    ql_attrs a;
    ql_attrs_default(&a);
    a.eps = onnx_attr_float(c->cur, "epsilon", 1e-5f);
    a.momentum = 1.0f - onnx_attr_float(c->cur, "momentum", 0.9f);
    int fx = imp_f32(c, x);
    if (fx < 0) return QL_EINVAL;
    char base[300];
    int idx = imp_add(c, imp_base(c, c->cur->input[1], base, sizeof base), QL_OP_BATCHNORM2D, &fx, 1, &a);
    if (idx < 0) return QL_EINVAL;
    static const char *const what[4] = {"the scale", "the bias", "the mean", "the variance"};
    for (int k = 0; k < 4; k++) QL_TRY(imp_copy_f32(c, &c->g->nodes[idx].params[k], imp_const(c, k + 1), what[k]));
    return imp_out(c, 0, idx, V_NCHW) ? QL_OK : QL_EFORMAT;
}

/* ---- activations --------------------------------------------------------------- */
static ql_status unary(onnx_imp *c, ql_op_type op) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    onnx_vkind k = x->kind;
    int fx = imp_f32(c, x);
    if (fx < 0) return QL_EINVAL;
    char base[300];
    int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), op, &fx, 1, NULL);
    return idx >= 0 && imp_out(c, 0, idx, k) ? QL_OK : QL_EINVAL;
}

static ql_status op_relu(onnx_imp *c) { return unary(c, QL_OP_RELU); }

/* Clip(0, 6) is ReLU6, Clip(0, inf) ReLU. */
static ql_status op_clip(onnx_imp *c) {
    double lo = -INFINITY, hi = INFINITY;
    if (imp_narrow_clip(c, c->cur)) {   /* the QuantizeLinear after it clamps to the same range */
        onnx_val *x;
        QL_TRY(imp_in(c, 0, &x));
        onnx_val *o = imp_out(c, 0, x->node, x->kind);
        if (o) { o->dq = x->dq; o->fnode = x->fnode; }
        return o ? QL_OK : QL_EFORMAT;
    }
    if (c->opset < 11) {
        lo = onnx_attr_float(c->cur, "min", -INFINITY);
        hi = onnx_attr_float(c->cur, "max", INFINITY);
    } else {
        for (int k = 1; k <= 2; k++) {
            if (!imp_has_in(c, k)) continue;
            const ql_tensor *t = imp_const(c, k);
            if (!t || t->numel != 1) return imp_unsupported(c, "min and max must be scalar constants");
            *(k == 1 ? &lo : &hi) = onnx_tensor_get(t, 0);
        }
    }
    if (lo == 0 && hi == 6) return unary(c, QL_OP_RELU6);
    if (lo == 0 && isinf(hi)) return unary(c, QL_OP_RELU);
    return imp_unsupported(c, "only Clip(0, 6) (ReLU6) and Clip(0) (ReLU) map onto qlab ops");
}

/* ---- pools --------------------------------------------------------------------- */
static ql_status pool(onnx_imp *c, ql_op_type op) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    QL_TRY(imp_need_kind(c, x, V_NCHW, "an image (N,C,H,W)"));
    if (c->cur->n_output > 1 && c->cur->output[1] && c->cur->output[1][0])
        return imp_unsupported(c, "the Indices output");
    if (onnx_attr_int(c->cur, "storage_order", 0)) return imp_unsupported(c, "storage_order = 1");
    int64_t ks[4];
    if (onnx_attr_ints(c->cur, "kernel_shape", ks, 2) != 2) return imp_unsupported(c, "kernel_shape must have 2 values");
    ql_attrs a;
    ql_attrs_default(&a);
    a.kernel[0] = (int)ks[0];
    a.kernel[1] = (int)ks[1];
    a.ceil_mode = (int)onnx_attr_int(c->cur, "ceil_mode", 0);
    a.count_include_pad = (int)onnx_attr_int(c->cur, "count_include_pad", 0);
    int fx = imp_f32(c, x);
    if (fx < 0) return QL_EINVAL;
    QL_TRY(imp_window(c, &c->g->nodes[fx], 0, &a));
    if (2 * a.padding[0] > a.kernel[0] || 2 * a.padding[1] > a.kernel[1])
        return imp_unsupported(c, "pads larger than half the kernel");
    char base[300];
    int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), op, &fx, 1, &a);
    return idx >= 0 && imp_out(c, 0, idx, V_NCHW) ? QL_OK : QL_EINVAL;
}

static ql_status op_maxpool(onnx_imp *c) { return pool(c, QL_OP_MAXPOOL2D); }
static ql_status op_avgpool(onnx_imp *c) { return pool(c, QL_OP_AVGPOOL2D); }

static ql_status op_gap(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    QL_TRY(imp_need_kind(c, x, V_NCHW, "an image (N,C,H,W)"));
    int fx = imp_f32(c, x);
    char base[300];
    int idx = fx < 0 ? -1 : imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_GLOBAL_AVGPOOL, &fx, 1, NULL);
    return idx >= 0 && imp_out(c, 0, idx, V_C11) ? QL_OK : QL_EINVAL;
}

/* ---- Add ----------------------------------------------------------------------- */
static ql_status op_add(onnx_imp *c) {
    onnx_val *x, *y;
    QL_TRY(imp_in(c, 0, &x));
    QL_TRY(imp_in(c, 1, &y));
    if (x->node < 0) { onnx_val *t = x; x = y; y = t; }
    if (y->node < 0) {   /* MatMul + Add: the constant is the linear's bias */
        ql_node *n = x->node >= 0 ? &c->g->nodes[x->node] : NULL;
        if (!x->bias_free || !n || imp_sole_consumer(c, x->name) < 0 || y->cst->numel != n->a.out_ch)
            return imp_unsupported(c, "Add of a constant (other than a MatMul's bias)");
        QL_TRY(imp_copy_f32(c, &n->params[1], y->cst, "the bias"));
        c->g->version++;
        return imp_out(c, 0, x->node, x->kind) ? QL_OK : QL_EFORMAT;
    }
    if (x->kind != y->kind) return imp_unsupported(c, "Add of tensors in different layouts");
    onnx_vkind k = x->kind;
    int in[2] = {imp_f32(c, x), imp_f32(c, y)};
    if (in[0] < 0 || in[1] < 0) return QL_EINVAL;
    char base[300];
    int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_ADD, in, 2, NULL);
    return idx >= 0 && imp_out(c, 0, idx, k) ? QL_OK : QL_EINVAL;
}

/* ---- Flatten and Reshape to 2-D --------------------------------------------------- */
static ql_status to_2d(onnx_imp *c, onnx_val *x) {
    int fx = x->node;
    if (x->kind == V_C11 || (x->kind == V_PLAIN && c->g->nodes[fx].out_ndim == 1)) {
        onnx_val *o = imp_out(c, 0, fx, V_PLAIN);   /* already (N, C) in qlab */
        if (o && x->dq) { o->dq = 1; o->fnode = x->fnode; }
        return o ? QL_OK : QL_EFORMAT;
    }
    if (x->kind != V_NCHW && x->kind != V_PLAIN) return imp_unsupported(c, "flattening a sequence seen time-major");
    if ((fx = imp_f32(c, x)) < 0) return QL_EINVAL;
    char base[300];
    int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_FLATTEN, &fx, 1, NULL);
    return idx >= 0 && imp_out(c, 0, idx, V_PLAIN) ? QL_OK : QL_EINVAL;
}

static ql_status op_flatten(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    if (x->node < 0) return imp_unsupported(c, "Flatten of a constant");
    if (onnx_attr_int(c->cur, "axis", 1) != 1) return imp_unsupported(c, "Flatten with axis other than 1");
    return to_2d(c, x);
}

static ql_status op_reshape(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    const ql_tensor *s = imp_const(c, 1);
    if (x->node < 0) return imp_unsupported(c, "Reshape of a constant");
    if (!s || s->dtype != QL_DTYPE_S32) return imp_unsupported(c, "the shape must be an integer constant");
    int64_t per = imp_numel(&c->g->nodes[x->node]);
    double d1 = s->numel == 2 ? onnx_tensor_get(s, 1) : 0;
    if (s->numel != 2 || !(d1 == -1 || d1 == (double)per))
        return imp_unsupported(c, "only Reshape to (N, -1) (a flatten) maps onto qlab");
    return to_2d(c, x);
}

/* ---- Gemm, MatMul ---------------------------------------------------------------- */
static int linear_input(onnx_imp *c, onnx_val *x) {
    if (x->node < 0 || !(x->kind == V_PLAIN || x->kind == V_C11)) {
        imp_unsupported(c, "the input must be a computed (N, K) tensor");
        return -1;
    }
    return imp_f32(c, x);
}

static ql_status op_gemm(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    const ql_tensor *b = imp_const(c, 1), *bias = imp_has_in(c, 2) ? imp_const(c, 2) : NULL;
    if (onnx_attr_int(c->cur, "transA", 0)) return imp_unsupported(c, "transA = 1");
    if (!b || b->ndim != 2 || b->dtype != QL_DTYPE_F32) return imp_unsupported(c, "B must be a 2-D float constant");
    if (imp_has_in(c, 2) && (!bias || bias->dtype != QL_DTYPE_F32)) return imp_unsupported(c, "C must be a float constant");
    int tb = (int)onnx_attr_int(c->cur, "transB", 0);
    float alpha = onnx_attr_float(c->cur, "alpha", 1.0f), beta = onnx_attr_float(c->cur, "beta", 1.0f);
    int64_t in = tb ? b->shape[1] : b->shape[0], out = tb ? b->shape[0] : b->shape[1];
    if (bias && bias->numel != 1 && bias->numel != out)
        return imp_unsupported(c, "C must have one value or one per output (no batch-shaped C)");
    int fx = linear_input(c, x);
    if (fx < 0) return QL_EINVAL;
    if (imp_numel(&c->g->nodes[fx]) != in || c->g->nodes[fx].out_ndim != 1)
        return imp_unsupported(c, "the input must be (N, K) with K the rows of B");
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = (int)out;
    a.bias = bias != NULL;
    char base[300];
    int idx = imp_add(c, imp_base(c, c->cur->input[1], base, sizeof base), QL_OP_LINEAR, &fx, 1, &a);
    if (idx < 0) return QL_EINVAL;
    ql_node *n = &c->g->nodes[idx];
    float *w = ql_f32(n->params[0].value);
    const float *src = ql_f32(b);
    for (int64_t o = 0; o < out; o++)
        for (int64_t k = 0; k < in; k++) w[o * in + k] = alpha * (tb ? src[o * in + k] : src[k * out + o]);
    if (bias) {
        float *bb = ql_f32(n->params[1].value);
        for (int64_t o = 0; o < out; o++) bb[o] = beta * ql_f32(bias)[bias->numel == 1 ? 0 : o];
    }
    return imp_out(c, 0, idx, V_PLAIN) ? QL_OK : QL_EFORMAT;
}

static ql_status op_matmul(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    const ql_tensor *b = imp_const(c, 1);
    if (!b || b->ndim != 2 || b->dtype != QL_DTYPE_F32) return imp_unsupported(c, "B must be a 2-D float constant");
    int fx = linear_input(c, x);
    if (fx < 0) return QL_EINVAL;
    const ql_node *xn = &c->g->nodes[fx];
    if (xn->out_shape[xn->out_ndim - 1] != b->shape[0] || xn->out_ndim > 2)
        return imp_unsupported(c, "the input must be (N, K) or (N, T, K) with K the rows of B");
    int64_t in = b->shape[0], out = b->shape[1];
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = (int)out;
    char base[300];
    int idx = imp_add(c, imp_base(c, c->cur->input[1], base, sizeof base), QL_OP_LINEAR, &fx, 1, &a);
    if (idx < 0) return QL_EINVAL;
    float *w = ql_f32(c->g->nodes[idx].params[0].value);
    for (int64_t o = 0; o < out; o++)
        for (int64_t k = 0; k < in; k++) w[o * in + k] = ql_f32(b)[k * out + o];
    onnx_val *v = imp_out(c, 0, idx, V_PLAIN);
    if (v) v->bias_free = 1;
    return v ? QL_OK : QL_EFORMAT;
}

static ql_status op_constant(onnx_imp *c) {
    const Onnx__AttributeProto *a = onnx_attr(c->cur, "value");
    ql_tensor *t = NULL;
    if (a && a->t) QL_TRY(onnx_tensor_decode(a->t, &t));
    else if ((a = onnx_attr(c->cur, "value_float")) && a->has_f) {
        int64_t one = 1;
        if ((t = ql_tensor_new(QL_DTYPE_F32, 1, &one))) ql_f32(t)[0] = a->f;
    } else if ((a = onnx_attr(c->cur, "value_int")) && a->has_i) {
        int64_t one = 1;
        if ((t = ql_tensor_new(QL_DTYPE_S32, 1, &one))) ((int32_t *)t->data)[0] = (int32_t)a->i;
    } else if ((a = onnx_attr(c->cur, "value_ints"))) {
        int64_t n = (int64_t)a->n_ints;
        if ((t = ql_tensor_new(QL_DTYPE_S32, 1, &n)))
            for (int64_t k = 0; k < n; k++) ((int32_t *)t->data)[k] = (int32_t)a->ints[k];
    } else {
        return imp_unsupported(c, "a Constant without a tensor, float or ints value");
    }
    return t && imp_out_const(c, 0, t) ? QL_OK : QL_EFORMAT;
}

static const struct { const char *op; imp_fn fn; } fp32_ops[] = {
    {"Conv", op_conv}, {"BatchNormalization", op_bn}, {"Relu", op_relu}, {"Clip", op_clip},
    {"MaxPool", op_maxpool}, {"AveragePool", op_avgpool}, {"GlobalAveragePool", op_gap}, {"Add", op_add},
    {"Flatten", op_flatten}, {"Reshape", op_reshape}, {"Gemm", op_gemm}, {"MatMul", op_matmul},
    {"LSTM", imp_op_lstm}, {"Transpose", imp_op_transpose}, {"Squeeze", imp_op_squeeze}, {"Gather", imp_op_gather},
    {"Identity", imp_op_identity}, {"Dropout", imp_op_identity}, {"Constant", op_constant},
};

imp_fn imp_fp32_handler(const char *op, const char *domain) {
    if (domain[0] && strcmp(domain, "ai.onnx")) return NULL;
    for (size_t i = 0; i < sizeof fp32_ops / sizeof *fp32_ops; i++)
        if (!strcmp(fp32_ops[i].op, op)) return fp32_ops[i].fn;
    return NULL;
}
