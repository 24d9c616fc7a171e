/* Fusion on the FP32 graph: conv+bn folding, then relu/relu6 into the
 * producing conv / linear / add. Fused results equal the unfused ones up to
 * float rounding; the INT8 kernels then clamp in the requantization. */
#include <math.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/ops.h"
#include "qlab/quant.h"
#include "graph/op.h"

int ql_graph_consumers(const ql_graph *g, int i) {
    int c = g->output == i;
    for (int j = i + 1; j < g->nnodes; j++)
        for (int k = 0; k < g->nodes[j].ninputs; k++) c += g->nodes[j].inputs[k] == i;
    return c;
}

static ql_param *param(ql_node *n, const char *suffix) {
    size_t ln = strlen(n->name);
    for (int k = 0; k < n->nparams; k++)
        if (!strncmp(n->params[k].name, n->name, ln) && n->params[k].name[ln] == '.' &&
            !strcmp(n->params[k].name + ln + 1, suffix))
            return &n->params[k];
    return NULL;
}

/* w' = w * g/sqrt(v+eps) per output channel; b' = (b - m) * g/sqrt(v+eps) + beta */
static ql_status fold_bn(ql_node *conv, ql_node *bn) {
    if (!conv->a.bias) {
        int64_t s[1] = {conv->a.out_ch};
        QL_TRY(ql_node_add_param(conv, "bias", 1, s, 1));
        conv->a.bias = 1;
    }
    ql_param *w = param(conv, "weight"), *b = param(conv, "bias");
    ql_param *gm = param(bn, "weight"), *bt = param(bn, "bias"), *rm = param(bn, "running_mean"),
             *rv = param(bn, "running_var");
    if (!w || !b || !gm || !bt || !rm || !rv) return ql_error(QL_ESTATE, "fuse: '%s' or '%s' lacks a parameter", conv->name, bn->name);
    int oc = conv->a.out_ch;
    float *W = ql_f32(w->value), *B = ql_f32(b->value);
    ql_batchnorm_fold(oc, w->value->numel / oc, W, B, ql_f32(gm->value), ql_f32(bt->value), ql_f32(rm->value),
                      ql_f32(rv->value), bn->a.eps, W, B);
    return QL_OK;
}

ql_status ql_fuse(ql_graph *g, int *nfused) {
    int removed = 0;
    /* conv + bn */
    for (int j = 1; j < g->nnodes; j++) {
        ql_node *bn = &g->nodes[j];
        if (bn->op != QL_OP_BATCHNORM2D) continue;
        int i = bn->inputs[0];
        ql_node *conv = &g->nodes[i];
        if (conv->op != QL_OP_CONV2D || conv->a.act || ql_graph_consumers(g, i) != 1 || conv->obs || bn->obs) continue;
        QL_TRY(fold_bn(conv, bn));
        QL_TRY(ql_graph_remove(g, j, i));
        removed++;
        j--;
    }
    int acts = 0;
    QL_TRY(ql_fuse_acts(g, NULL, &acts));
    removed += acts;
    if (removed) { ql_graph_release(g); g->version++; }
    if (nfused) *nfused = removed;
    return QL_OK;
}

static int act_target(ql_op_type op) {
    return op == QL_OP_CONV2D || op == QL_OP_CONV_BN || op == QL_OP_LINEAR || op == QL_OP_ADD;
}

ql_status ql_fuse_acts(ql_graph *g, int (*want)(const ql_node *producer), int *nremoved) {
    int removed = 0;
    for (int j = 1; j < g->nnodes; j++) {
        ql_node *r = &g->nodes[j];
        if (r->op != QL_OP_RELU && r->op != QL_OP_RELU6) continue;
        int i = r->inputs[0];
        ql_node *p = &g->nodes[i];
        if (!act_target(p->op) || p->a.act || ql_graph_consumers(g, i) != 1 || p->obs || r->obs || (want && !want(p)))
            continue;
        p->a.act = r->op == QL_OP_RELU ? QL_ACT_RELU : QL_ACT_RELU6;
        QL_TRY(ql_graph_remove(g, j, i));
        removed++;
        j--;
    }
    *nremoved = removed;
    return QL_OK;
}
