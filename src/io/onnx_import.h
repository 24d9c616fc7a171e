/* The ONNX importer's state, shared by onnx_import.c (values, graph, driver),
 * onnx_import_ops.c (FP32 ops) and onnx_import_q.c (QDQ and QOperator). */
#ifndef QLAB_ONNX_IMPORT_H
#define QLAB_ONNX_IMPORT_H
#include "io/onnx_internal.h"

/* How an ONNX value lies in the qlab node that holds it. */
typedef enum {
    V_PLAIN = 0,   /* ONNX (N, d...) = qlab (N, d...) */
    V_NCHW,        /* ONNX (N,C,H,W), qlab (N,H,W,C) */
    V_C11,         /* ONNX (N,C,1,1), qlab (N,C): a global average pool's output */
    V_TNF,         /* ONNX (T,N,F), qlab (N,T,F): a batch-first sequence seen time-major */
    V_LSTMY,       /* ONNX LSTM Y (T,1,N,H), qlab (N,T,H) */
    V_H1N,         /* ONNX LSTM Y_h (1,N,H): the last step of a qlab lstm node */
} onnx_vkind;

typedef struct {
    const char *name;      /* borrowed from the model */
    int node;              /* qlab node holding the value; -1 for a constant */
    onnx_vkind kind;
    ql_tensor *cst;        /* a constant (ONNX layout, owned); f32 for a dequantized one */
    int dq;                /* DequantizeLinear of the u8 node `node`: f32 made on demand */
    int fnode;             /* dq: the dequantize node once made, else -1 */
    int bias_free;         /* a linear made from MatMul, bias still zero: a following Add may fill it */
    /* DequantizeLinear of a constant: the integer tensor and its qparams (owned) */
    ql_tensor *q, *qscale, *qzero;
    int qaxis;
} onnx_val;

typedef struct {
    const Onnx__GraphProto *gp;
    int64_t opset;
    ql_graph *g;
    onnx_val *v;
    int nv, cap;
    const Onnx__NodeProto *cur;   /* the node being imported */
    int *uses;                    /* [nv]: how many node inputs read the value */
    unsigned char *done;          /* [gp->n_node]: imported (or folded into an earlier node) */
    int simulate;                 /* no QDQ fusion onto INT8 nodes */
} onnx_imp;

onnx_val *imp_find(onnx_imp *c, const char *name);
/* The value of input k of the current node; error when absent or unknown. */
ql_status imp_in(onnx_imp *c, int k, onnx_val **out);
/* Input k as a constant, or NULL (absent, empty name, not constant). */
const ql_tensor *imp_const(onnx_imp *c, int k);
int imp_has_in(const onnx_imp *c, int k);
/* Defines output k of the current node (NULL with the error set: a value
 * defined twice). imp_out_const takes ownership of t (freed on error). */
onnx_val *imp_out(onnx_imp *c, int k, int node, onnx_vkind kind);
onnx_val *imp_out_const(onnx_imp *c, int k, ql_tensor *t);
/* Adds a qlab node named after base (made unique); -1 with the error naming the ONNX node. */
int imp_add(onnx_imp *c, const char *base, ql_op_type op, const int *in, int nin, const ql_attrs *a);
/* The qlab node holding v as f32 (a dequantize is made for a dq value); -1 on error. */
int imp_f32(onnx_imp *c, onnx_val *v);
/* strides, pads (symmetric), dilations, auto_pad of the current conv / pool on input node in. */
ql_status imp_window(onnx_imp *c, const ql_node *in, int has_dil, ql_attrs *a);
/* Copies a float constant into a parameter (sizes must match). */
ql_status imp_copy_f32(onnx_imp *c, ql_param *p, const ql_tensor *t, const char *what);
/* "input 'x' must be <what>" unless v is a computed value of layout k. */
ql_status imp_need_kind(onnx_imp *c, const onnx_val *v, onnx_vkind k, const char *what);
/* LSTM, Identity / Dropout, Transpose, Squeeze, Gather (onnx_import_seq.c). */
ql_status imp_op_lstm(onnx_imp *c);
ql_status imp_op_identity(onnx_imp *c);
ql_status imp_op_transpose(onnx_imp *c);
ql_status imp_op_squeeze(onnx_imp *c);
ql_status imp_op_gather(onnx_imp *c);
/* Base name of a node: its weight's name without ".weight", else the ONNX node name, else "op_index". */
const char *imp_base(onnx_imp *c, const char *weight, char *buf, size_t len);
ql_status imp_unsupported(onnx_imp *c, const char *why);
/* The single consumer of value name (index into gp->node), -1 if none or several or a graph output. */
int imp_sole_consumer(onnx_imp *c, const char *name);

static inline int64_t imp_numel(const ql_node *n) { return ql_shape_numel(n->out_ndim, n->out_shape); }

typedef ql_status (*imp_fn)(onnx_imp *c);

/* ---- shared by onnx_import_q.c (QDQ) and onnx_import_qop.c (QOperator) ---- */
/* The end of a fused pattern: [bias Add] [Relu | Clip] QuantizeLinear. */
typedef struct {
    int act;                       /* QL_ACT_* folded from a Relu / Clip before the Q */
    const Onnx__NodeProto *q;      /* the QuantizeLinear closing the pattern; NULL: a float tail
                                      (conv / linear with f32 output, attr f32_out) */
    int chain[4], nchain;          /* gp->node indices taken */
    const ql_tensor *bias;         /* MatMul: the Add's constant */
    float s;
    int32_t z, lo, hi;
} imp_qtail;
/* Per-tensor uint8 activation qparams from inputs ks / kz of the current node (zero point absent = 0). */
ql_status imp_act_qparams(onnx_imp *c, int ks, int kz, float *s, int32_t *z);
void imp_set_out(ql_node *n, float s, int32_t z, int32_t lo, int32_t hi);
/* The u8 node behind v (read through DequantizeLinear, or directly when direct_ok), else -1. */
int imp_u8_node(onnx_imp *c, const onnx_val *v, int direct_ok);
/* An int8 dq-constant with zero points 0, per tensor or per channel along oaxis. */
int imp_s8_weight(const onnx_val *w, int oaxis);
void imp_fill_scales(float *dst, const ql_tensor *s, int64_t n);
/* qlinear from u8 node u and weight w (B (out,in) with trans_b, else (in,out)); closes t. */
ql_status imp_fuse_linear(onnx_imp *c, int u, const onnx_val *w, int trans_b, const ql_tensor *b, const imp_qtail *t);
/* QuantizeLinear / DequantizeLinear handlers (onnx_import_q.c); NULL for other ops. */
imp_fn imp_qdq_handler(const char *op, const char *domain);
/* Handlers: FP32 (onnx_import_ops.c), then quantized (onnx_import_q.c, onnx_import_qop.c). NULL when unknown. */
imp_fn imp_fp32_handler(const char *op, const char *domain);
imp_fn imp_q_handler(const char *op, const char *domain);
/* Constant folding of shape arithmetic (onnx_import_fold.c): 1 when it took the node. */
int imp_try_fold(onnx_imp *c, ql_status *st);
/* A Clip that is the narrowed code range of the QuantizeLinear after it (onnx_import_q.c). */
int imp_narrow_clip(onnx_imp *c, const Onnx__NodeProto *n);
/* Q patterns tried before the FP32 handler: returns 1 when it imported the node (status in *st). */
int imp_try_fused(onnx_imp *c, ql_status *st);

#endif
