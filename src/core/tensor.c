/* Tensor creation, resizing and copying. */
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/tensor.h"

static const struct { const char *name, *st; size_t size; } dtypes[QL_DTYPE_COUNT] = {
    [QL_DTYPE_F32] = {"f32", "F32", 4},  [QL_DTYPE_F16] = {"f16", "F16", 2},
    [QL_DTYPE_BF16] = {"bf16", "BF16", 2}, [QL_DTYPE_U8] = {"u8", "U8", 1},
    [QL_DTYPE_S8] = {"s8", "I8", 1},     [QL_DTYPE_S32] = {"s32", "I32", 4},
};

size_t ql_dtype_size(ql_dtype d) { return (unsigned)d < QL_DTYPE_COUNT ? dtypes[d].size : 0; }
const char *ql_dtype_name(ql_dtype d) { return (unsigned)d < QL_DTYPE_COUNT ? dtypes[d].name : "?"; }
const char *ql_dtype_st_name(ql_dtype d) { return (unsigned)d < QL_DTYPE_COUNT ? dtypes[d].st : "?"; }

int ql_dtype_from_name(const char *s, ql_dtype *out) {
    for (int i = 0; i < QL_DTYPE_COUNT; i++)
        if (!strcmp(s, dtypes[i].name) || !strcmp(s, dtypes[i].st)) { *out = (ql_dtype)i; return 0; }
    return -1;
}

int64_t ql_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

static ql_status check_shape(int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > QL_MAX_DIMS) return ql_error(QL_ESHAPE, "tensor rank %d outside 0..%d", ndim, QL_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return ql_error(QL_ESHAPE, "negative dimension %lld", (long long)shape[i]);
        if (shape[i] && n > ((int64_t)1 << 40) / shape[i]) return ql_error(QL_ESHAPE, "tensor too large");
        n *= shape[i];
    }
    return QL_OK;
}

ql_tensor *ql_tensor_new(ql_dtype d, int ndim, const int64_t *shape) {
    if ((unsigned)d >= QL_DTYPE_COUNT) { ql_error(QL_EINVAL, "unknown dtype %d", (int)d); return NULL; }
    if (check_shape(ndim, shape) != QL_OK) return NULL;
    ql_tensor *t = ql_calloc(sizeof *t);
    if (!t) return NULL;
    t->dtype = d;
    t->scale = 1.0f;
    if (ql_tensor_resize(t, ndim, shape) != QL_OK) { ql_free(t); return NULL; }
    return t;
}

ql_tensor *ql_tensor_new4(ql_dtype d, int64_t a, int64_t b, int64_t c, int64_t e) {
    int64_t s[4] = {a, b, c, e};
    return ql_tensor_new(d, 4, s);
}

void ql_tensor_free(ql_tensor *t) {
    if (!t) return;
    ql_free(t->data);
    ql_free(t);
}

ql_status ql_tensor_resize(ql_tensor *t, int ndim, const int64_t *shape) {
    QL_TRY(check_shape(ndim, shape));
    int64_t n = ql_shape_numel(ndim, shape);
    size_t bytes = (size_t)n * ql_dtype_size(t->dtype);
    if (bytes > t->capacity) {
        void *p = ql_calloc(bytes);
        if (!p) return QL_ENOMEM;
        ql_free(t->data);
        t->data = p;
        t->capacity = bytes;
    }
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = n;
    return QL_OK;
}

ql_status ql_tensor_reshape(ql_tensor *t, int ndim, const int64_t *shape) {
    QL_TRY(check_shape(ndim, shape));
    if (ql_shape_numel(ndim, shape) != t->numel) {
        char a[128], b[128];
        return ql_error(QL_ESHAPE, "cannot reshape %s to %s", ql_shape_str(t->ndim, t->shape, a, sizeof a),
                        ql_shape_str(ndim, shape, b, sizeof b));
    }
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    return QL_OK;
}

ql_tensor *ql_tensor_clone(const ql_tensor *t) {
    ql_tensor *c = ql_tensor_new(t->dtype, t->ndim, t->shape);
    if (!c) return NULL;
    if (t->numel) memcpy(c->data, t->data, ql_tensor_bytes(t));
    c->scale = t->scale;
    c->zero_point = t->zero_point;
    return c;
}

ql_status ql_tensor_copy(ql_tensor *dst, const ql_tensor *src) {
    if (dst->dtype != src->dtype || dst->numel != src->numel)
        return ql_error(QL_ESHAPE, "copy between %s[%lld] and %s[%lld]", ql_dtype_name(dst->dtype),
                        (long long)dst->numel, ql_dtype_name(src->dtype), (long long)src->numel);
    if (src->numel) memcpy(dst->data, src->data, ql_tensor_bytes(src));
    dst->scale = src->scale;
    dst->zero_point = src->zero_point;
    return QL_OK;
}

void ql_tensor_zero(ql_tensor *t) { if (t->numel) memset(t->data, 0, ql_tensor_bytes(t)); }
size_t ql_tensor_bytes(const ql_tensor *t) { return (size_t)t->numel * ql_dtype_size(t->dtype); }

int ql_tensor_same_shape(const ql_tensor *a, const ql_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++) if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

char *ql_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = 0;
    k += snprintf(buf + k, n - k, "(");
    for (int i = 0; i < ndim && k < n; i++)
        k += snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}
