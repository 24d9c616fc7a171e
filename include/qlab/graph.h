/* The graph IR: a model is a DAG of named nodes, each with one output.
 * nodes[] is kept in topological order; nodes[0] is the input node.
 * Shapes are per sample (no batch dim), NHWC for images: {H,W,C};
 * {T,F} for sequences; {F} for vectors.
 * Parameters carry their full PyTorch state_dict names ("layer1.0.conv1.weight")
 * and PyTorch layouts; kernels use packed copies rebuilt when g->version moves. */
#ifndef QLAB_GRAPH_H
#define QLAB_GRAPH_H
#include <stdint.h>
#include "tensor.h"
#include "rng.h"
#include "progress.h"
#include "observer.h"

typedef enum {
    QL_OP_INPUT = 0,
    QL_OP_CONV2D,
    QL_OP_BATCHNORM2D,
    QL_OP_RELU,
    QL_OP_RELU6,
    QL_OP_MAXPOOL2D,
    QL_OP_AVGPOOL2D,
    QL_OP_GLOBAL_AVGPOOL,   /* {H,W,C} -> {C} */
    QL_OP_LINEAR,           /* {F} -> {out}; also {T,F} -> {T,out} */
    QL_OP_ADD,
    QL_OP_FLATTEN,          /* {H,W,C} -> {C*H*W} in NCHW order */
    QL_OP_LSTM,             /* {T,F} -> {T,hidden} */
    QL_OP_SEQ_LAST,         /* {T,H} -> {H} */
    /* quantized ops (made by convert): u8 activations, s8 weights */
    QL_OP_QUANTIZE,         /* f32 -> u8 with the node's out_scale / out_zero */
    QL_OP_DEQUANTIZE,       /* u8 -> f32 */
    QL_OP_QCONV2D,
    QL_OP_QLINEAR,
    QL_OP_QADD,
    QL_OP_QMAXPOOL2D,       /* same qparams in and out */
    QL_OP_QGLOBAL_AVGPOOL,
    QL_OP_QRELU,            /* a clamp on the codes (act: relu / relu6) */
    QL_OP_QFLATTEN,
    /* quantization-aware training (made by prepare_qat) */
    QL_OP_FAKEQUANT,        /* f32 -> f32 quantize-dequantize with its observer, straight-through gradient */
    QL_OP_CONV_BN,          /* conv + batchnorm trained with BN folded into the fake-quantized weight */
    /* dynamic INT8 and half-precision weights (quantize_dynamic, f16 / bf16 plans): f32 in and out */
    QL_OP_DLINEAR,          /* s8 weights, input quantized to u8 per call from its own range */
    QL_OP_DLSTM,            /* s8 weights, x quantized once per layer, h per step; f32 gates */
    QL_OP_F16LINEAR,        /* f16 weights, widened inside the kernel */
    QL_OP_F16CONV2D,
    QL_OP_F16LSTM,
    QL_OP_BF16LINEAR,       /* bf16 weights (AVX-512 BF16 dot products where the CPU has them) */
    QL_OP_BF16CONV2D,
    QL_OP_BF16LSTM,
    QL_OP_COUNT
} ql_op_type;

#define QL_MAX_INPUTS 4

typedef struct {
    int kernel[2], stride[2], padding[2], dilation[2];
    int groups;
    int in_ch, out_ch;        /* conv channels; linear in/out features; lstm input/hidden */
    int bias;                 /* conv/linear/lstm have a bias */
    int layers;               /* lstm */
    float eps, momentum;      /* batchnorm (PyTorch defaults 1e-5, 0.1) */
    int ceil_mode, count_include_pad;
    int act;                  /* fused activation of conv2d / linear / add (QL_ACT_*) */
    int f32_out;              /* qconv2d / qlinear: f32 output straight from the s32 accumulator */
} ql_attrs;

enum { QL_ACT_NONE = 0, QL_ACT_RELU = 1, QL_ACT_RELU6 = 2 };

/* Sensible defaults: stride 1, dilation 1, groups 1, bias 1, eps 1e-5,
 * momentum 0.1, count_include_pad 1, layers 1. */
void ql_attrs_default(ql_attrs *a);

typedef struct {
    char *name;           /* full state_dict name */
    ql_tensor *value;     /* PyTorch layout */
    ql_tensor *grad;      /* same shape, NULL until ql_graph_alloc_grads */
    int trainable;        /* 0 for buffers such as running_mean */
} ql_param;

/* How prepare wants a node quantized, and what convert turns it into. */
typedef enum {
    QL_QMODE_NONE = 0,      /* stays FP32 */
    QL_QMODE_INT8,          /* static: u8 activations, s8 (2..8-bit) weights */
    QL_QMODE_F16,           /* conv / linear / lstm weights stored f16, f32 activations (no observers) */
    QL_QMODE_BF16,          /* the same with bf16 weights */
} ql_qmode;

typedef struct {
    ql_qmode mode;
    ql_observer_opts act;     /* activation observer */
    ql_observer_opts weight;  /* weight observer (per channel or per tensor, symmetric) */
} ql_qplan;

typedef struct ql_node {
    char *name;
    ql_op_type op;
    int ninputs;
    int inputs[QL_MAX_INPUTS];          /* indices of producer nodes (< own index) */
    ql_attrs a;
    int nparams;
    ql_param *params;
    int out_ndim;
    int64_t out_shape[QL_MAX_DIMS];     /* per sample */
    char precision[8];                  /* "f32", "int8", "w4a8", "u8" ... */
    void *priv;                         /* op-private state (packed weights, saved stats) */
    ql_dtype out_dtype;                 /* QL_DTYPE_F32, or QL_DTYPE_U8 for quantized ops */
    float out_scale;                    /* u8 output: x = (q - out_zero) * out_scale */
    int32_t out_zero;
    int32_t out_qmin, out_qmax;         /* u8 output codes stay in [out_qmin, out_qmax]: the observer's
                                           range (0..127 with reduce_range), 0..255 by default */
    ql_qplan plan;                      /* set by prepare */
    ql_observer *obs;                   /* prepared: observes this node's f32 output (owned) */
    ql_observer *wobs;                  /* QAT: weight observer of the weight fake-quant (owned) */
    int fq_off;                         /* QAT: fake-quant disabled on this node */
} ql_node;

typedef struct ql_runtime ql_runtime;   /* activations, workspaces (graph_exec.c) */

typedef struct ql_graph {
    int nnodes, cap;
    ql_node *nodes;
    int output;               /* index of the output node */
    uint64_t version;         /* bump after changing any parameter value */
    ql_runtime *rt;
    int profile;              /* when set, forward accumulates per-node ms */
    int observe;              /* when set, forward feeds node outputs to their observers */
    int keep_all;             /* when set, inference keeps every node's output (ql_graph_activation) */
    int no_fusion;            /* when set, inference runs every node alone (conv+bn+relu unfused) */
    int bn_frozen;            /* QAT: conv_bn nodes use running statistics and stop updating them */
    double *node_ms;          /* [nnodes], valid when profile */
} ql_graph;

const char *ql_op_name(ql_op_type op);                    /* "conv2d", "batchnorm2d", ... */
int         ql_op_from_name(const char *s, ql_op_type *out); /* 0 ok, -1 unknown */

/* A graph whose input has the given per-sample shape (node "input"). */
ql_graph *ql_graph_new(int in_ndim, const int64_t *in_shape);
void      ql_graph_free(ql_graph *g);
ql_graph *ql_graph_clone(const ql_graph *g);   /* deep copy of structure and parameters */

/* Appends a node; infers its output shape and creates its parameters
 * (zero-filled; BN weight/running_var = 1). Returns the index, or -1 with
 * the error set (unknown input, duplicate name, shape mismatch ...). */
int ql_graph_add(ql_graph *g, const char *name, ql_op_type op,
                 const int *inputs, int ninputs, const ql_attrs *a);
ql_status ql_graph_set_output(ql_graph *g, int idx);
int       ql_graph_find(const ql_graph *g, const char *name);      /* -1 if absent */
ql_param *ql_graph_param(ql_graph *g, const char *full_name);      /* NULL if absent */
int64_t   ql_graph_param_count(const ql_graph *g);                 /* trainable elements */
int64_t   ql_node_param_count(const ql_node *n);

/* PyTorch's default initialisation (kaiming_uniform(a=sqrt(5)) for conv and
 * linear weights, uniform(+-1/sqrt(fan_in)) for biases, LSTM uniform(+-1/sqrt(H))). */
void ql_graph_init_params(ql_graph *g, ql_rng *r);

/* Runs the graph on x (N, per-sample shape; any x whose per-sample element
 * count matches is viewed as the input shape). *out points to graph-owned
 * memory valid until the next call. training = 1 uses batch statistics in BN,
 * updates running stats and keeps what backward needs; training = 0 reuses
 * activation memory (buffers freed after their last consumer). */
ql_status ql_graph_forward(ql_graph *g, const ql_tensor *x, const ql_tensor **out, int training);
/* After forward(training=1): back-propagates dout (same shape as out) and
 * accumulates parameter gradients. */
ql_status ql_graph_backward(ql_graph *g, const ql_tensor *dout);
ql_status ql_graph_alloc_grads(ql_graph *g);
void      ql_graph_zero_grad(ql_graph *g);
/* Frees activations, workspaces and op-private state such as packed weights
 * (they come back on the next forward). Call it after changing nodes in place. */
void      ql_graph_release(ql_graph *g);
/* Input gradients (saliency, adversarial inputs, tests): when on, backward
 * also computes d loss / d x, readable until the next forward. */
ql_status ql_graph_set_input_grad(ql_graph *g, int on);
const ql_tensor *ql_graph_input_grad(const ql_graph *g);   /* (N, input shape) or NULL */
/* Output of node i from the last forward (training mode keeps all; inference
 * keeps only those still live). NULL if not available. */
const ql_tensor *ql_graph_activation(const ql_graph *g, int i);

/* Evaluation result of ql_evaluate. */
typedef struct {
    double top1, top5, loss;   /* top1/top5 in percent (ql_topk_row's rule), mean loss */
    int64_t n;
    int64_t ties;              /* images whose top logit is tied (logits too coarse) */
    int has_ref;               /* the fields below are set */
    double agree;              /* percent of images whose top-1 equals the reference's */
    double ref_top1;           /* the reference's own top-1 on the same images */
    int64_t ref_right_wrong;   /* images the reference gets right and the model wrong */
    int64_t ref_wrong_right;   /* and the other way round */
} ql_eval_result;

struct ql_loader;
/* ref: a reference model (the FP32 original) run on the same batches, or NULL. */
ql_status ql_evaluate(ql_graph *g, ql_graph *ref, struct ql_loader *ld, const ql_progress *p, ql_eval_result *res);

#endif
