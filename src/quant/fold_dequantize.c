/* ql_fold_dequantize: qconv2d / qlinear -> dequantize becomes one node with
 * f32 output (include/qlab/quant.h). */
#include "qlab/quant.h"
#include "graph/op.h"

// node i feeds at least one node, only dequantize nodes, and is not the output
static int read_only_by_dequantize(const ql_graph *g, int i) {
    if (g->output == i) return 0;
    int readers = 0;
    for (int j = i + 1; j < g->nnodes; j++)
        for (int k = 0; k < g->nodes[j].ninputs; k++)
            if (g->nodes[j].inputs[k] == i) {
                if (g->nodes[j].op != QL_OP_DEQUANTIZE) return 0;
                readers++;
            }
    return readers > 0;
}

ql_status ql_fold_dequantize(ql_graph *g, int *nfolded) {
    int n = 0;
    for (int i = 1; i < g->nnodes; i++) {
        ql_node *p = &g->nodes[i];
        if ((p->op != QL_OP_QCONV2D && p->op != QL_OP_QLINEAR) || p->a.f32_out || !read_only_by_dequantize(g, i))
            continue;
        for (int j = g->nnodes - 1; j > i; j--)   // from the back: removing j keeps lower indices
            if (g->nodes[j].op == QL_OP_DEQUANTIZE && g->nodes[j].inputs[0] == i) QL_TRY(ql_graph_remove(g, j, i));
        p = &g->nodes[i];
        p->a.f32_out = 1;
        p->out_dtype = QL_DTYPE_F32;
        p->out_scale = 1.0f;
        p->out_zero = 0;
        p->out_qmin = 0;
        p->out_qmax = 255;
        n++;
    }
    if (n) g->version++;   /* packed kernels are rebuilt for the f32 epilogue */
    if (nfolded) *nfolded = n;
    return QL_OK;
}
