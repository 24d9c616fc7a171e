/* MACs per image and planned activation bytes, from the graph alone. */
#include "qlab/alloc.h"
#include "qlab/graphstats.h"
#include "graph/op.h"

static int64_t spatial(const ql_node *n) {   // H*W of an {H,W,C} output
    return n->out_ndim == 3 ? n->out_shape[0] * n->out_shape[1] : 1;
}

int64_t ql_node_macs(const ql_graph *g, int i, ql_macs_kind *kind) {
    const ql_node *n = &g->nodes[i];
    const ql_attrs *a = &n->a;
    ql_macs_kind k = QL_MACS_NONE;
    int64_t m = 0;
    int groups = a->groups > 0 ? a->groups : 1;
    switch (n->op) {
    case QL_OP_QCONV2D: k = QL_MACS_INT8; /* fall through */
    case QL_OP_CONV2D: case QL_OP_CONV_BN: case QL_OP_F16CONV2D: case QL_OP_BF16CONV2D:
        if (!k) k = QL_MACS_F32;
        // out pixels x out channels x (in channels per group x kernel taps)
        m = spatial(n) * a->out_ch * (int64_t)(a->in_ch / groups) * a->kernel[0] * a->kernel[1];
        break;
    case QL_OP_QLINEAR: case QL_OP_DLINEAR: k = QL_MACS_INT8; /* fall through */
    case QL_OP_LINEAR: case QL_OP_F16LINEAR: case QL_OP_BF16LINEAR:
        if (!k) k = QL_MACS_F32;
        m = ql_node_numel(n) * (int64_t)a->in_ch;   // rows x out x in
        break;
    case QL_OP_DLSTM: k = QL_MACS_INT8; /* fall through */
    case QL_OP_LSTM: case QL_OP_F16LSTM: case QL_OP_BF16LSTM: {
        if (!k) k = QL_MACS_F32;
        int64_t t = n->out_shape[0], h = a->out_ch, h4 = 4 * h;
        for (int l = 0; l < (a->layers > 0 ? a->layers : 1); l++)
            m += t * h4 * ((l ? h : a->in_ch) + h);   // input and recurrent products per step
        break;
    }
    default: break;
    }
    if (kind) *kind = m ? k : QL_MACS_NONE;
    return m;
}

int64_t ql_graph_macs(const ql_graph *g, int64_t *by_kind) {
    int64_t total = 0;
    if (by_kind) for (int k = 0; k < QL_MACS_KINDS; k++) by_kind[k] = 0;
    for (int i = 1; i < g->nnodes; i++) {
        ql_macs_kind k;
        int64_t m = ql_node_macs(g, i, &k);
        total += m;
        if (by_kind) by_kind[k] += m;
    }
    return total;
}

/* Over the outputs along one dimension: the taps of a k-wide kernel
 * (stride st, padding pad, dilation dil) that land inside [0, in). */
static int64_t live_taps(int64_t in, int64_t out, int k, int st, int pad, int dil) {
    int64_t sum = 0;
    for (int64_t o = 0; o < out; o++)
        for (int t = 0; t < k; t++) {
            int64_t pos = o * st - pad + (int64_t)t * dil;
            sum += pos >= 0 && pos < in;
        }
    return sum;
}

int64_t ql_node_live_macs(const ql_graph *g, int i) {
    const ql_node *n = &g->nodes[i];
    const ql_attrs *a = &n->a;
    int64_t m = ql_node_macs(g, i, NULL);
    int conv = n->op == QL_OP_QCONV2D || n->op == QL_OP_CONV2D || n->op == QL_OP_CONV_BN ||
               n->op == QL_OP_F16CONV2D || n->op == QL_OP_BF16CONV2D;
    if (!m || !conv || n->ninputs < 1 || n->out_ndim != 3) return m;
    const ql_node *in = &g->nodes[n->inputs[0]];
    if (in->out_ndim != 3) return m;
    int groups = a->groups > 0 ? a->groups : 1;
    int64_t th = live_taps(in->out_shape[0], n->out_shape[0], a->kernel[0], a->stride[0], a->padding[0],
                           a->dilation[0] > 0 ? a->dilation[0] : 1);
    int64_t tw = live_taps(in->out_shape[1], n->out_shape[1], a->kernel[1], a->stride[1], a->padding[1],
                           a->dilation[1] > 0 ? a->dilation[1] : 1);
    return th * tw * a->out_ch * (int64_t)(a->in_ch / groups);
}

int64_t ql_graph_live_macs(const ql_graph *g, int64_t *by_kind) {
    int64_t total = 0;
    if (by_kind) for (int k = 0; k < QL_MACS_KINDS; k++) by_kind[k] = 0;
    for (int i = 1; i < g->nnodes; i++) {
        ql_macs_kind k;
        ql_node_macs(g, i, &k);
        int64_t m = ql_node_live_macs(g, i);
        total += m;
        if (by_kind) by_kind[k] += m;
    }
    return total;
}

/* The inference plan of graph_exec.c (plan_forward): nodes that feed the
 * output live from their own step to their last consumer; the output node
 * to the end; the input is the caller's tensor. */
int64_t ql_graph_plan_bytes(const ql_graph *g, int64_t batch) {
    int nn = g->nnodes;
    if (nn < 1 || batch < 1) return 0;
    size_t n = (size_t)nn;
    int *start = ql_malloc(n * sizeof(int)), *end = ql_malloc(n * sizeof(int)), *slot = ql_malloc(n * sizeof(int));
    int *cmax = ql_malloc(n * sizeof(int));
    int64_t *size = ql_calloc(n * sizeof(int64_t)), *slot_size = ql_calloc(n * sizeof(int64_t));
    int64_t *slot_bytes = ql_calloc(n * sizeof(int64_t));
    unsigned char *needed = ql_calloc(n), *busy = ql_calloc(n);
    int64_t total = -1;
    if (start && end && slot && cmax && size && slot_size && slot_bytes && needed && busy) {
        needed[g->output] = 1;
        for (int j = nn - 1; j >= 0; j--) {
            cmax[j] = -1;
            if (needed[j]) for (int k = 0; k < g->nodes[j].ninputs; k++) needed[g->nodes[j].inputs[k]] = 1;
        }
        for (int j = 0; j < nn; j++)
            if (needed[j])
                for (int k = 0; k < g->nodes[j].ninputs; k++)
                    if (cmax[g->nodes[j].inputs[k]] < j) cmax[g->nodes[j].inputs[k]] = j;
        for (int i = 0; i < nn; i++) {
            start[i] = -1;
            end[i] = (g->keep_all || i == g->output) ? nn : cmax[i];
            if (!needed[i] || i == 0) continue;
            start[i] = i;
            size[i] = ql_node_numel(&g->nodes[i]);
        }
        int nslots = ql_plan_slots(nn, nn, start, end, size, slot, slot_size, busy);
        for (int i = 0; i < nn; i++) {
            if (slot[i] < 0) continue;
            int64_t b = size[i] * batch * (int64_t)ql_dtype_size(g->nodes[i].out_dtype);
            if (b > slot_bytes[slot[i]]) slot_bytes[slot[i]] = b;
        }
        total = 0;
        for (int s = 0; s < nslots; s++) total += slot_bytes[s];
    }
    void *all[] = {start, end, slot, cmax, size, slot_size, slot_bytes, needed, busy};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) ql_free(all[i]);
    return total;
}
