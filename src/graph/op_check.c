/* Checks and layouts shared by several ops: window attributes (conv, pools),
 * the conv geometry and weight layout of the FP32, INT8 and half convs, and
 * the symmetric s8 weights of the INT8 linear, conv and LSTM ops. */
#include <string.h>
#include "graph/op.h"

ql_status ql_check_window(const ql_node *n, int has_dilation) {
    const ql_attrs *a = &n->a;
    const char *op = ql_op_name(n->op);
    for (int i = 0; i < 2; i++) {
        if (a->kernel[i] < 1)
            return ql_error(QL_EINVAL, "node '%s': %s kernel must be >= 1, got [%d,%d]", n->name, op,
                            a->kernel[0], a->kernel[1]);
        if (a->stride[i] < 1)
            return ql_error(QL_EINVAL, "node '%s': %s stride must be >= 1, got [%d,%d]", n->name, op,
                            a->stride[0], a->stride[1]);
        if (a->padding[i] < 0)
            return ql_error(QL_EINVAL, "node '%s': %s padding must be >= 0, got [%d,%d]", n->name, op,
                            a->padding[0], a->padding[1]);
        if (has_dilation ? a->dilation[i] < 1 : a->dilation[i] != 1)
            return ql_error(QL_EINVAL, "node '%s': %s dilation must be %s, got [%d,%d]", n->name, op,
                            has_dilation ? ">= 1" : "1", a->dilation[0], a->dilation[1]);
    }
    return QL_OK;
}

ql_status ql_check_image(const ql_node *n, const ql_node *in) {
    if (in->out_ndim == 3) return QL_OK;
    char b[128];
    return ql_error(QL_ESHAPE, "node '%s': %s expects an {H,W,C} input, got %s from '%s'", n->name,
                    ql_op_name(n->op), ql_shape_str(in->out_ndim, in->out_shape, b, sizeof b), in->name);
}

/* First and last tap of one dimension that reads a real pixel for some output. */
static void live_taps(int in, int out, int k, int stride, int pad, int dil, int *lo, int *hi) {
    *lo = k; *hi = -1;
    for (int t = 0; t < k; t++)
        for (int o = 0; o < out; o++) {
            int pos = o * stride - pad + t * dil;
            if (pos >= 0 && pos < in) { if (t < *lo) *lo = t; *hi = t; break; }
        }
}

int ql_conv_prune_taps(const ql_conv2d_shape *s, int *kh0, int *kw0, ql_conv2d_shape *out) {
    int lh, hh, lw, hw;
    live_taps(s->h, s->oh, s->kh, s->sh, s->ph, s->dh, &lh, &hh);
    live_taps(s->w, s->ow, s->kw, s->sw, s->pw, s->dw, &lw, &hw);
    if (hh < lh || hw < lw) return 0;
    ql_conv2d_shape t = *s;
    t.kh = hh - lh + 1; t.kw = hw - lw + 1;
    t.ph = s->ph - lh * s->dh; t.pw = s->pw - lw * s->dw;
    if ((t.kh == s->kh && t.kw == s->kw) || t.ph < 0 || t.pw < 0) return 0;
    if (ql_conv2d_shape_init(&t) != QL_OK || t.oh != s->oh || t.ow != s->ow) return 0;
    *kh0 = lh; *kw0 = lw;
    *out = t;
    return 1;
}

ql_status ql_conv_shape_of(const ql_attrs *a, const ql_tensor *x, int64_t batch, ql_conv2d_shape *s) {
    *s = (ql_conv2d_shape){.n = (int)batch, .h = (int)x->shape[1], .w = (int)x->shape[2], .c = (int)x->shape[3],
                           .oc = a->out_ch, .kh = a->kernel[0], .kw = a->kernel[1], .sh = a->stride[0],
                           .sw = a->stride[1], .ph = a->padding[0], .pw = a->padding[1], .dh = a->dilation[0],
                           .dw = a->dilation[1], .groups = a->groups};
    return ql_conv2d_shape_init(s);
}

void ql_conv_weight_live_ohwi(const void *oihw, size_t es, const ql_conv2d_shape *s, int kh0, int kw0,
                              int kh, int kw, void *ohwi) {
    const char *src = oihw;
    char *dst = ohwi;
    const int ic = s->c / s->groups;
    for (int o = 0; o < s->oc; o++)
        for (int y = 0; y < kh; y++)
            for (int x = 0; x < kw; x++)
                for (int i = 0; i < ic; i++)
                    memcpy(dst + ((((size_t)o * kh + y) * kw + x) * ic + i) * es,
                           src + ((((size_t)o * ic + i) * s->kh + y + kh0) * s->kw + x + kw0) * es, es);
}

ql_status ql_check_symmetric_weight(const ql_node *n, int k) {
    const float *sc = ql_f32(n->params[k + 1].value);
    const int32_t *zp = n->params[k + 2].value->data;
    for (int64_t i = 0; i < n->params[k + 2].value->numel; i++)
        if (zp[i] != 0 || !(sc[i] > 0))
            return ql_error(QL_EFORMAT, "node '%s': the INT8 kernels need symmetric weights (zero point 0, scale > 0); "
                            "%s row %lld has zero point %d, scale %g", n->name, n->params[k].name, (long long)i,
                            zp[i], (double)sc[i]);
    return QL_OK;
}

ql_status ql_s8_linear_params(ql_node *n) {
    int64_t ws[2] = {n->a.out_ch, n->a.in_ch}, cs[1] = {n->a.out_ch};
    QL_TRY(ql_node_add_param_dtype(n, "weight", QL_DTYPE_S8, 2, ws, 0));
    QL_TRY(ql_node_add_param_dtype(n, "weight_scale", QL_DTYPE_F32, 1, cs, 0));
    QL_TRY(ql_node_add_param_dtype(n, "weight_zero_point", QL_DTYPE_S32, 1, cs, 0));
    if (n->a.bias) QL_TRY(ql_node_add_param_dtype(n, "bias", QL_DTYPE_F32, 1, cs, 0));
    return QL_OK;
}
