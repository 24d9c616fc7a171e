/* Shared by the ONNX files (onnx_*.c): the generated protobuf-c types,
 * tensor and attribute helpers. Not public: see include/qlab/onnx.h. */
#ifndef QLAB_ONNX_INTERNAL_H
#define QLAB_ONNX_INTERNAL_H
#include "onnx.pb-c.h"
#include "qlab/onnx.h"

/* Whole file into a ql_malloc'ed buffer (ql_free it). */
ql_status onnx_read_file(const char *path, uint8_t **buf, size_t *len);

/* TensorProto -> new tensor in ONNX layout: FLOAT, DOUBLE (narrowed) -> f32;
 * UINT8 -> u8; INT8 -> s8; INT32, INT64 (range-checked), BOOL -> s32. A
 * scalar becomes a 1-element tensor of rank 1 (*scalar set when given).
 * Errors name the tensor. */
ql_status onnx_tensor_decode(const Onnx__TensorProto *tp, ql_tensor **out);
/* Element k of t as a double / int64 whatever its dtype. */
double  onnx_tensor_get(const ql_tensor *t, int64_t k);

/* Attributes of a node (NULL / def when absent). */
const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *n, const char *name);
int64_t onnx_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def);
float   onnx_attr_float(const Onnx__NodeProto *n, const char *name, float def);
/* Copies up to max ints into out; returns the count, -1 when absent. */
int     onnx_attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *out, int max);
/* The string attribute into buf (NUL-terminated, "" when absent). */
const char *onnx_attr_str(const Onnx__NodeProto *n, const char *name, char *buf, size_t len);

/* "node 'x' (Conv, opset 13): " prefix of import errors, in a static buffer per thread. */
const char *onnx_where(const Onnx__NodeProto *n, int64_t opset);

#endif
