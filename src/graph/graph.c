/* Graph structure: named nodes in topological order, their parameters, op names. */
#include <string.h>
#include "qlab/alloc.h"
#include "graph/op.h"
#include "qlab/quant.h"

static const char *const op_names[QL_OP_COUNT] = {
    [QL_OP_INPUT] = "input",       [QL_OP_CONV2D] = "conv2d",
    [QL_OP_BATCHNORM2D] = "batchnorm2d", [QL_OP_RELU] = "relu",
    [QL_OP_RELU6] = "relu6",       [QL_OP_MAXPOOL2D] = "maxpool2d",
    [QL_OP_AVGPOOL2D] = "avgpool2d", [QL_OP_GLOBAL_AVGPOOL] = "global_avgpool",
    [QL_OP_LINEAR] = "linear",     [QL_OP_ADD] = "add",
    [QL_OP_FLATTEN] = "flatten",   [QL_OP_LSTM] = "lstm",
    [QL_OP_SEQ_LAST] = "seq_last",
    [QL_OP_QUANTIZE] = "quantize", [QL_OP_DEQUANTIZE] = "dequantize",
    [QL_OP_QCONV2D] = "qconv2d",   [QL_OP_QLINEAR] = "qlinear",
    [QL_OP_QADD] = "qadd",         [QL_OP_QMAXPOOL2D] = "qmaxpool2d",
    [QL_OP_QGLOBAL_AVGPOOL] = "qglobal_avgpool", [QL_OP_QRELU] = "qrelu",
    [QL_OP_QFLATTEN] = "qflatten", [QL_OP_FAKEQUANT] = "fakequant",
    [QL_OP_CONV_BN] = "conv_bn",
    [QL_OP_DLINEAR] = "dlinear",   [QL_OP_DLSTM] = "dlstm",
    [QL_OP_F16LINEAR] = "f16linear", [QL_OP_F16CONV2D] = "f16conv2d", [QL_OP_F16LSTM] = "f16lstm",
    [QL_OP_BF16LINEAR] = "bf16linear", [QL_OP_BF16CONV2D] = "bf16conv2d", [QL_OP_BF16LSTM] = "bf16lstm",
};

const char *ql_op_name(ql_op_type op) {
    return ((unsigned)op < QL_OP_COUNT && op_names[op]) ? op_names[op] : "?";
}

int ql_op_from_name(const char *s, ql_op_type *out) {
    for (int i = 0; s && i < QL_OP_COUNT; i++)
        if (op_names[i] && !strcmp(s, op_names[i])) { *out = (ql_op_type)i; return 0; }
    return -1;
}

void ql_attrs_default(ql_attrs *a) {
    memset(a, 0, sizeof *a);
    a->stride[0] = a->stride[1] = 1;
    a->dilation[0] = a->dilation[1] = 1;
    a->groups = 1;
    a->bias = 1;
    a->layers = 1;
    a->eps = 1e-5f;
    a->momentum = 0.1f;
    a->count_include_pad = 1;
}

static void node_clear(ql_node *n) {
    ql_node_free_priv(n);
    for (int i = 0; i < n->nparams; i++) {
        ql_free(n->params[i].name);
        ql_tensor_free(n->params[i].value);
        ql_tensor_free(n->params[i].grad);
    }
    ql_free(n->params);
    ql_free(n->name);
    ql_observer_free(n->obs);
    ql_observer_free(n->wobs);
    memset(n, 0, sizeof *n);
}

/* Room for one more node; existing node pointers move, indices do not. */
static ql_status reserve(ql_graph *g) {
    if (g->nnodes < g->cap) return QL_OK;
    int cap = g->cap ? 2 * g->cap : 16;
    ql_node *p = ql_realloc(g->nodes, (size_t)cap * sizeof *p);
    if (!p) return QL_ENOMEM;
    memset(p + g->cap, 0, (size_t)(cap - g->cap) * sizeof *p);
    g->nodes = p;
    g->cap = cap;
    return QL_OK;
}

ql_graph *ql_graph_new(int in_ndim, const int64_t *in_shape) {
    if (in_ndim < 1 || in_ndim >= QL_MAX_DIMS) {
        ql_error(QL_ESHAPE, "model input must have 1..%d dimensions per sample, got %d",
                 QL_MAX_DIMS - 1, in_ndim);
        return NULL;
    }
    for (int i = 0; i < in_ndim; i++)
        if (in_shape[i] < 1 || in_shape[i] > (1 << 30)) {
            char b[128];
            ql_error(QL_ESHAPE, "bad model input shape %s", ql_shape_str(in_ndim, in_shape, b, sizeof b));
            return NULL;
        }
    ql_graph *g = ql_calloc(sizeof *g);
    if (!g || reserve(g) != QL_OK) { ql_free(g); return NULL; }
    ql_node *n = &g->nodes[0];
    if (!(n->name = ql_strdup("input"))) { ql_graph_free(g); return NULL; }
    n->op = QL_OP_INPUT;
    ql_attrs_default(&n->a);
    n->out_ndim = in_ndim;
    memcpy(n->out_shape, in_shape, (size_t)in_ndim * sizeof *in_shape);
    strcpy(n->precision, "f32");
    g->nnodes = 1;
    return g;
}

void ql_graph_free(ql_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->nnodes; i++) node_clear(&g->nodes[i]);
    ql_free(g->nodes);
    ql_runtime_free(g->rt);
    ql_free(g->node_ms);
    ql_free(g);
}

int ql_graph_find(const ql_graph *g, const char *name) {
    for (int i = 0; name && i < g->nnodes; i++)
        if (!strcmp(g->nodes[i].name, name)) return i;
    return -1;
}

ql_param *ql_graph_param(ql_graph *g, const char *full_name) {
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nparams; k++)
            if (!strcmp(g->nodes[i].params[k].name, full_name)) return &g->nodes[i].params[k];
    return NULL;
}

/* Weights and biases, trained or quantized (PyTorch's parameters(), not its buffers). */
int64_t ql_node_param_count(const ql_node *n) {
    int64_t c = 0;
    for (int k = 0; k < n->nparams; k++) {
        const char *dot = strrchr(n->params[k].name, '.');
        if (n->params[k].trainable || (dot && (!strcmp(dot, ".weight") || !strcmp(dot, ".bias"))))
            c += n->params[k].value->numel;
    }
    return c;
}

int64_t ql_graph_param_count(const ql_graph *g) {
    int64_t c = 0;
    for (int i = 0; i < g->nnodes; i++) c += ql_node_param_count(&g->nodes[i]);
    return c;
}

ql_status ql_graph_set_output(ql_graph *g, int idx) {
    if (idx < 0 || idx >= g->nnodes)
        return ql_error(QL_EINVAL, "output node index %d outside 0..%d", idx, g->nnodes - 1);
    g->output = idx;
    return QL_OK;
}

ql_status ql_node_add_param(ql_node *n, const char *suffix, int ndim, const int64_t *shape,
                            int trainable) {
    return ql_node_add_param_dtype(n, suffix, QL_DTYPE_F32, ndim, shape, trainable);
}

ql_status ql_node_add_param_dtype(ql_node *n, const char *suffix, ql_dtype dtype, int ndim,
                                  const int64_t *shape, int trainable) {
    ql_param *p = ql_realloc(n->params, (size_t)(n->nparams + 1) * sizeof *p);
    if (!p) return QL_ENOMEM;
    n->params = p;
    p = &n->params[n->nparams];
    memset(p, 0, sizeof *p);
    size_t len = strlen(n->name) + strlen(suffix) + 2;
    if (!(p->name = ql_malloc(len))) return QL_ENOMEM;
    strcpy(p->name, n->name);
    strcat(p->name, ".");
    strcat(p->name, suffix);
    if (!(p->value = ql_tensor_new(dtype, ndim, shape))) { ql_free(p->name); return QL_ENOMEM; }
    p->trainable = trainable;
    n->nparams++;
    return QL_OK;
}

/* Checks that do not depend on the op: name, inputs, arity. */
static ql_status check_add(const ql_graph *g, const char *name, ql_op_type op, const int *inputs,
                           int ninputs, const ql_attrs *a, const ql_op_def **def) {
    if (!name || !name[0]) return ql_error(QL_EINVAL, "node name must not be empty");
    if (ql_graph_find(g, name) >= 0) return ql_error(QL_EINVAL, "duplicate node name '%s'", name);
    if (op == QL_OP_INPUT)
        return ql_error(QL_EINVAL, "node '%s': a graph has one input node, made by ql_graph_new", name);
    if (!(*def = ql_op_def_get(op)))
        return ql_error(QL_EINVAL, "node '%s': unknown op %d", name, (int)op);
    if (ninputs < (*def)->min_inputs || ninputs > (*def)->max_inputs) {
        if ((*def)->min_inputs == (*def)->max_inputs)
            return ql_error(QL_EINVAL, "node '%s': %s takes %d input%s, got %d", name, ql_op_name(op),
                            (*def)->min_inputs, (*def)->min_inputs == 1 ? "" : "s", ninputs);
        return ql_error(QL_EINVAL, "node '%s': %s takes %d..%d inputs, got %d", name, ql_op_name(op),
                        (*def)->min_inputs, (*def)->max_inputs, ninputs);
    }
    if (a && (a->act < QL_ACT_NONE || a->act > QL_ACT_RELU6))
        return ql_error(QL_EINVAL, "node '%s': act must be 0 (none), 1 (relu) or 2 (relu6), got %d", name, a->act);
    for (int k = 0; k < ninputs; k++)
        if (inputs[k] < 0 || inputs[k] >= g->nnodes)
            return ql_error(QL_EINVAL, "node '%s': input index %d is not an existing node (0..%d)",
                            name, inputs[k], g->nnodes - 1);
    return QL_OK;
}

int ql_graph_add(ql_graph *g, const char *name, ql_op_type op, const int *inputs, int ninputs,
                 const ql_attrs *a) {
    const ql_op_def *def = NULL;
    if (check_add(g, name, op, inputs, ninputs, a, &def) != QL_OK) return -1;
    if (reserve(g) != QL_OK) return -1;
    ql_node *n = &g->nodes[g->nnodes];
    memset(n, 0, sizeof *n);
    if (!(n->name = ql_strdup(name))) return -1;
    n->op = op;
    n->ninputs = ninputs;
    const ql_node *in[QL_MAX_INPUTS];
    for (int k = 0; k < ninputs; k++) { n->inputs[k] = inputs[k]; in[k] = &g->nodes[inputs[k]]; }
    if (a) n->a = *a; else ql_attrs_default(&n->a);
    strcpy(n->precision, "f32");
    n->out_dtype = QL_DTYPE_F32;
    n->out_scale = 1.0f;
    n->out_qmax = 255;
    if (def->infer(n, in) != QL_OK || (def->make_params && def->make_params(n) != QL_OK)) {
        node_clear(n);
        return -1;
    }
    g->output = g->nnodes;   /* the newest node, until set_output says otherwise */
    return g->nnodes++;
}

ql_graph *ql_graph_clone(const ql_graph *g) {
    ql_graph *c = ql_calloc(sizeof *c);
    if (!c) return NULL;
    if (!(c->nodes = ql_calloc((size_t)g->cap * sizeof *c->nodes))) { ql_free(c); return NULL; }
    c->cap = g->cap;
    for (int i = 0; i < g->nnodes; i++, c->nnodes++) {
        const ql_node *s = &g->nodes[i];
        ql_node *d = &c->nodes[i];
        *d = *s;
        d->name = NULL; d->params = NULL; d->nparams = 0; d->priv = NULL; d->obs = NULL; d->wobs = NULL;
        if (!(d->name = ql_strdup(s->name))) goto fail;
        if (s->obs && !(d->obs = ql_observer_clone(s->obs))) goto fail;
        if (s->wobs && !(d->wobs = ql_observer_clone(s->wobs))) goto fail;
        if (s->nparams && !(d->params = ql_calloc((size_t)s->nparams * sizeof *d->params))) goto fail;
        for (int k = 0; k < s->nparams; k++, d->nparams++) {
            ql_param *p = &d->params[k];
            p->trainable = s->params[k].trainable;
            if (!(p->name = ql_strdup(s->params[k].name))) goto fail;
            if (!(p->value = ql_tensor_clone(s->params[k].value))) { ql_free(p->name); goto fail; }
        }
    }
    c->output = g->output;
    c->version = g->version;
    c->profile = g->profile;
    c->observe = g->observe;
    c->bn_frozen = g->bn_frozen;
    return c;
fail:
    c->nnodes++;   /* the half-built node is cleared too */
    ql_graph_free(c);
    return NULL;
}

ql_status ql_graph_remove(ql_graph *g, int j, int replacement) {
    if (j <= 0 || j >= g->nnodes || replacement < 0 || replacement >= j)
        return ql_error(QL_EINVAL, "remove: bad node %d (replacement %d)", j, replacement);
    ql_graph_release(g);
    node_clear(&g->nodes[j]);
    memmove(&g->nodes[j], &g->nodes[j + 1], (size_t)(g->nnodes - j - 1) * sizeof *g->nodes);
    g->nnodes--;
    memset(&g->nodes[g->nnodes], 0, sizeof *g->nodes);
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].ninputs; k++) {
            int *in = &g->nodes[i].inputs[k];
            if (*in == j) *in = replacement;
            else if (*in > j) (*in)--;
        }
    if (g->output == j) g->output = replacement;
    else if (g->output > j) g->output--;
    ql_free(g->node_ms);
    g->node_ms = NULL;
    return QL_OK;
}
