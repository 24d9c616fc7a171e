/* Inside the graph engine: the per-op table (shape inference, parameters,
 * forward, backward) and the helpers the op files share. Not public: the
 * rest of qlab talks to graphs through include/qlab/graph.h. */
#ifndef QLAB_GRAPH_OP_H
#define QLAB_GRAPH_OP_H
#include <stddef.h>
#include "qlab/graph.h"
#include "qlab/ops.h"

/* One node's call: inputs, output and (backward) gradients, all batch-first. */
typedef struct {
    ql_graph *g;
    ql_node *n;
    int64_t batch;                       /* N */
    int training;                        /* forward: batch statistics, keep caches */
    const ql_tensor *x[QL_MAX_INPUTS];   /* inputs (N, per-sample shape) */
    ql_tensor *y;                        /* output, already sized (N, out_shape) */
    const float *dy;                     /* backward: (N, out_shape) */
    float *dx[QL_MAX_INPUTS];            /* backward: OVERWRITTEN; NULL = not needed */
    /* Inference fusion (graph_exec.c): a batchnorm2d node to apply to a conv's
     * output, and an activation (QL_ACT_*) to apply after it; conv2d and add. */
    const ql_node *bn;
    int act;
} ql_op_ctx;

typedef struct {
    int min_inputs, max_inputs;
    /* Validates n->a against the inputs' per-sample shapes, fills what is
     * inferred (in_ch ...) and sets n->out_ndim/out_shape. Errors name the node. */
    ql_status (*infer)(ql_node *n, const ql_node *const *in);
    /* Creates n->params (PyTorch names and layouts); NULL = no parameters. */
    ql_status (*make_params)(ql_node *n);
    ql_status (*forward)(ql_op_ctx *c);
    /* Writes c->dx[k] (when not NULL) and accumulates parameter grads (when allocated). */
    ql_status (*backward)(ql_op_ctx *c);
    /* Frees n->priv; NULL = a single ql_malloc'ed block. */
    void (*free_priv)(void *priv);
} ql_op_def;

const ql_op_def *ql_op_def_get(ql_op_type op);   /* NULL for an op without a table entry */

extern const ql_op_def ql_op_input_def, ql_op_conv2d_def, ql_op_batchnorm2d_def,
    ql_op_relu_def, ql_op_relu6_def, ql_op_maxpool2d_def, ql_op_avgpool2d_def,
    ql_op_global_avgpool_def, ql_op_linear_def, ql_op_add_def, ql_op_flatten_def,
    ql_op_lstm_def, ql_op_seq_last_def, ql_op_quantize_def, ql_op_dequantize_def,
    ql_op_qconv2d_def, ql_op_qlinear_def, ql_op_qadd_def, ql_op_qmaxpool2d_def,
    ql_op_qglobal_avgpool_def, ql_op_qrelu_def, ql_op_qflatten_def, ql_op_fakequant_def,
    ql_op_conv_bn_def,
    ql_op_dlinear_def, ql_op_dlstm_def, ql_op_f16linear_def, ql_op_f16conv2d_def, ql_op_f16lstm_def,
    ql_op_bf16linear_def, ql_op_bf16conv2d_def, ql_op_bf16lstm_def;

/* Appends parameter "<node>.<suffix>", zero-filled, F32. */
ql_status ql_node_add_param(ql_node *n, const char *suffix, int ndim, const int64_t *shape,
                            int trainable);
ql_status ql_node_add_param_dtype(ql_node *n, const char *suffix, ql_dtype dtype, int ndim,
                                  const int64_t *shape, int trainable);
/* Applies a fused activation (QL_ACT_*) in place, and its backward on dy
 * given the activated output y (dy masked in place). */
void ql_act_forward(int act, int64_t n, float *y);
void ql_act_backward(int act, int64_t n, const float *y, float *dy_inout);
ql_status ql_node_add_param_dtype(ql_node *n, const char *suffix, ql_dtype dtype, int ndim,
                                  const int64_t *shape, int trainable);
/* Applies a fused activation (QL_ACT_*) in place, and its backward on dy
 * given the activated output y (dy masked in place). */
void ql_act_forward(int act, int64_t n, float *y);
void ql_act_backward(int act, int64_t n, const float *y, float *dy_inout);
/* QAT weight fake-quant state (qat_weight.c): qparams of the last forward. */
typedef struct {
    int active, oc;
    int64_t per;
    float *scale;
    int32_t *zp;
    int32_t qmin, qmax;
} ql_wfq;
/* w (OC, per) -> out = fq(w) with n->wobs (observed first when training and
 * not frozen); a plain copy when the node has no weight observer, fake-quant
 * is off, or nothing was observed yet (st->active = 0). out may equal w. */
ql_status ql_qat_weight_forward(ql_node *n, int training, const float *w, int oc, int64_t per, float *out,
                                ql_wfq *st);
/* dw (OC, per) masked in place: straight-through inside the range (w is the unquantized weight). */
void ql_qat_weight_backward(const ql_wfq *st, const float *w, float *dw);
void ql_wfq_free(ql_wfq *st);

/* Frees n->priv (op caches, packed weights); they are rebuilt on demand. */
void ql_node_free_priv(ql_node *n);

/* Graph-owned scratch of at least n floats, valid until the next call
 * (grows, never shrinks: no allocation in steady state). NULL on ENOMEM. */
float *ql_graph_scratch(ql_graph *g, size_t n);
/* Floats the scratch holds now (>= any n asked since it last grew). */
size_t ql_graph_scratch_size(const ql_graph *g);
void   ql_runtime_free(ql_runtime *rt);

/* Memory planning (graph_plan.c): item i lives from step start[i] to step
 * end[i] inclusive (start < 0: not planned) and needs size[i] units. Items
 * share slots when their lives do not overlap; a slot freed at step t is
 * reusable from step t+1, so an output never aliases the inputs it reads.
 * Best fit; slot_size[] = the largest item per slot. Returns the slot count.
 * busy: scratch of nitems bytes; slot_size: room for nitems. */
int ql_plan_slots(int nitems, int nsteps, const int *start, const int *end,
                  const int64_t *size, int *slot, int64_t *slot_size, unsigned char *busy);

/* kernel >= 1, stride >= 1, padding >= 0, dilation >= 1 (or == 1 when the
 * op has none); errors name the node and the attribute. */
ql_status ql_check_window(const ql_node *n, int has_dilation);
/* "node 'x': op expects an {H,W,C} input, got (..) from 'y'" unless in is rank 3. */
ql_status ql_check_image(const ql_node *n, const ql_node *in);

/* Taps of a conv that read only padding for every output pixel can be
 * dropped (a 3x3 conv on a 1x1 map is a 1x1 conv). Returns 1 when that
 * shrinks the kernel, with the first kept taps and the equivalent shape in
 * *out (which may alias s); 0 otherwise (out untouched). */
int ql_conv_prune_taps(const ql_conv2d_shape *s, int *kh0, int *kw0, ql_conv2d_shape *out);
/* params[k] is an s8 weight followed by its per-channel scale and zero point:
 * the INT8 kernels need zero points 0 and scales > 0 (an error names the row). */
ql_status ql_check_symmetric_weight(const ql_node *n, int k);
/* Parameters of an INT8 linear (static or dynamic): weight (out,in) s8, weight_scale (out) f32,
 * weight_zero_point (out) s32, bias (out) f32 when the node has one. */
ql_status ql_s8_linear_params(ql_node *n);
/* The conv geometry of a conv-like node (attrs a) on input x (N,H,W,C), for `batch` images. */
ql_status ql_conv_shape_of(const ql_attrs *a, const ql_tensor *x, int64_t batch, ql_conv2d_shape *s);
/* OIHW weights of s (elements of es bytes) -> OHWI of the taps [kh0, kh0+kh) x [kw0, kw0+kw):
 * the kernels' layout, restricted to the taps ql_conv_prune_taps kept. */
void ql_conv_weight_live_ohwi(const void *oihw, size_t es, const ql_conv2d_shape *s, int kh0, int kw0,
                              int kh, int kw, void *ohwi);

/* Element count of the per-sample shape. */
static inline int64_t ql_node_numel(const ql_node *n) {
    int64_t k = 1;
    for (int i = 0; i < n->out_ndim; i++) k *= n->out_shape[i];
    return k;
}

#endif
