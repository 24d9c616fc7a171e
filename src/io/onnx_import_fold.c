/* Constant folding in the importer: the shape arithmetic exporters emit
 * around the ops qlab runs (PyTorch's LSTM builds its zero initial state
 * from Shape -> Gather -> Unsqueeze -> Concat -> Expand; its ReLU6 casts
 * its bounds). Shape of a computed tensor reads batch 1: the results are
 * used where the batch does not matter (zero states, Reshape(N, -1)). */
#include <string.h>
#include "qlab/alloc.h"
#include "io/onnx_import.h"

/* A new tensor of dtype d and shape, with every element v[k] (converted). */
static ql_tensor *make(ql_dtype d, int ndim, const int64_t *shape) {
    int64_t s[QL_MAX_DIMS];
    memcpy(s, shape, sizeof(int64_t) * (size_t)ndim);
    return ql_tensor_new(d, ndim, s);
}

static void put(ql_tensor *t, int64_t k, double v) {
    if (t->dtype == QL_DTYPE_F32) ql_f32(t)[k] = (float)v;
    else if (t->dtype == QL_DTYPE_U8) ((uint8_t *)t->data)[k] = (uint8_t)v;
    else if (t->dtype == QL_DTYPE_S8) ((int8_t *)t->data)[k] = (int8_t)v;
    else ((int32_t *)t->data)[k] = (int32_t)v;
}

/* ONNX dims of a computed value, batch read as 1. */
static int onnx_dims(const onnx_imp *c, const onnx_val *v, int64_t *d) {
    const ql_node *n = &c->g->nodes[v->node];
    const int64_t *s = n->out_shape;
    switch (v->kind) {
    case V_NCHW: d[0] = 1; d[1] = s[2]; d[2] = s[0]; d[3] = s[1]; return 4;
    case V_C11: d[0] = 1; d[1] = s[0]; d[2] = d[3] = 1; return 4;
    case V_TNF: d[0] = s[0]; d[1] = 1; d[2] = s[1]; return 3;
    case V_LSTMY: d[0] = s[0]; d[1] = d[2] = 1; d[3] = s[1]; return 4;
    case V_H1N: d[0] = d[1] = 1; d[2] = n->out_shape[1]; return 3;
    default:
        d[0] = 1;
        for (int i = 0; i < n->out_ndim; i++) d[i + 1] = s[i];
        return n->out_ndim + 1;
    }
}

static int64_t norm_axis(int64_t a, int r) { return a < 0 ? a + r : a; }

static ql_status fold_shape(onnx_imp *c, onnx_val *x, ql_tensor **out) {
    int64_t d[QL_MAX_DIMS + 1];
    int r = onnx_dims(c, x, d);
    if (onnx_attr(c->cur, "start") || onnx_attr(c->cur, "end")) return imp_unsupported(c, "Shape with start / end");
    int64_t n = r;
    if (!(*out = make(QL_DTYPE_S32, 1, &n))) return QL_ENOMEM;
    for (int i = 0; i < r; i++) put(*out, i, (double)d[i]);
    return QL_OK;
}

static ql_status fold_gather(onnx_imp *c, const ql_tensor *x, const ql_tensor *idx, ql_tensor **out) {
    int64_t axis = norm_axis(onnx_attr_int(c->cur, "axis", 0), x->ndim);
    if (x->ndim < 1 || axis < 0 || axis >= x->ndim || x->ndim - 1 + idx->ndim > QL_MAX_DIMS)
        return imp_unsupported(c, "Gather axis outside the data's rank");
    int64_t s[QL_MAX_DIMS], outer = 1, inner = 1, n = x->shape[axis];
    int r = 0;
    for (int i = 0; i < axis; i++) { s[r++] = x->shape[i]; outer *= x->shape[i]; }
    for (int i = 0; i < idx->ndim; i++) s[r++] = idx->shape[i];
    for (int i = (int)axis + 1; i < x->ndim; i++) { s[r++] = x->shape[i]; inner *= x->shape[i]; }
    if (!(*out = make(x->dtype, r, s))) return QL_ENOMEM;
    int64_t k = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < idx->numel; j++) {
            int64_t at = (int64_t)onnx_tensor_get(idx, j);
            if (at < 0) at += n;
            if (at < 0 || at >= n) { ql_tensor_free(*out); *out = NULL; return imp_unsupported(c, "Gather index out of range"); }
            for (int64_t i = 0; i < inner; i++) put(*out, k++, onnx_tensor_get(x, (o * n + at) * inner + i));
        }
    return QL_OK;
}

/* axes from the attribute (old opsets) or input 1 */
static int axes_of(onnx_imp *c, int64_t *ax, int max) {
    if (onnx_attr(c->cur, "axes")) return onnx_attr_ints(c->cur, "axes", ax, max);
    const ql_tensor *t = imp_has_in(c, 1) ? imp_const(c, 1) : NULL;
    if (!t || t->numel > max) return -1;
    for (int64_t i = 0; i < t->numel; i++) ax[i] = (int64_t)onnx_tensor_get(t, i);
    return (int)t->numel;
}

static ql_status fold_unsqueeze(onnx_imp *c, const ql_tensor *x, ql_tensor **out) {
    int64_t ax[QL_MAX_DIMS], s[QL_MAX_DIMS];
    int k = axes_of(c, ax, QL_MAX_DIMS), r = x->ndim + k;
    if (k < 0 || r > QL_MAX_DIMS) return imp_unsupported(c, "Unsqueeze axes");
    unsigned char mark[QL_MAX_DIMS] = {0};
    for (int i = 0; i < k; i++) {
        int64_t a = norm_axis(ax[i], r);
        if (a < 0 || a >= r) return imp_unsupported(c, "Unsqueeze axis out of range");
        mark[a] = 1;
    }
    for (int i = 0, j = 0; i < r; i++) s[i] = mark[i] ? 1 : x->shape[j++];
    if (!(*out = make(x->dtype, r, s))) return QL_ENOMEM;
    if (x->numel) memcpy((*out)->data, x->data, ql_tensor_bytes(x));
    return QL_OK;
}

static ql_status fold_concat(onnx_imp *c, ql_tensor **out) {
    int n = (int)c->cur->n_input;
    const ql_tensor *t0 = imp_const(c, 0);
    if (!t0 || t0->ndim != 1) return imp_unsupported(c, "Concat of constants other than 1-D");
    int64_t len = 0;
    for (int i = 0; i < n; i++) {
        const ql_tensor *t = imp_const(c, i);
        if (!t || t->ndim != 1 || t->dtype != t0->dtype) return imp_unsupported(c, "Concat of constants other than 1-D");
        len += t->numel;
    }
    if (!(*out = make(t0->dtype, 1, &len))) return QL_ENOMEM;
    int64_t k = 0;
    for (int i = 0; i < n; i++) {
        const ql_tensor *t = imp_const(c, i);
        for (int64_t j = 0; j < t->numel; j++) put(*out, k++, onnx_tensor_get(t, j));
    }
    return QL_OK;
}

/* Expand of a one-value constant (a fill); ConstantOfShape the same from its attribute. */
static ql_status fill(onnx_imp *c, const ql_tensor *shape, ql_dtype d, double v, ql_tensor **out) {
    int64_t s[QL_MAX_DIMS];
    if (!shape || shape->ndim != 1 || shape->numel > QL_MAX_DIMS) return imp_unsupported(c, "a fill shape of more than 6 dims");
    for (int64_t i = 0; i < shape->numel; i++) s[i] = (int64_t)onnx_tensor_get(shape, i);
    if (!(*out = make(d, (int)shape->numel, s))) return QL_ENOMEM;
    for (int64_t k = 0; k < (*out)->numel; k++) put(*out, k, v);
    return QL_OK;
}

/* numpy broadcasting of x to the shape input. */
static ql_status fold_expand(onnx_imp *c, const ql_tensor *x, ql_tensor **out) {
    const ql_tensor *sh = imp_const(c, 1);
    if (!sh || sh->ndim != 1 || sh->numel > QL_MAX_DIMS || x->ndim > QL_MAX_DIMS)
        return imp_unsupported(c, "Expand to more than 6 dimensions");
    int r = (int)(sh->numel > x->ndim ? sh->numel : x->ndim);
    int64_t xs[QL_MAX_DIMS], os[QL_MAX_DIMS], stride[QL_MAX_DIMS];
    for (int i = 0; i < r; i++) {
        int xi = i - (r - x->ndim), si = i - (r - (int)sh->numel);
        int64_t a = xi >= 0 ? x->shape[xi] : 1, b = si >= 0 ? (int64_t)onnx_tensor_get(sh, si) : 1;
        if (a != b && a != 1 && b != 1) return imp_unsupported(c, "Expand shapes do not broadcast");
        xs[i] = a;
        os[i] = a == 1 ? b : a;
    }
    for (int i = r - 1, st = 1; i >= 0; i--) { stride[i] = xs[i] == 1 ? 0 : st; st *= (int)xs[i]; }
    if (!(*out = make(x->dtype, r, os))) return QL_ENOMEM;
    for (int64_t k = 0; k < (*out)->numel; k++) {
        int64_t rem = k, off = 0;
        for (int i = r - 1; i >= 0; i--) { off += (rem % os[i]) * stride[i]; rem /= os[i]; }
        put(*out, k, onnx_tensor_get(x, off));
    }
    return QL_OK;
}

static ql_status fold_const_of_shape(onnx_imp *c, ql_tensor **out) {
    const Onnx__AttributeProto *a = onnx_attr(c->cur, "value");
    ql_tensor *v = NULL;
    if (a && a->t) QL_TRY(onnx_tensor_decode(a->t, &v));
    double x = v && v->numel ? onnx_tensor_get(v, 0) : 0;
    ql_dtype d = v ? v->dtype : QL_DTYPE_F32;
    ql_tensor_free(v);
    return fill(c, imp_const(c, 0), d, x, out);
}

static ql_status fold_cast(onnx_imp *c, const ql_tensor *x, ql_tensor **out) {
    int64_t to = onnx_attr_int(c->cur, "to", 1);
    ql_dtype d = to == 1 || to == 11 ? QL_DTYPE_F32 : to == 2 ? QL_DTYPE_U8 : to == 3 ? QL_DTYPE_S8 :
                 to == 6 || to == 7 || to == 9 ? QL_DTYPE_S32 : QL_DTYPE_COUNT;
    if (d == QL_DTYPE_COUNT) return imp_unsupported(c, "Cast to a type qlab does not hold");
    if (!(*out = make(d, x->ndim, x->shape))) return QL_ENOMEM;
    for (int64_t k = 0; k < x->numel; k++) put(*out, k, onnx_tensor_get(x, k));
    return QL_OK;
}

static int all_const(onnx_imp *c) {
    for (size_t k = 0; k < c->cur->n_input; k++)
        if (imp_has_in(c, (int)k) && !imp_const(c, (int)k)) return 0;
    return 1;
}

int imp_try_fold(onnx_imp *c, ql_status *st) {
    const char *op = c->cur->op_type ? c->cur->op_type : "";
    if (c->cur->domain && c->cur->domain[0] && strcmp(c->cur->domain, "ai.onnx")) return 0;
    ql_tensor *t = NULL;
    if (!strcmp(op, "Shape")) {
        onnx_val *x = imp_has_in(c, 0) ? imp_find(c, c->cur->input[0]) : NULL;
        if (!x || x->node < 0) return 0;
        *st = fold_shape(c, x, &t);
    } else {
        if (!all_const(c) || !imp_has_in(c, 0)) return 0;
        const ql_tensor *x = imp_const(c, 0);
        if (!strcmp(op, "Gather") && imp_const(c, 1)) *st = fold_gather(c, x, imp_const(c, 1), &t);
        else if (!strcmp(op, "Unsqueeze")) *st = fold_unsqueeze(c, x, &t);
        else if (!strcmp(op, "Concat")) *st = fold_concat(c, &t);
        else if (!strcmp(op, "Expand") && imp_const(c, 1)) *st = fold_expand(c, x, &t);
        else if (!strcmp(op, "ConstantOfShape")) *st = fold_const_of_shape(c, &t);
        else if (!strcmp(op, "Cast")) *st = fold_cast(c, x, &t);
        else return 0;
    }
    if (*st == QL_OK && !imp_out_const(c, 0, t)) *st = QL_EFORMAT;
    else if (*st != QL_OK) ql_tensor_free(t);
    return 1;
}
