/* Quantization-aware training: prepare_qat turns planned conv+bn pairs into
 * conv_bn nodes (BN folded into the fake-quantized weight while training),
 * fuses relu/relu6, gives weighted nodes a weight observer and puts a
 * fakequant node after every value a quantized node will read; convert later
 * folds conv_bn, drops the fakequant nodes (their observers become the
 * producers') and quantizes exactly as PTQ does. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/ops.h"
#include "qlab/quant.h"
#include "graph/op.h"

static int planned(const ql_node *n) { return n->plan.mode == QL_QMODE_INT8 && ql_quant_supported(n->op); }
static int weighted(ql_op_type op) { return op == QL_OP_CONV2D || op == QL_OP_LINEAR || op == QL_OP_CONV_BN; }

/* conv -> bn becomes one conv_bn node (in place), keeping the conv's name. */
static ql_status absorb_bn(ql_graph *g, int i, int j) {
    ql_node *conv = &g->nodes[i], *bn = &g->nodes[j];
    int64_t cs[1] = {conv->a.out_ch};
    static const char *const sfx[4] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
    for (int k = 0; k < 4; k++) {
        QL_TRY(ql_node_add_param(conv, sfx[k], 1, cs, k < 2));
        QL_TRY(ql_tensor_copy(conv->params[conv->nparams - 1].value, bn->params[k].value));
    }
    ql_node_free_priv(conv);   /* the conv's caches, freed by the conv's own rule before the op changes */
    conv->op = QL_OP_CONV_BN;
    conv->a.eps = bn->a.eps;
    conv->a.momentum = bn->a.momentum;
    return ql_graph_remove(g, j, i);
}

static int qat_act_target(const ql_node *p) { return planned(p) || p->op == QL_OP_CONV_BN; }

static ql_status fuse_for_qat(ql_graph *g) {
    for (int j = 1; j < g->nnodes; j++) {
        ql_node *bn = &g->nodes[j];
        int i = bn->inputs[0];
        if (bn->op != QL_OP_BATCHNORM2D || g->nodes[i].op != QL_OP_CONV2D || !planned(&g->nodes[i]) ||
            g->nodes[i].a.act || ql_graph_consumers(g, i) != 1)
            continue;
        QL_TRY(absorb_bn(g, i, j));
        j--;
    }
    int n;
    return ql_fuse_acts(g, qat_act_target, &n);
}

/* Copies node s (of another graph) into d, given d's inputs; returns the index. */
static int copy_node(ql_graph *d, const ql_node *s, const int *in) {
    int idx = ql_graph_add(d, s->name, s->op, in, s->ninputs, &s->a);
    if (idx < 0) return -1;
    ql_node *n = &d->nodes[idx];
    for (int k = 0; k < s->nparams; k++)
        if (ql_tensor_copy(n->params[k].value, s->params[k].value) != QL_OK) return -1;
    n->plan = s->plan;
    strcpy(n->precision, s->precision);
    return idx;
}

static int add_fq(ql_graph *d, int src, const char *name, const ql_observer_opts *o) {
    char fq[512];
    snprintf(fq, sizeof fq, "%s_fq", name);
    int idx = ql_graph_add(d, fq, QL_OP_FAKEQUANT, &src, 1, NULL);
    if (idx < 0) return -1;
    if (!(d->nodes[idx].obs = ql_observer_new(o))) return -1;
    strcpy(d->nodes[idx].precision, "fq");
    return idx;
}

ql_status ql_prepare_qat(ql_graph *g, const ql_qplan *plans) {
    for (int i = 1; i < g->nnodes; i++) g->nodes[i].plan = plans[i];
    for (int i = 0; i < g->nnodes; i++) {
        ql_observer_free(g->nodes[i].obs); g->nodes[i].obs = NULL;
        ql_observer_free(g->nodes[i].wobs); g->nodes[i].wobs = NULL;
    }
    QL_TRY(fuse_for_qat(g));
    for (int i = 1; i < g->nnodes; i++) {   /* conv_bn is quantizable like the conv it came from */
        ql_node *n = &g->nodes[i];
        if (n->op == QL_OP_CONV_BN || planned(n)) {
            const ql_qplan *p = &n->plan;
            if (p->act.dtype != QL_DTYPE_U8 || p->act.per_channel)
                return ql_error(QL_EINVAL, "node '%s': activations must be u8 per tensor", n->name);
            if (weighted(n->op) && (p->weight.dtype != QL_DTYPE_S8 || !p->weight.symmetric))
                return ql_error(QL_EINVAL, "node '%s': weights must be s8 symmetric for the INT8 kernels", n->name);
        }
    }
    /* which values get a fakequant: outputs of quantized non-pass-through
     * nodes that a quantized node reads (a conv / linear read only by FP32
     * nodes or as the output writes f32 after convert: no fakequant), and
     * FP32 values read by quantized nodes */
    int nn = g->nnodes;
    const ql_observer_opts **fq = ql_calloc(sizeof *fq * (size_t)nn);
    int *map = ql_malloc(sizeof(int) * (size_t)nn);
    unsigned char *q_read = ql_calloc((size_t)nn);
    if (!fq || !map || !q_read) { ql_free(fq); ql_free(map); ql_free(q_read); return QL_ENOMEM; }
    for (int j = 1; j < nn; j++)
        if (planned(&g->nodes[j]) || g->nodes[j].op == QL_OP_CONV_BN)
            for (int k = 0; k < g->nodes[j].ninputs; k++) q_read[g->nodes[j].inputs[k]] = 1;
    for (int i = 1; i < nn; i++) {
        const ql_node *n = &g->nodes[i];
        int q = planned(n) || n->op == QL_OP_CONV_BN;
        if (!q) continue;
        if (!ql_quant_passthrough(n->op) && (q_read[i] || !weighted(n->op))) fq[i] = &n->plan.act;
        for (int k = 0; k < n->ninputs; k++) {
            const ql_node *p = &g->nodes[n->inputs[k]];
            if (!(planned(p) || p->op == QL_OP_CONV_BN) && !fq[n->inputs[k]]) fq[n->inputs[k]] = &n->plan.act;
        }
    }
    ql_graph *d = ql_graph_new(g->nodes[0].out_ndim, g->nodes[0].out_shape);
    ql_status st = d ? QL_OK : QL_ENOMEM;
    map[0] = 0;
    if (st == QL_OK && fq[0] && (map[0] = add_fq(d, 0, "input", fq[0])) < 0) st = QL_EINVAL;
    for (int i = 1; st == QL_OK && i < nn; i++) {
        const ql_node *s = &g->nodes[i];
        int in[QL_MAX_INPUTS];
        for (int k = 0; k < s->ninputs; k++) in[k] = map[s->inputs[k]];
        int idx = copy_node(d, s, in);
        if (idx < 0) { st = QL_EINVAL; break; }
        ql_node *n = &d->nodes[idx];
        if (weighted(n->op) && (planned(s) || s->op == QL_OP_CONV_BN) && !(n->wobs = ql_observer_new(&s->plan.weight))) {
            st = QL_EINVAL;
            break;
        }
        map[i] = idx;
        if (fq[i] && (map[i] = add_fq(d, idx, s->name, fq[i])) < 0) st = QL_EINVAL;
    }
    if (st == QL_OK) st = ql_graph_set_output(d, map[g->output]);
    if (st == QL_OK) {
        ql_graph tmp = *g;
        d->version = g->version + 1;
        *g = *d;
        *d = tmp;
    }
    ql_graph_free(d);
    ql_free(fq);
    ql_free(map);
    ql_free(q_read);
    return st;
}

void ql_qat_freeze_bn(ql_graph *g, int on) { g->bn_frozen = on != 0; }

void ql_qat_freeze_observers(ql_graph *g, int on) {
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].obs) ql_observer_freeze(g->nodes[i].obs, on);
        if (g->nodes[i].wobs) ql_observer_freeze(g->nodes[i].wobs, on);
    }
}

int ql_qat_observers_frozen(const ql_graph *g) {
    int any = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const ql_observer *o[2] = {g->nodes[i].obs, g->nodes[i].wobs};
        for (int k = 0; k < 2; k++)
            if (o[k]) { any = 1; if (!ql_observer_frozen(o[k])) return 0; }
    }
    return any;
}

void ql_qat_enable_fake_quant(ql_graph *g, int on) {
    for (int i = 0; i < g->nnodes; i++) g->nodes[i].fq_off = !on;
    g->version++;
}

/* conv_bn -> conv2d with BN folded by its running statistics (in place). */
static ql_status fold_conv_bn(ql_node *n) {
    int gi = n->a.bias ? 2 : 1;
    if (!n->a.bias) {   /* a bias to fold into: inserted after the weight */
        int64_t cs[1] = {n->a.out_ch};
        QL_TRY(ql_node_add_param(n, "bias", 1, cs, 1));
        ql_param b = n->params[n->nparams - 1];
        memmove(&n->params[2], &n->params[1], sizeof *n->params * (size_t)(n->nparams - 2));
        n->params[1] = b;
        n->a.bias = 1;
        gi = 2;
    }
    float *W = ql_f32(n->params[0].value), *B = ql_f32(n->params[1].value);
    int oc = n->a.out_ch;
    ql_batchnorm_fold(oc, n->params[0].value->numel / oc, W, B, ql_f32(n->params[gi].value),
                      ql_f32(n->params[gi + 1].value), ql_f32(n->params[gi + 2].value),
                      ql_f32(n->params[gi + 3].value), n->a.eps, W, B);
    for (int k = gi; k < gi + 4; k++) {
        ql_free(n->params[k].name);
        ql_tensor_free(n->params[k].value);
        ql_tensor_free(n->params[k].grad);
    }
    n->nparams = gi;
    ql_node_free_priv(n);
    n->op = QL_OP_CONV2D;
    return QL_OK;
}

ql_status ql_qat_lower(ql_graph *g) {
    int changed = 0;
    for (int j = 1; j < g->nnodes; j++) {
        ql_node *f = &g->nodes[j];
        if (f->op != QL_OP_FAKEQUANT) continue;
        int p = f->inputs[0];
        if (!g->nodes[p].obs) { g->nodes[p].obs = f->obs; f->obs = NULL; }
        QL_TRY(ql_graph_remove(g, j, p));
        j--;
        changed = 1;
    }
    for (int i = 1; i < g->nnodes; i++)
        if (g->nodes[i].op == QL_OP_CONV_BN) { QL_TRY(fold_conv_bn(&g->nodes[i])); changed = 1; }
    if (changed) { ql_graph_release(g); g->version++; }
    return QL_OK;
}
