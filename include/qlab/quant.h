/* The quantization workflow on a graph: fuse, prepare (plans and
 * observers), calibrate (data through the observers), convert (quantized
 * nodes, with quantize / dequantize inserted exactly at precision boundaries). */
#ifndef QLAB_QUANT_H
#define QLAB_QUANT_H
#include "graph.h"
#include "progress.h"

struct ql_loader;

/* Folds batchnorm into the conv before it (conv+bn), then fuses a following
 * relu / relu6 into conv, linear and add nodes (act attribute). A pattern
 * fuses only when the first node's output feeds nothing else. The fused
 * node keeps the first node's name. *nfused = nodes removed. */
ql_status ql_fuse(ql_graph *g, int *nfused);

/* Whether convert has an INT8 version of op; pass-through ops (max pool,
 * relu, flatten) reuse their input's quantization parameters. */
int ql_quant_supported(ql_op_type op);
int ql_quant_passthrough(ql_op_type op);

/* plans[i] for every node (index as in g->nodes; plans[0] is the input's and
 * ignored). Nodes whose op has no INT8 version stay FP32. Observers are put
 * on the outputs convert will need qparams for. Fails on options the kernels
 * cannot run (asymmetric weights, s8 activations). */
ql_status ql_prepare(ql_graph *g, const ql_qplan *plans);
int       ql_is_prepared(const ql_graph *g);
/* The observer that decides node i's output qparams (walking through
 * pass-through nodes), or NULL. */
ql_observer *ql_node_observer(ql_graph *g, int i);
/* Replaces the observer ql_node_observer(g, i) returns with a copy of o (e.g.
 * the same statistics choosing their range another way, ql_observer_as). */
ql_status ql_set_node_observer(ql_graph *g, int i, const ql_observer *o);

/* For every observer of dst: replaces it by a clone of the observer that
 * decides the same-named node's output in src (ql_node_observer), so a model
 * prepared with another map reuses one calibration. *nmissing = observers
 * left as they were (no such node in src, or src's never calibrated). */
ql_status ql_copy_observers(ql_graph *dst, ql_graph *src, int *nmissing);

/* Runs up to max_batches (0 = all) batches through the prepared model with
 * its observers recording. */
ql_status ql_calibrate(ql_graph *g, struct ql_loader *ld, int64_t max_batches, const ql_progress *p);

/* Replaces planned nodes by quantized ones. Errors: not prepared, never calibrated. */
ql_status ql_convert(ql_graph *g);

/* QAT (qat.c). prepare_qat: plans as for ql_prepare; conv+bn pairs become
 * conv_bn nodes, relu/relu6 fuse, weighted nodes get weight observers and a
 * fakequant node follows every value a quantized node reads. */
ql_status ql_prepare_qat(ql_graph *g, const ql_qplan *plans);
void      ql_qat_freeze_bn(ql_graph *g, int on);
void      ql_qat_freeze_observers(ql_graph *g, int on);
int       ql_qat_observers_frozen(const ql_graph *g);
void      ql_qat_enable_fake_quant(ql_graph *g, int on);
/* Before convert: conv_bn folded into conv2d, fakequant nodes removed with
 * their observers handed to the producers (a no-op on PTQ graphs). */
ql_status ql_qat_lower(ql_graph *g);

/* Fuses relu / relu6 into the conv2d / conv_bn / linear / add producing
 * them (when that output feeds nothing else and want(producer) agrees; NULL
 * = always); *nremoved = nodes removed. */
ql_status ql_fuse_acts(ql_graph *g, int (*want)(const ql_node *producer), int *nremoved);
/* Readers of node i's output, the graph output counting as one. */
int ql_graph_consumers(const ql_graph *g, int i);

/* Removes node j, giving its consumers `replacement` instead (graph.c). */
ql_status ql_graph_remove(ql_graph *g, int j, int replacement);

/* A qconv2d / qlinear read only through dequantize nodes writes f32 straight
 * from its accumulator instead (attr f32_out) and the dequantizes go: what
 * convert now does, for graphs converted before it (older .qlm files). No
 * 8-bit rounding or clipping of those values, so no ties made by it.
 * *nfolded = nodes changed. */
ql_status ql_fold_dequantize(ql_graph *g, int *nfolded);

/* ---- dynamic quantization and half-precision weights (dynamic.c) ---------- */
/* A NEW graph (g untouched) in which the nodes with node_mask[i] = 1 (NULL:
 * every node that has one) become their version for dtype:
 *   QL_DTYPE_S8:   linear -> dlinear, lstm -> dlstm (s8 weights per output
 *                  channel, activations quantized per call: precision "dyn8");
 *   QL_DTYPE_F16:  linear, conv2d, lstm -> f16linear, f16conv2d, f16lstm ("f16");
 *   QL_DTYPE_BF16: the same with bf16 weights ("bf16").
 * They take and give f32, so no quantize / dequantize is added. Errors: another
 * dtype, a masked node whose op has no such version. */
ql_status  ql_quantize_dynamic(const ql_graph *g, const int *node_mask, ql_dtype dtype, ql_graph **out);
/* The op `op` becomes for dtype, QL_OP_COUNT when none. */
ql_op_type ql_dynamic_op(ql_op_type op, ql_dtype dtype);
/* Appends to dst the converted version of n (f32 weights; same name, attrs)
 * reading dst nodes in[]. Returns its index, or -1 with the error set. */
int        ql_dynamic_add_node(ql_graph *dst, const ql_node *n, const int *in, ql_dtype dtype);
/* QL_DTYPE_F16 / QL_DTYPE_BF16 when n's plan (QL_QMODE_F16 / BF16) turns it
 * into a half-weight node at convert, else QL_DTYPE_F32. */
ql_dtype   ql_plan_half_dtype(const ql_node *n);

#endif
