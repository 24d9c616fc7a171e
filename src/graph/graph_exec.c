/* Running a graph: forward in node order (nodes[] is topological), backward
 * in reverse. Activations and gradients live in planned slots (graph_plan.c):
 * inference frees a buffer after its last consumer; training keeps them all. */
#include <string.h>
#include <time.h>
#include "qlab/alloc.h"
#include "graph/op.h"

struct ql_runtime {
    int cap;                  /* per-node arrays hold this many nodes */
    int nn;                   /* g->nnodes at the last forward */
    ql_tensor **act;          /* [cap] output of node i from the last forward, NULL when gone */
    unsigned char *needed;    /* [cap] ancestor of the output */
    unsigned char *rgrad;     /* [cap] output gradient wanted */
    unsigned char *ginit;     /* [cap] gradient already written once */
    unsigned char *busy;      /* [cap] planner scratch */
    int *start, *end, *slot, *cmax;   /* [cap] lifetimes, slot, last consumer */
    int *into;                /* [cap] inference: node fused into node into[i] (its value), or -1 */
    int *fbn, *fact;          /* [cap] inference: batchnorm fused into node i (or -1), activation */
    int64_t *size, *slot_size;        /* [cap] per-sample floats */
    ql_tensor **slots;        /* [cap] activation buffers */
    ql_tensor **gslots;       /* [cap] gradient buffers */
    ql_tensor xview;          /* inference: the caller's x seen as (N, input shape) */
    ql_tensor *input_grad;    /* d loss / d x when want_input_grad */
    int want_input_grad, have_input_grad;
    float *ws;  size_t ws_n;  /* op scratch (ql_graph_scratch) */
    float *acc; size_t acc_n; /* gradients to add into a buffer already written */
    int ms_n;                 /* entries of g->node_ms */
    int trained;              /* last forward kept what backward needs */
    int64_t batch;
};

static void free_slots(ql_tensor **s, int from, int to) {
    for (int i = from; s && i < to; i++) { ql_tensor_free(s[i]); s[i] = NULL; }
}

/* Everything but the user's settings. */
static void rt_clear(ql_runtime *rt) {
    free_slots(rt->slots, 0, rt->cap);
    free_slots(rt->gslots, 0, rt->cap);
    void *arrays[] = {rt->act, rt->needed, rt->rgrad, rt->ginit, rt->busy, rt->start, rt->end,
                      rt->slot, rt->cmax, rt->into, rt->fbn, rt->fact, rt->size, rt->slot_size, rt->slots, rt->gslots, rt->ws, rt->acc};
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) ql_free(arrays[i]);
    ql_tensor_free(rt->input_grad);
    int want = rt->want_input_grad, ms_n = rt->ms_n;
    memset(rt, 0, sizeof *rt);
    rt->want_input_grad = want;
    rt->ms_n = ms_n;   /* g->node_ms is the graph's and stays */
}

void ql_runtime_free(ql_runtime *rt) {
    if (!rt) return;
    rt_clear(rt);
    ql_free(rt);
}

static ql_status rt_get(ql_graph *g) {
    if (!g->rt && !(g->rt = ql_calloc(sizeof *g->rt))) return QL_ENOMEM;
    return QL_OK;
}

/* Per-node arrays for g->nnodes; buffers survive a resize. */
static ql_status rt_ensure(ql_graph *g) {
    QL_TRY(rt_get(g));
    ql_runtime *rt = g->rt;
    if (rt->cap >= g->nnodes) return QL_OK;
    int cap = g->nnodes, old = rt->cap;
    ql_tensor **s = ql_calloc((size_t)cap * sizeof *s), **gs = ql_calloc((size_t)cap * sizeof *gs);
    if (!s || !gs) { ql_free(s); ql_free(gs); return QL_ENOMEM; }
    for (int i = 0; i < old; i++) { s[i] = rt->slots[i]; gs[i] = rt->gslots[i]; }
    ql_free(rt->slots); ql_free(rt->gslots);
    rt->slots = s; rt->gslots = gs;
    void **arrays[] = {(void **)&rt->act, (void **)&rt->needed, (void **)&rt->rgrad, (void **)&rt->ginit,
                       (void **)&rt->busy, (void **)&rt->start, (void **)&rt->end, (void **)&rt->slot,
                       (void **)&rt->cmax, (void **)&rt->into, (void **)&rt->fbn, (void **)&rt->fact,
                       (void **)&rt->size, (void **)&rt->slot_size};
    size_t elem[] = {sizeof(ql_tensor *), 1, 1, 1, 1, sizeof(int), sizeof(int), sizeof(int), sizeof(int),
                     sizeof(int), sizeof(int), sizeof(int), sizeof(int64_t), sizeof(int64_t)};
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) {
        ql_free(*arrays[i]);
        if (!(*arrays[i] = ql_calloc((size_t)cap * elem[i]))) { rt_clear(rt); return QL_ENOMEM; }
    }
    rt->cap = cap;
    rt->trained = 0;
    return QL_OK;
}

float *ql_graph_scratch(ql_graph *g, size_t n) {
    ql_runtime *rt = g->rt;
    if (n <= rt->ws_n) return rt->ws;
    ql_free(rt->ws);
    rt->ws_n = 0;
    if (!(rt->ws = ql_malloc(n * sizeof(float)))) return NULL;
    rt->ws_n = n;
    return rt->ws;
}

size_t ql_graph_scratch_size(const ql_graph *g) { return g->rt->ws_n; }

/* (N, ...) with the input's per-sample element count; returns N. */
static ql_status check_input(const ql_graph *g, const ql_tensor *x, int64_t *batch) {
    const ql_node *in = &g->nodes[0];
    char a[128], b[128];
    if (!x) return ql_error(QL_EINVAL, "forward: no input tensor");
    if (x->dtype != QL_DTYPE_F32)
        return ql_error(QL_EINVAL, "forward: model input must be f32, got %s", ql_dtype_name(x->dtype));
    int64_t per = ql_shape_numel(x->ndim - 1, x->shape + 1);
    if (x->ndim < 1 || x->shape[0] < 1 || per != ql_node_numel(in))
        return ql_error(QL_ESHAPE, "forward: input %s does not match the model input %s: expected a batch "
                        "(N,...) with N >= 1 and %lld values per sample", ql_shape_str(x->ndim, x->shape, a, sizeof a),
                        ql_shape_str(in->out_ndim, in->out_shape, b, sizeof b), (long long)ql_node_numel(in));
    *batch = x->shape[0];
    return QL_OK;
}

static ql_status resize_batch(ql_tensor *t, int64_t batch, const ql_node *n) {
    int64_t s[QL_MAX_DIMS];
    if (n->out_ndim + 1 > QL_MAX_DIMS) return ql_error(QL_ESHAPE, "node '%s': rank too large", n->name);
    s[0] = batch;
    for (int i = 0; i < n->out_ndim; i++) s[i + 1] = n->out_shape[i];
    return ql_tensor_resize(t, n->out_ndim + 1, s);
}

static ql_status ensure_slots(ql_tensor **s, int n) {
    static const int64_t zero[1] = {0};
    for (int i = 0; i < n; i++)
        if (!s[i] && !(s[i] = ql_tensor_new(QL_DTYPE_F32, 1, zero))) return QL_ENOMEM;
    return QL_OK;
}

/* needed[] (ancestors of the output) and cmax[] (last needed consumer). */
static void analyse(const ql_graph *g, ql_runtime *rt) {
    int nn = g->nnodes;
    memset(rt->needed, 0, (size_t)nn);
    rt->needed[g->output] = 1;
    for (int j = nn - 1; j >= 0; j--) {
        rt->cmax[j] = -1;
        if (!rt->needed[j]) continue;
        for (int k = 0; k < g->nodes[j].ninputs; k++) rt->needed[g->nodes[j].inputs[k]] = 1;
    }
    for (int j = 0; j < nn; j++)
        if (rt->needed[j])
            for (int k = 0; k < g->nodes[j].ninputs; k++)
                if (rt->cmax[g->nodes[j].inputs[k]] < j) rt->cmax[g->nodes[j].inputs[k]] = j;
}

/* The one needed consumer of node i, or -1 (none, several, or i is the output). */
static int sole_consumer(const ql_graph *g, const ql_runtime *rt, int i) {
    if (i == g->output) return -1;
    int c = -1;
    for (int j = i + 1; j < g->nnodes; j++) {
        if (!rt->needed[j]) continue;
        for (int k = 0; k < g->nodes[j].ninputs; k++)
            if (g->nodes[j].inputs[k] == i) {
                if (c >= 0 && c != j) return -1;
                c = j;
            }
    }
    return c;
}

/* Inference fusion: an FP32 conv absorbs the batchnorm that alone reads it
 * (weights folded, conv2d.c's dnnl path fuses the rest), and a conv or add
 * absorbs the relu / relu6 that alone reads it: one pass over the
 * activation instead of three. Off while observing (observers watch every
 * node's output) and with keep_all (every node's value is asked for). */
static void plan_fusion(ql_graph *g, ql_runtime *rt, int training) {
    int nn = g->nnodes;
    for (int i = 0; i < nn; i++) { rt->into[i] = rt->fbn[i] = -1; rt->fact[i] = 0; }
    if (training || g->observe || g->keep_all || g->no_fusion) return;
    for (int i = 1; i < nn; i++) {
        ql_node *n = &g->nodes[i];
        if (!rt->needed[i] || rt->into[i] >= 0 || n->out_dtype != QL_DTYPE_F32 || n->a.act) continue;
        if (n->op != QL_OP_CONV2D && n->op != QL_OP_ADD) continue;
        int at = i, j = sole_consumer(g, rt, i);
        if (n->op == QL_OP_CONV2D && j > 0 && g->nodes[j].op == QL_OP_BATCHNORM2D && !g->nodes[j].obs) {
            rt->fbn[i] = j;
            rt->into[j] = i;
            at = j;
            j = sole_consumer(g, rt, j);
        }
        if (j > 0 && (g->nodes[j].op == QL_OP_RELU || g->nodes[j].op == QL_OP_RELU6) && !g->nodes[j].obs) {
            rt->fact[i] = g->nodes[j].op == QL_OP_RELU ? QL_ACT_RELU : QL_ACT_RELU6;
            rt->into[j] = i;
            at = j;
        }
        if (at != i) rt->cmax[i] = rt->cmax[at];   /* the fused value lives as long as its last part */
    }
}

/* Plans activation slots: inference frees after the last consumer, training
 * keeps everything (and copies the input, which backward reads). */
static ql_status plan_forward(ql_graph *g, ql_runtime *rt, int training) {
    int nn = g->nnodes, nslots;
    for (int i = 0; i < nn; i++) {
        rt->start[i] = -1;
        rt->end[i] = (training || g->keep_all || i == g->output) ? nn : rt->cmax[i];
        if (!rt->needed[i] || (i == 0 && !training) || rt->into[i] >= 0) continue;   /* inference views x */
        rt->start[i] = i;
        rt->size[i] = ql_node_numel(&g->nodes[i]);
    }
    nslots = ql_plan_slots(nn, nn, rt->start, rt->end, rt->size, rt->slot, rt->slot_size, rt->busy);
    QL_TRY(ensure_slots(rt->slots, nslots));
    if (!training) {   /* keep inference lean after training */
        free_slots(rt->slots, nslots, rt->cap);
        free_slots(rt->gslots, 0, rt->cap);
        ql_free(rt->acc); rt->acc = NULL; rt->acc_n = 0;
        ql_tensor_free(rt->input_grad); rt->input_grad = NULL;
    }
    return QL_OK;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static ql_status profile_ensure(ql_graph *g) {
    ql_runtime *rt = g->rt;
    if (g->node_ms && rt->ms_n >= g->nnodes) return QL_OK;
    double *p = ql_calloc((size_t)g->nnodes * sizeof *p);
    if (!p) return QL_ENOMEM;
    if (g->node_ms) memcpy(p, g->node_ms, (size_t)rt->ms_n * sizeof *p);
    ql_free(g->node_ms);
    g->node_ms = p;
    rt->ms_n = g->nnodes;
    return QL_OK;
}

static ql_status set_input(ql_graph *g, ql_runtime *rt, const ql_tensor *x, int64_t batch, int training) {
    if (training) {   /* a copy: the caller may reuse x before backward */
        ql_tensor *t = rt->slots[rt->slot[0]];
        QL_TRY(resize_batch(t, batch, &g->nodes[0]));
        memcpy(t->data, x->data, ql_tensor_bytes(t));
        rt->act[0] = t;
        return QL_OK;
    }
    ql_tensor *v = &rt->xview;
    memset(v, 0, sizeof *v);
    v->dtype = QL_DTYPE_F32;
    v->scale = 1.0f;
    v->ndim = g->nodes[0].out_ndim + 1;
    v->shape[0] = batch;
    memcpy(v->shape + 1, g->nodes[0].out_shape, (size_t)g->nodes[0].out_ndim * sizeof(int64_t));
    v->numel = x->numel;
    v->data = x->data;   /* borrowed for the duration of the call */
    rt->act[0] = v;
    return QL_OK;
}

static ql_status run_node(ql_graph *g, ql_runtime *rt, int i, int64_t batch, int training) {
    ql_node *n = &g->nodes[i];
    ql_tensor *y = rt->slots[rt->slot[i]];
    y->dtype = n->out_dtype;   /* slots are shared by f32 and u8 activations */
    y->scale = n->out_scale;
    y->zero_point = n->out_zero;
    QL_TRY(resize_batch(y, batch, n));
    ql_op_ctx c = {.g = g, .n = n, .batch = batch, .training = training, .y = y,
                   .bn = rt->fbn[i] >= 0 ? &g->nodes[rt->fbn[i]] : NULL, .act = rt->fact[i]};
    for (int k = 0; k < n->ninputs; k++) c.x[k] = rt->act[n->inputs[k]];
    double t0 = g->profile ? now_ms() : 0;
    QL_TRY(ql_op_def_get(n->op)->forward(&c));
    if (g->profile) g->node_ms[i] += now_ms() - t0;
    if (g->observe && n->obs && y->dtype == QL_DTYPE_F32) QL_TRY(ql_observer_observe(n->obs, y));
    rt->act[i] = y;
    if (!training)
        for (int k = 0; k < n->ninputs; k++)
            if (rt->end[n->inputs[k]] == i) rt->act[n->inputs[k]] = NULL;
    return QL_OK;
}

ql_status ql_graph_forward(ql_graph *g, const ql_tensor *x, const ql_tensor **out, int training) {
    int64_t batch;
    if (out) *out = NULL;
    if (g->output < 0 || g->output >= g->nnodes)
        return ql_error(QL_ESTATE, "forward: output node %d does not exist", g->output);
    QL_TRY(check_input(g, x, &batch));
    QL_TRY(rt_ensure(g));
    ql_runtime *rt = g->rt;
    rt->trained = rt->have_input_grad = 0;
    rt->nn = g->nnodes;
    for (int i = 0; i < g->nnodes; i++) rt->act[i] = NULL;
    if (g->profile) QL_TRY(profile_ensure(g));
    analyse(g, rt);
    plan_fusion(g, rt, training);
    QL_TRY(plan_forward(g, rt, training));
    QL_TRY(set_input(g, rt, x, batch, training));
    if (g->observe && g->nodes[0].obs) QL_TRY(ql_observer_observe(g->nodes[0].obs, rt->act[0]));
    for (int i = 1; i < g->nnodes; i++) {
        if (!rt->needed[i]) continue;
        if (rt->into[i] >= 0) { rt->act[i] = rt->act[rt->into[i]]; continue; }
        ql_status st = run_node(g, rt, i, batch, training);
        if (st != QL_OK) {
            for (int k = 0; k < g->nnodes; k++) rt->act[k] = NULL;
            return ql_error_prefix(st, "node '%s' (%s) forward", g->nodes[i].name, ql_op_name(g->nodes[i].op));
        }
    }
    if (out) *out = rt->act[g->output];
    if (!training && g->output != 0) rt->act[0] = NULL;   /* x is the caller's */
    for (int i = 0; i < g->nnodes && !training; i++)     /* fused parts are not kept either */
        if (i != g->output && (rt->into[i] >= 0 || rt->fbn[i] >= 0 || rt->fact[i])) rt->act[i] = NULL;
    rt->trained = training;
    rt->batch = batch;
    return QL_OK;
}

/* rgrad[i]: node i's output gradient is needed (trainable parameters with a
 * grad buffer at or above it, or the input gradient was asked for). */
static void mark_rgrad(const ql_graph *g, ql_runtime *rt) {
    for (int i = 0; i < g->nnodes; i++) {
        const ql_node *n = &g->nodes[i];
        int r = i == 0 ? rt->want_input_grad : 0;
        for (int k = 0; k < n->nparams && !r; k++) r = n->params[k].trainable && n->params[k].grad;
        for (int k = 0; k < n->ninputs && !r; k++) r = rt->rgrad[n->inputs[k]];
        rt->rgrad[i] = (unsigned char)(r && rt->needed[i]);
    }
}

/* Gradient slots: node i's gradient lives from its last consumer's backward
 * (step nn-1-cmax) to its own (step nn-1-i). The output's is dout itself. */
static ql_status plan_backward(ql_graph *g, ql_runtime *rt) {
    int nn = g->nnodes;
    for (int i = 0; i < nn; i++) {
        rt->start[i] = -1;
        if (i == 0 || i == g->output || !rt->rgrad[i]) continue;
        rt->start[i] = nn - 1 - rt->cmax[i];
        rt->end[i] = nn - 1 - i;
        rt->size[i] = ql_node_numel(&g->nodes[i]);
    }
    int nslots = ql_plan_slots(nn, nn, rt->start, rt->end, rt->size, rt->slot, rt->slot_size, rt->busy);
    QL_TRY(ensure_slots(rt->gslots, nslots));
    if (rt->rgrad[0]) {
        if (!rt->input_grad && !(rt->input_grad = ql_tensor_new(QL_DTYPE_F32, 1, (int64_t[]){0})))
            return QL_ENOMEM;
        QL_TRY(resize_batch(rt->input_grad, rt->batch, &g->nodes[0]));
    }
    return QL_OK;
}

static ql_tensor *grad_buf(ql_runtime *rt, int i) { return i == 0 ? rt->input_grad : rt->gslots[rt->slot[i]]; }

/* Node j's backward: first writer of an input's gradient writes in place,
 * later ones write into acc and are added (several consumers, add(x, x)). */
static ql_status back_node(ql_graph *g, ql_runtime *rt, int j, const float *dy) {
    ql_node *n = &g->nodes[j];
    ql_op_ctx c = {.g = g, .n = n, .batch = rt->batch, .training = 1, .y = rt->act[j], .dy = dy};
    size_t off[QL_MAX_INPUTS], need = 0;
    int accum[QL_MAX_INPUTS] = {0};
    for (int k = 0; k < n->ninputs; k++) {
        int i = n->inputs[k];
        c.x[k] = rt->act[i];
        if (!rt->rgrad[i]) continue;
        ql_tensor *t = grad_buf(rt, i);
        if (!rt->ginit[i]) {
            if (i) QL_TRY(resize_batch(t, rt->batch, &g->nodes[i]));
            c.dx[k] = ql_f32(t);
            rt->ginit[i] = 1;
        } else {
            accum[k] = 1;
            off[k] = need;
            need += (size_t)t->numel;
        }
    }
    if (need > rt->acc_n) {
        ql_free(rt->acc);
        rt->acc_n = 0;
        if (!(rt->acc = ql_malloc(need * sizeof(float)))) return QL_ENOMEM;
        rt->acc_n = need;
    }
    for (int k = 0; k < n->ninputs; k++)
        if (accum[k]) c.dx[k] = rt->acc + off[k];
    QL_TRY(ql_op_def_get(n->op)->backward(&c));
    for (int k = 0; k < n->ninputs; k++) {
        if (!accum[k]) continue;
        ql_tensor *t = grad_buf(rt, n->inputs[k]);
        float *d = ql_f32(t);
        for (int64_t e = 0; e < t->numel; e++) d[e] += c.dx[k][e];
    }
    return QL_OK;
}

ql_status ql_graph_backward(ql_graph *g, const ql_tensor *dout) {
    ql_runtime *rt = g->rt;
    char a[128], b[128];
    if (!rt || !rt->trained || rt->nn != g->nnodes)
        return ql_error(QL_ESTATE, "backward needs a forward with training=1 first, on the same graph");
    const ql_tensor *y = rt->act[g->output];
    if (!dout || dout->dtype != QL_DTYPE_F32 || !ql_tensor_same_shape(dout, y))
        return ql_error(QL_ESHAPE, "backward: dout %s does not match the output %s",
                        dout ? ql_shape_str(dout->ndim, dout->shape, a, sizeof a) : "(none)",
                        ql_shape_str(y->ndim, y->shape, b, sizeof b));
    rt->have_input_grad = 0;
    mark_rgrad(g, rt);
    if (!rt->rgrad[g->output]) return QL_OK;   /* nothing to differentiate */
    QL_TRY(plan_backward(g, rt));
    memset(rt->ginit, 0, (size_t)g->nnodes);
    if (g->output == 0) memcpy(ql_f32(rt->input_grad), ql_f32(dout), ql_tensor_bytes(dout));
    for (int j = g->output; j >= 1; j--) {
        if (!rt->rgrad[j]) continue;
        const float *dy = j == g->output ? ql_f32(dout) : ql_f32(rt->gslots[rt->slot[j]]);
        QL_ASSERT(j == g->output || rt->ginit[j]);
        ql_status st = back_node(g, rt, j, dy);
        if (st != QL_OK)
            return ql_error_prefix(st, "node '%s' (%s) backward", g->nodes[j].name, ql_op_name(g->nodes[j].op));
    }
    rt->have_input_grad = rt->rgrad[0];
    return QL_OK;
}

void ql_graph_release(ql_graph *g) {
    if (g->rt) rt_clear(g->rt);
    for (int i = 0; i < g->nnodes; i++) ql_node_free_priv(&g->nodes[i]);
}

const ql_tensor *ql_graph_activation(const ql_graph *g, int i) {
    const ql_runtime *rt = g->rt;
    if (!rt || i < 0 || i >= g->nnodes || rt->nn != g->nnodes || i >= rt->cap) return NULL;
    return rt->act[i];
}

ql_status ql_graph_set_input_grad(ql_graph *g, int on) {
    QL_TRY(rt_get(g));
    g->rt->want_input_grad = on != 0;
    return QL_OK;
}

const ql_tensor *ql_graph_input_grad(const ql_graph *g) {
    const ql_runtime *rt = g->rt;
    return (rt && rt->have_input_grad && rt->nn == g->nnodes) ? rt->input_grad : NULL;
}
