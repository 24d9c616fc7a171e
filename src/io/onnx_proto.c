/* ONNX protobuf helpers: reading files, decoding TensorProtos, attributes.
 * The message types come from protoc-c over Debian's onnx.proto. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "qlab/alloc.h"
#include "io/onnx_internal.h"

ql_status onnx_read_file(const char *path, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return ql_error(QL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return ql_error(QL_EIO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *b = ql_malloc(n ? n : 1);
    if (!b) { fclose(fp); return QL_ENOMEM; }
    size_t got = fread(b, 1, n, fp);
    fclose(fp);
    if (got != n) { ql_free(b); return ql_error(QL_EIO, "%s: short read (%zu of %zu bytes)", path, got, n); }
    *buf = b;
    *len = n;
    return QL_OK;
}

static const char *tname(const Onnx__TensorProto *tp) { return tp->name && tp->name[0] ? tp->name : "(unnamed)"; }

/* Bytes per element of the ONNX types we read; 0 for the others. */
static size_t onnx_elem_size(int dt) {
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return 8;
    default: return 0;
    }
}

static ql_dtype engine_dtype(int dt) {
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return QL_DTYPE_F32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: return QL_DTYPE_U8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return QL_DTYPE_S8;
    default: return QL_DTYPE_S32;
    }
}

/* Element k of a typed field or little-endian raw bytes, stored into t. */
static ql_status store(ql_tensor *t, int64_t k, double v, const Onnx__TensorProto *tp) {
    switch (t->dtype) {
    case QL_DTYPE_F32: ql_f32(t)[k] = (float)v; break;
    case QL_DTYPE_U8: ((uint8_t *)t->data)[k] = (uint8_t)v; break;
    case QL_DTYPE_S8: ((int8_t *)t->data)[k] = (int8_t)v; break;
    default:
        if (v < -2147483648.0 || v > 2147483647.0)
            return ql_error(QL_EUNSUPPORTED, "tensor '%s': value %.0f does not fit in 32 bits", tname(tp), v);
        ((int32_t *)t->data)[k] = (int32_t)v;
    }
    return QL_OK;
}

static double raw_get(const uint8_t *p, int dt) {
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: { float f; memcpy(&f, p, 4); return f; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: { double d; memcpy(&d, p, 8); return d; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: { int32_t i; memcpy(&i, p, 4); return i; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: { int64_t i; memcpy(&i, p, 8); return (double)i; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return (int8_t)p[0];
    default: return p[0];
    }
}

ql_status onnx_tensor_decode(const Onnx__TensorProto *tp, ql_tensor **out) {
    *out = NULL;
    int dt = tp->data_type;
    size_t es = onnx_elem_size(dt);
    if (!es) return ql_error(QL_EUNSUPPORTED, "tensor '%s': ONNX data type %d is not supported (float, double, "
                             "uint8, int8, int32, int64, bool are)", tname(tp), dt);
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return ql_error(QL_EUNSUPPORTED, "tensor '%s': external data is not supported (save the model with "
                        "its weights inside the .onnx file)", tname(tp));
    if (tp->segment) return ql_error(QL_EUNSUPPORTED, "tensor '%s': segmented tensors are not supported", tname(tp));
    if (tp->n_dims > QL_MAX_DIMS)
        return ql_error(QL_EUNSUPPORTED, "tensor '%s' has %zu dimensions (qlab handles up to %d)", tname(tp),
                        tp->n_dims, QL_MAX_DIMS);
    int64_t shape[QL_MAX_DIMS] = {1}, numel = 1;
    int ndim = (int)tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0 || tp->dims[i] > (1 << 30) || (tp->dims[i] && numel > ((int64_t)1 << 34) / tp->dims[i]))
            return ql_error(QL_EFORMAT, "tensor '%s': bad dimension %lld", tname(tp), (long long)tp->dims[i]);
        shape[i] = tp->dims[i];
        numel *= tp->dims[i];
    }
    int64_t have;
    if (tp->has_raw_data) have = (int64_t)(tp->raw_data.len / es);
    else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) have = (int64_t)tp->n_float_data;
    else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) have = (int64_t)tp->n_double_data;
    else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) have = (int64_t)tp->n_int64_data;
    else have = (int64_t)tp->n_int32_data;
    if (have != numel || (tp->has_raw_data && tp->raw_data.len != (size_t)numel * es))
        return ql_error(QL_EFORMAT, "tensor '%s': %lld elements stored for a shape of %lld", tname(tp),
                        (long long)have, (long long)numel);
    ql_tensor *t = ql_tensor_new(engine_dtype(dt), ndim, shape);
    if (!t) return QL_ENOMEM;
    for (int64_t k = 0; k < numel; k++) {
        double v;
        if (tp->has_raw_data) v = raw_get(tp->raw_data.data + k * es, dt);
        else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) v = tp->float_data[k];
        else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) v = tp->double_data[k];
        else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) v = (double)tp->int64_data[k];
        else v = tp->int32_data[k];
        if (store(t, k, v, tp) != QL_OK) { ql_tensor_free(t); return QL_EUNSUPPORTED; }
    }
    *out = t;
    return QL_OK;
}

double onnx_tensor_get(const ql_tensor *t, int64_t k) {
    switch (t->dtype) {
    case QL_DTYPE_F32: return ql_f32(t)[k];
    case QL_DTYPE_U8: return ((const uint8_t *)t->data)[k];
    case QL_DTYPE_S8: return ((const int8_t *)t->data)[k];
    case QL_DTYPE_S32: return ((const int32_t *)t->data)[k];
    default: return NAN;
    }
}

const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *n, const char *name) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name)) return n->attribute[i];
    return NULL;
}

int64_t onnx_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def) {
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    return a && a->has_i ? a->i : def;
}

float onnx_attr_float(const Onnx__NodeProto *n, const char *name, float def) {
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    return a && a->has_f ? a->f : def;
}

int onnx_attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *out, int max) {
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    if (!a) return -1;
    int k = (int)(a->n_ints < (size_t)max ? a->n_ints : (size_t)max);
    for (int i = 0; i < k; i++) out[i] = a->ints[i];
    return a->n_ints > (size_t)max ? max + 1 : k;
}

const char *onnx_attr_str(const Onnx__NodeProto *n, const char *name, char *buf, size_t len) {
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    buf[0] = 0;
    if (a && a->has_s && len) {
        size_t k = a->s.len < len - 1 ? a->s.len : len - 1;
        memcpy(buf, a->s.data, k);
        buf[k] = 0;
    }
    return buf;
}

const char *onnx_where(const Onnx__NodeProto *n, int64_t opset) {
    static __thread char buf[384];
    snprintf(buf, sizeof buf, "node '%.160s' (%.60s%s%.60s, opset %lld)", n->name && n->name[0] ? n->name : "(unnamed)",
             n->op_type ? n->op_type : "?", n->domain && n->domain[0] ? " in domain " : "",
             n->domain ? n->domain : "", (long long)opset);
    return buf;
}

ql_status ql_onnx_read_tensor(const char *path, ql_tensor **out, char **name) {
    uint8_t *buf;
    size_t len;
    *out = NULL;
    if (name) *name = NULL;
    QL_TRY(onnx_read_file(path, &buf, &len));
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    ql_free(buf);
    if (!tp) return ql_error(QL_EFORMAT, "%s: not a serialized ONNX TensorProto (malformed or truncated)", path);
    ql_status st = onnx_tensor_decode(tp, out);
    if (st == QL_OK && name && tp->name && !(*name = ql_strdup(tp->name))) st = QL_ENOMEM;
    onnx__tensor_proto__free_unpacked(tp, NULL);
    if (st != QL_OK) { ql_tensor_free(*out); *out = NULL; return ql_error_prefix(st, "%s", path); }
    return QL_OK;
}
