/* The ONNX exporter's builder, shared by onnx_export.c (graph, FP32 nodes)
 * and onnx_export_q.c (quantized nodes in QDQ form). Every allocation goes
 * to one list freed at the end. */
#ifndef QLAB_ONNX_EXPORT_H
#define QLAB_ONNX_EXPORT_H
#include "io/onnx_internal.h"

typedef struct {
    void **mem;                     /* everything allocated for the model */
    int nmem, capmem;
    Onnx__NodeProto **node;
    int nnode, capnode;
    Onnx__TensorProto **init;
    int ninit, capinit;
    int oom;
    const ql_graph *g;
    char **vname;                   /* [nnodes] ONNX name of each qlab node's value */
    int clip_narrow;                /* a Clip before the QuantizeLinear of a narrowed code range */
    const char **qscale, **qzero;   /* [nnodes] initializers of a u8 value's qparams, made on first use */
} onnx_ex;

void *ex_alloc(onnx_ex *e, size_t n);          /* zeroed; NULL sets e->oom */
char *ex_str(onnx_ex *e, const char *s);
char *ex_fmt(onnx_ex *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A node op(in...) -> out...; inputs/outputs are copied. */
Onnx__NodeProto *ex_node(onnx_ex *e, const char *op, const char *name, const char *const *in, int nin,
                         const char *const *out, int nout);
void ex_attr_int(onnx_ex *e, Onnx__NodeProto *n, const char *name, int64_t v);
void ex_attr_float(onnx_ex *e, Onnx__NodeProto *n, const char *name, float v);
void ex_attr_ints(onnx_ex *e, Onnx__NodeProto *n, const char *name, const int64_t *v, int k);
/* An initializer of ONNX type dt (raw little-endian data, elem bytes each); returns its name. */
const char *ex_init(onnx_ex *e, const char *name, int dt, int ndim, const int64_t *dims, const void *data, size_t elem);
const char *ex_init_f32(onnx_ex *e, const char *name, int ndim, const int64_t *dims, const float *data);
const char *ex_scalar_f32(onnx_ex *e, const char *name, float v);
const char *ex_scalar_u8(onnx_ex *e, const char *name, uint8_t v);
const char *ex_i64s(onnx_ex *e, const char *name, int n, const int64_t *v);   /* 1-D int64 */
/* Relu / Clip(0,6) of x into out for a fused activation; returns 0 when act is none. */
void ex_act(onnx_ex *e, int act, const char *name, const char *x, const char *out);

/* kernel_shape, strides, pads, dilations, group of a conv-like node. */
void ex_conv_attrs(onnx_ex *e, Onnx__NodeProto *n, const ql_attrs *a);

/* A quantized node i (onnx_export_q.c); an error for an op without an ONNX form. */
ql_status ex_quant_node(onnx_ex *e, int i);
/* The FP32 nodes conv2d .. seq_last (onnx_export.c); also used for f32 nodes of a quantized graph. */
ql_status ex_fp32_node(onnx_ex *e, int i);

#endif
