/* prepare: record each node's plan and put observers where convert will
 * need quantization parameters; calibrate: run data through them. */
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/dataset.h"
#include "qlab/quant.h"
#include "graph/op.h"

int ql_quant_supported(ql_op_type op) {
    switch (op) {
    case QL_OP_CONV2D: case QL_OP_LINEAR: case QL_OP_ADD: case QL_OP_MAXPOOL2D:
    case QL_OP_GLOBAL_AVGPOOL: case QL_OP_RELU: case QL_OP_RELU6: case QL_OP_FLATTEN:
        return 1;
    default:
        return 0;
    }
}

int ql_quant_passthrough(ql_op_type op) {
    return op == QL_OP_MAXPOOL2D || op == QL_OP_RELU || op == QL_OP_RELU6 || op == QL_OP_FLATTEN;
}

static int planned(const ql_node *n) { return n->plan.mode == QL_QMODE_INT8 && ql_quant_supported(n->op); }

static ql_status check_plan(const ql_node *n) {
    const ql_qplan *p = &n->plan;
    if (p->act.dtype != QL_DTYPE_U8)
        return ql_error(QL_EINVAL, "node '%s': activations must be u8 for the INT8 kernels, got %s", n->name,
                        ql_dtype_name(p->act.dtype));
    if (p->act.per_channel)
        return ql_error(QL_EINVAL, "node '%s': activations are quantized per tensor", n->name);
    int weighted = n->op == QL_OP_CONV2D || n->op == QL_OP_LINEAR;
    if (weighted && (p->weight.dtype != QL_DTYPE_S8 || !p->weight.symmetric))
        return ql_error(QL_EINVAL, "node '%s': weights must be s8 symmetric for the INT8 kernels", n->name);
    return QL_OK;
}

static ql_status add_observer(ql_node *n, const ql_observer_opts *o) {
    if (n->obs) return QL_OK;
    if (!(n->obs = ql_observer_new(o))) return ql_error_prefix(QL_EINVAL, "node '%s'", n->name);
    return QL_OK;
}

ql_status ql_prepare(ql_graph *g, const ql_qplan *plans) {
    for (int i = 1; i < g->nnodes; i++) {
        ql_node *n = &g->nodes[i];
        n->plan = plans[i];
        if (planned(n)) QL_TRY(check_plan(n));
    }
    for (int i = 0; i < g->nnodes; i++) { ql_observer_free(g->nodes[i].obs); g->nodes[i].obs = NULL; }
    for (int i = 1; i < g->nnodes; i++) {
        ql_node *n = &g->nodes[i];
        if (!planned(n)) continue;
        if (!ql_quant_passthrough(n->op)) QL_TRY(add_observer(n, &n->plan.act));
        /* an FP32 producer feeding a quantized node gets a quantize: it needs qparams */
        for (int k = 0; k < n->ninputs; k++) {
            ql_node *p = &g->nodes[n->inputs[k]];
            if (!planned(p)) QL_TRY(add_observer(p, &n->plan.act));
        }
    }
    ql_graph_release(g);
    return QL_OK;
}

int ql_is_prepared(const ql_graph *g) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].obs || ql_plan_half_dtype(&g->nodes[i]) != QL_DTYPE_F32) return 1;   /* f16/bf16 plans need no observer */
    return 0;
}

ql_observer *ql_node_observer(ql_graph *g, int i) {
    while (i > 0 && !g->nodes[i].obs && planned(&g->nodes[i]) && ql_quant_passthrough(g->nodes[i].op))
        i = g->nodes[i].inputs[0];
    return (i >= 0 && i < g->nnodes) ? g->nodes[i].obs : NULL;
}

ql_status ql_set_node_observer(ql_graph *g, int i, const ql_observer *o) {
    if (i < 0 || i >= g->nnodes) return ql_error(QL_EINVAL, "set_observer: no node %d", i);
    while (i > 0 && !g->nodes[i].obs && planned(&g->nodes[i]) && ql_quant_passthrough(g->nodes[i].op))
        i = g->nodes[i].inputs[0];
    if (!g->nodes[i].obs) return ql_error(QL_ESTATE, "set_observer: node '%s' has no observer", g->nodes[i].name);
    ql_observer *c = ql_observer_clone(o);
    if (!c) return QL_ENOMEM;
    ql_observer_free(g->nodes[i].obs);
    g->nodes[i].obs = c;
    return QL_OK;
}

ql_status ql_calibrate(ql_graph *g, ql_loader *ld, int64_t max_batches, const ql_progress *p) {
    if (!ql_is_prepared(g)) return ql_error(QL_ESTATE, "calibrate: the model is not prepared (call prepare first)");
    int64_t nb = ql_loader_num_batches(ld);
    if (max_batches > 0 && max_batches < nb) nb = max_batches;
    ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 0, NULL), *y = ql_tensor_new(QL_DTYPE_S32, 0, NULL);
    ql_status st = (x && y) ? QL_OK : QL_ENOMEM;
    ql_loader_reset(ld);
    g->observe = 1;
    for (int64_t b = 0; b < nb && st == QL_OK; b++) {
        int r = ql_loader_next(ld, x, y);
        if (r < 0) { st = QL_ENOMEM; break; }
        if (r == 0) break;
        const ql_tensor *out;
        st = ql_graph_forward(g, x, &out, 0);
        if (st == QL_OK && ql_progress_report(p, b + 1, nb, "calibrating")) st = ql_error(QL_ECANCEL, "calibration cancelled");
    }
    g->observe = 0;
    ql_tensor_free(x);
    ql_tensor_free(y);
    return st;
}

ql_status ql_copy_observers(ql_graph *dst, ql_graph *src, int *nmissing) {
    int missing = 0;
    for (int i = 0; i < dst->nnodes; i++) {
        ql_node *n = &dst->nodes[i];
        if (!n->obs) continue;
        int j = ql_graph_find(src, n->name);
        ql_observer *o = j >= 0 ? ql_node_observer(src, j) : NULL;
        if (!o || ql_observer_count(o) == 0) { missing++; continue; }
        ql_observer *c = ql_observer_clone(o);
        if (!c) return QL_ENOMEM;
        ql_observer_free(n->obs);
        n->obs = c;
    }
    if (nmissing) *nmissing = missing;
    return QL_OK;
}
