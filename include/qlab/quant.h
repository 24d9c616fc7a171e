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

/* Runs up to max_batches (0 = all) batches through the prepared model with
 * its observers recording. */
ql_status ql_calibrate(ql_graph *g, struct ql_loader *ld, int64_t max_batches, const ql_progress *p);

/* Replaces planned nodes by quantized ones. Errors: not prepared, never calibrated. */
ql_status ql_convert(ql_graph *g);

/* Removes node j, giving its consumers `replacement` instead (graph.c). */
ql_status ql_graph_remove(ql_graph *g, int j, int replacement);

#endif
