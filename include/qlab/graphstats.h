/* Static figures of a graph, from node attributes and per-sample shapes:
 * multiply-accumulates per image and the bytes of the planned activation
 * buffers that inference allocates (the same plan as graph_exec.c). */
#ifndef QLAB_GRAPHSTATS_H
#define QLAB_GRAPHSTATS_H
#include "graph.h"

/* Which arithmetic carries a node's MACs, hence which measured peak bounds it. */
typedef enum {
    QL_MACS_NONE = 0,   /* no multiply-accumulates (pools, adds, activations, shape) */
    QL_MACS_F32,        /* f32 FMA: conv / linear / lstm, and f16 / bf16 weights widened to f32 */
    QL_MACS_INT8,       /* u8 x s8 -> s32: static qconv / qlinear, dynamic linear / lstm */
    QL_MACS_KINDS
} ql_macs_kind;

/* MACs of node i for one image (0 for ops without a weight product). */
int64_t ql_node_macs(const ql_graph *g, int i, ql_macs_kind *kind);
/* Sum over the graph; by_kind[QL_MACS_KINDS] (may be NULL) splits it. */
int64_t ql_graph_macs(const ql_graph *g, int64_t *by_kind);
/* The same counting only the taps that read the image, not its padding:
 * what a conv cannot skip (qlab's convs skip the rest from a batch of 8,
 * ops/conv_regions.h). On small images far fewer: ResNet-18 on 28x28 has
 * 33.01 M MACs per image and 17.86 M live ones. */
int64_t ql_node_live_macs(const ql_graph *g, int i);
int64_t ql_graph_live_macs(const ql_graph *g, int64_t *by_kind);
/* Bytes of the activation slots one inference forward at this batch size
 * holds at once (slots are shared by f32 and u8 outputs; each is as large as
 * the largest output placed in it). The caller's input is viewed, not copied. */
int64_t ql_graph_plan_bytes(const ql_graph *g, int64_t batch);

#endif
