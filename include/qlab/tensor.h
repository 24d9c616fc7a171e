/* Tensors: a dtype, a shape and a block of owned memory.
 * Activations are NHWC (N,H,W,C) for every dtype; parameters keep PyTorch's
 * layouts (conv weight OIHW, linear weight [out,in]). Quantized tensors carry
 * a per-tensor scale and zero point (per-channel parameters live in nodes). */
#ifndef QLAB_TENSOR_H
#define QLAB_TENSOR_H
#include <stdint.h>
#include <stddef.h>
#include "error.h"

typedef enum {
    QL_DTYPE_F32 = 0,
    QL_DTYPE_F16,
    QL_DTYPE_BF16,
    QL_DTYPE_U8,
    QL_DTYPE_S8,
    QL_DTYPE_S32,
    QL_DTYPE_COUNT
} ql_dtype;

#define QL_MAX_DIMS 6

typedef struct ql_tensor {
    ql_dtype dtype;
    int ndim;
    int64_t shape[QL_MAX_DIMS];
    int64_t numel;
    void *data;          /* owned, ql_malloc'ed, 64-byte aligned; NULL when numel == 0 */
    size_t capacity;     /* bytes allocated (>= numel * dtype size) */
    float scale;         /* quantized dtypes: per-tensor scale (1 otherwise) */
    int32_t zero_point;  /* quantized dtypes: per-tensor zero point */
} ql_tensor;

size_t      ql_dtype_size(ql_dtype d);
const char *ql_dtype_name(ql_dtype d);                 /* "f32", "u8", ... */
const char *ql_dtype_st_name(ql_dtype d);              /* safetensors name: "F32", "U8", "I8", "I32", "F16", "BF16" */
int         ql_dtype_from_name(const char *s, ql_dtype *out);    /* accepts both spellings; 0 ok, -1 unknown */

/* New zero-filled tensor; NULL (error set) on bad shape or no memory. */
ql_tensor *ql_tensor_new(ql_dtype d, int ndim, const int64_t *shape);
ql_tensor *ql_tensor_new4(ql_dtype d, int64_t a, int64_t b, int64_t c, int64_t e);
ql_tensor *ql_tensor_clone(const ql_tensor *t);
void       ql_tensor_free(ql_tensor *t);
/* Reshape in place, reallocating only when the byte size grows (capacity kept). */
ql_status  ql_tensor_resize(ql_tensor *t, int ndim, const int64_t *shape);
/* Same numel, new shape. */
ql_status  ql_tensor_reshape(ql_tensor *t, int ndim, const int64_t *shape);
ql_status  ql_tensor_copy(ql_tensor *dst, const ql_tensor *src);   /* same dtype and numel */
void       ql_tensor_zero(ql_tensor *t);
size_t     ql_tensor_bytes(const ql_tensor *t);
int        ql_tensor_same_shape(const ql_tensor *a, const ql_tensor *b);
/* "(2,3,4)" into buf; returns buf. */
char      *ql_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);
int64_t    ql_shape_numel(int ndim, const int64_t *shape);

static inline float *ql_f32(const ql_tensor *t) { return (float *)t->data; }

#endif
