/* ONNX import driver: parses the model, binds initializers and the one
 * run-time input, sorts the nodes (rejecting cycles and dangling inputs) and
 * imports them one by one through the op handlers (onnx_import_ops.c,
 * onnx_import_q.c). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "io/onnx_import.h"

/* ---- values ------------------------------------------------------------------ */

onnx_val *imp_find(onnx_imp *c, const char *name) {
    if (!name || !name[0]) return NULL;
    for (int i = c->nv - 1; i >= 0; i--)
        if (!strcmp(c->v[i].name, name)) return &c->v[i];
    return NULL;
}

int imp_has_in(const onnx_imp *c, int k) {
    return k < (int)c->cur->n_input && c->cur->input[k] && c->cur->input[k][0];
}

ql_status imp_in(onnx_imp *c, int k, onnx_val **out) {
    *out = NULL;
    if (!imp_has_in(c, k))
        return ql_error(QL_EFORMAT, "%s: input %d is missing", onnx_where(c->cur, c->opset), k);
    if (!(*out = imp_find(c, c->cur->input[k])))
        return ql_error(QL_EFORMAT, "%s: input '%s' is not produced by any node", onnx_where(c->cur, c->opset),
                        c->cur->input[k]);
    return QL_OK;
}

const ql_tensor *imp_const(onnx_imp *c, int k) {
    onnx_val *v = imp_has_in(c, k) ? imp_find(c, c->cur->input[k]) : NULL;
    return v && v->node < 0 ? v->cst : NULL;
}

static onnx_val *new_val(onnx_imp *c, const char *name) {
    if (imp_find(c, name)) {
        ql_error(QL_EFORMAT, "%s: value '%s' is defined twice", c->cur ? onnx_where(c->cur, c->opset) : "graph", name);
        return NULL;
    }
    if (c->nv >= c->cap) {   /* capacity is counted up front: pointers into v stay valid */
        ql_error(QL_EFORMAT, "graph: more values than names");
        return NULL;
    }
    onnx_val *v = &c->v[c->nv++];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->node = v->fnode = -1;
    return v;
}

onnx_val *imp_out(onnx_imp *c, int k, int node, onnx_vkind kind) {
    if (k >= (int)c->cur->n_output || !c->cur->output[k] || !c->cur->output[k][0]) {
        ql_error(QL_EFORMAT, "%s: output %d is missing", onnx_where(c->cur, c->opset), k);
        return NULL;
    }
    onnx_val *v = new_val(c, c->cur->output[k]);
    if (v) { v->node = node; v->kind = kind; }
    return v;
}

onnx_val *imp_out_const(onnx_imp *c, int k, ql_tensor *t) {
    onnx_val *v = t ? imp_out(c, k, -1, V_PLAIN) : NULL;
    if (v) v->cst = t;
    else ql_tensor_free(t);
    return v;
}

ql_status imp_unsupported(onnx_imp *c, const char *why) {
    return ql_error(QL_EUNSUPPORTED, "%s: %s", onnx_where(c->cur, c->opset), why);
}

/* ---- nodes ------------------------------------------------------------------- */

const char *imp_base(onnx_imp *c, const char *weight, char *buf, size_t len) {
    size_t wl = weight ? strlen(weight) : 0;
    if (wl > 7 && !strcmp(weight + wl - 7, ".weight")) snprintf(buf, len, "%.*s", (int)(wl - 7), weight);
    else if (c->cur->name && c->cur->name[0]) snprintf(buf, len, "%s", c->cur->name);
    else snprintf(buf, len, "%s_%d", c->cur->op_type, c->g->nnodes);
    return buf;
}

int imp_add(onnx_imp *c, const char *base, ql_op_type op, const int *in, int nin, const ql_attrs *a) {
    char name[300];
    snprintf(name, sizeof name, "%s", base);
    for (int k = 2; ql_graph_find(c->g, name) >= 0; k++) snprintf(name, sizeof name, "%.280s_%d", base, k);
    int idx = ql_graph_add(c->g, name, op, in, nin, a);
    if (idx < 0) ql_error_prefix(QL_EINVAL, "%s", onnx_where(c->cur, c->opset));
    return idx;
}

int imp_f32(onnx_imp *c, onnx_val *v) {
    if (v->node < 0) {
        ql_error(QL_EUNSUPPORTED, "%s: '%s' is a constant where qlab needs a computed tensor",
                 onnx_where(c->cur, c->opset), v->name);
        return -1;
    }
    if (!v->dq && c->g->nodes[v->node].out_dtype != QL_DTYPE_F32) {
        ql_error(QL_EUNSUPPORTED, "%s: '%s' is a uint8 tensor; this op needs a DequantizeLinear before it",
                 onnx_where(c->cur, c->opset), v->name);
        return -1;
    }
    if (!v->dq) return v->node;
    if (v->fnode < 0) {
        char name[300];
        snprintf(name, sizeof name, "%s_dequant", c->g->nodes[v->node].name);
        v->fnode = imp_add(c, name, QL_OP_DEQUANTIZE, &v->node, 1, NULL);
    }
    return v->fnode;
}

static int is_graph_output(const onnx_imp *c, const char *name) {
    for (size_t i = 0; i < c->gp->n_output; i++)
        if (c->gp->output[i]->name && !strcmp(c->gp->output[i]->name, name)) return 1;
    return 0;
}

int imp_sole_consumer(onnx_imp *c, const char *name) {
    int who = -1, count = 0;
    if (!name || !name[0] || is_graph_output(c, name)) return -1;
    for (size_t i = 0; i < c->gp->n_node; i++)
        for (size_t k = 0; k < c->gp->node[i]->n_input; k++)
            if (c->gp->node[i]->input[k] && !strcmp(c->gp->node[i]->input[k], name)) { who = (int)i; count++; }
    return count == 1 ? who : -1;
}

/* ---- graph ------------------------------------------------------------------- */

static const ql_tensor *bound(const ql_onnx_import *o, const char *name) {
    for (int i = 0; o && i < o->nbind; i++)
        if (o->bind[i].name && !strcmp(o->bind[i].name, name)) return o->bind[i].value;
    return NULL;
}

static int is_initializer(const Onnx__GraphProto *gp, const char *name) {
    for (size_t i = 0; i < gp->n_initializer; i++)
        if (gp->initializer[i]->name && !strcmp(gp->initializer[i]->name, name)) return 1;
    return 0;
}

/* The graph's run-time input becomes the qlab input node: (N, d1..) with dims known past N. */
static ql_status make_input(onnx_imp *c, const Onnx__ValueInfoProto *vi, ql_onnx_import *o) {
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return ql_error(QL_EUNSUPPORTED, "graph input '%s' is not a tensor", vi->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return ql_error(QL_EUNSUPPORTED, "graph input '%s' has ONNX type %d; qlab models take float inputs",
                        vi->name, (int)tt->elem_type);
    const Onnx__TensorShapeProto *sh = tt->shape;
    int r = sh ? (int)sh->n_dim : 0;
    if (r < 2 || r > QL_MAX_DIMS)
        return ql_error(QL_EUNSUPPORTED, "graph input '%s' has rank %d; qlab needs (N, ...) with 2..%d dimensions",
                        vi->name, r, QL_MAX_DIMS);
    int64_t d[QL_MAX_DIMS], s[QL_MAX_DIMS];
    for (int i = 1; i < r; i++) {
        const Onnx__TensorShapeProto__Dimension *dm = sh->dim[i];
        if (dm->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || dm->dim_value < 1)
            return ql_error(QL_EUNSUPPORTED, "graph input '%s': dimension %d is not a fixed size (only the batch "
                            "dimension may vary)", vi->name, i);
        d[i] = dm->dim_value;
    }
    int nd = r - 1, who = imp_sole_consumer(c, vi->name);
    int tnf = r == 3 && who >= 0 && c->gp->node[who]->op_type && !strcmp(c->gp->node[who]->op_type, "LSTM");
    if (tnf && (sh->dim[0]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || sh->dim[0]->dim_value < 1))
        return ql_error(QL_EUNSUPPORTED, "graph input '%s' is a time-major sequence (T,N,F) without a fixed T", vi->name);
    if (r == 4) { s[0] = d[2]; s[1] = d[3]; s[2] = d[1]; }
    else if (tnf) { s[0] = sh->dim[0]->dim_value; s[1] = d[2]; }   /* (T,N,F) read as N sequences (T,F) */
    else memcpy(s, d + 1, (size_t)nd * sizeof *s);
    if (!(c->g = ql_graph_new(nd, s))) return QL_EINVAL;
    onnx_val *v = new_val(c, vi->name);
    if (!v) return QL_EFORMAT;
    v->node = 0;
    v->kind = r == 4 ? V_NCHW : tnf ? V_TNF : V_PLAIN;
    if (o) {
        o->in_layout = r == 4 ? QL_ONNX_NCHW : tnf ? QL_ONNX_TNF : QL_ONNX_PLAIN;
        snprintf(o->input_name, sizeof o->input_name, "%s", vi->name);
    }
    return QL_OK;
}

static ql_status add_const(onnx_imp *c, const char *name, ql_tensor *t) {
    onnx_val *v = t ? new_val(c, name) : NULL;
    if (!v) { ql_tensor_free(t); return t ? QL_EFORMAT : QL_ENOMEM; }
    v->cst = t;
    return QL_OK;
}

static ql_status bind_inputs(onnx_imp *c, ql_onnx_import *o) {
    const Onnx__GraphProto *gp = c->gp;
    for (size_t i = 0; i < gp->n_initializer; i++) {
        ql_tensor *t;
        if (!gp->initializer[i]->name || !gp->initializer[i]->name[0])
            return ql_error(QL_EFORMAT, "initializer %zu has no name", i);
        QL_TRY(onnx_tensor_decode(gp->initializer[i], &t));
        QL_TRY(add_const(c, gp->initializer[i]->name, t));
    }
    const Onnx__ValueInfoProto *run = NULL;
    int nrun = 0;
    char names[256] = "";
    for (size_t i = 0; i < gp->n_input; i++) {
        const char *nm = gp->input[i]->name;
        if (!nm || !nm[0]) return ql_error(QL_EFORMAT, "graph input %zu has no name", i);
        if (is_initializer(gp, nm)) continue;
        const ql_tensor *b = bound(o, nm);
        if (b) {
            ql_tensor *t = ql_tensor_clone(b);
            QL_TRY(add_const(c, nm, t));
            continue;
        }
        if (nrun++ == 0) run = gp->input[i];
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s'%s'", l ? ", " : "", nm);
    }
    if (nrun != 1)
        return ql_error(QL_EUNSUPPORTED, "qlab models take one input; this graph has %d (%s)", nrun, names);
    return make_input(c, run, o);
}

static int produced_by(const Onnx__GraphProto *gp, const unsigned char *placed, const char *name) {
    for (size_t j = 0; j < gp->n_node; j++)
        if (placed[j])
            for (size_t m = 0; m < gp->node[j]->n_output; m++)
                if (gp->node[j]->output[m] && !strcmp(gp->node[j]->output[m], name)) return 1;
    return 0;
}

/* Kahn by passes over the nodes not yet placed (only those reading nothing computed when
 * stat: constants, their dequantization, shape arithmetic on them). */
static void kahn(onnx_imp *c, int *order, size_t *count, unsigned char *placed, int stat) {
    const Onnx__GraphProto *gp = c->gp;
    for (int progress = 1; progress;) {
        progress = 0;
        for (size_t i = 0; i < gp->n_node; i++) {
            if (placed[i]) continue;
            const Onnx__NodeProto *nd = gp->node[i];
            int ready = 1;
            for (size_t k = 0; ready && k < nd->n_input; k++) {
                const char *in = nd->input[k];
                if (!in || !in[0]) continue;
                const onnx_val *v = imp_find(c, in);
                if (v) ready = !stat || v->node < 0;   /* the graph input, an initializer or a bound input */
                else ready = produced_by(gp, placed, in);
            }
            if (ready) { placed[i] = 1; order[(*count)++] = (int)i; progress = 1; }
        }
    }
}

/* Topological order into order[], constants first (so that a fused pattern finds the
 * constants of its later nodes); errors name a dangling input or a node on a cycle. */
static ql_status sort_nodes(onnx_imp *c, int *order) {
    const Onnx__GraphProto *gp = c->gp;
    size_t n = gp->n_node, count = 0;
    unsigned char *placed = ql_calloc(n ? n : 1);
    if (!placed) return QL_ENOMEM;
    kahn(c, order, &count, placed, 1);
    kahn(c, order, &count, placed, 0);
    ql_status st = QL_OK;
    for (size_t i = 0; count < n && i < n && st == QL_OK; i++) {   /* a missing producer, or a cycle */
        if (placed[i]) continue;
        const Onnx__NodeProto *nd = gp->node[i];
        for (size_t k = 0; k < nd->n_input && st == QL_OK; k++) {
            const char *in = nd->input[k];
            int made = !in || !in[0] || imp_find(c, in);
            for (size_t j = 0; j < n && !made; j++)
                for (size_t m = 0; m < gp->node[j]->n_output; m++)
                    if (gp->node[j]->output[m] && !strcmp(gp->node[j]->output[m], in)) made = 1;
            if (!made) st = ql_error(QL_EFORMAT, "%s: input '%s' is not produced by any node", onnx_where(nd, c->opset), in);
        }
    }
    for (size_t i = 0; count < n && i < n && st == QL_OK; i++)
        if (!placed[i]) st = ql_error(QL_EFORMAT, "the graph has a cycle through %s", onnx_where(gp->node[i], c->opset));
    ql_free(placed);
    return st;
}

static ql_status import_nodes(onnx_imp *c) {
    const Onnx__GraphProto *gp = c->gp;
    int *order = ql_malloc(sizeof(int) * (gp->n_node ? gp->n_node : 1));
    if (!order) return QL_ENOMEM;
    ql_status st = sort_nodes(c, order);
    for (size_t i = 0; st == QL_OK && i < gp->n_node; i++) {
        int j = order[i];
        if (c->done[j]) continue;
        c->cur = gp->node[j];
        c->done[j] = 1;
        const char *op = c->cur->op_type ? c->cur->op_type : "", *dom = c->cur->domain ? c->cur->domain : "";
        if (imp_try_fold(c, &st) || imp_try_fused(c, &st)) continue;
        imp_fn f = imp_fp32_handler(op, dom);
        if (!f) f = imp_q_handler(op, dom);
        st = f ? f(c) : imp_unsupported(c, "this op is not supported by qlab (docs/onnx.md lists the ops)");
    }
    ql_free(order);
    return st;
}

static ql_status set_output(onnx_imp *c, ql_onnx_import *o) {
    const Onnx__GraphProto *gp = c->gp;
    if (gp->n_output < 1) return ql_error(QL_EFORMAT, "the graph has no output");
    const char *nm = gp->output[0]->name;
    onnx_val *v = imp_find(c, nm);
    if (!v) return ql_error(QL_EFORMAT, "graph output '%s' is not produced by any node", nm ? nm : "");
    if (v->node < 0) return ql_error(QL_EUNSUPPORTED, "graph output '%s' is a constant", nm);
    int idx = v->node;
    char name[300];
    if (v->kind == V_H1N) {   /* LSTM Y_h (1,N,H): the last step, same element order as (N,H) */
        snprintf(name, sizeof name, "%s.last", c->g->nodes[v->node].name);
        if ((idx = ql_graph_add(c->g, name, QL_OP_SEQ_LAST, &v->node, 1, NULL)) < 0) return QL_EINVAL;
    } else if (v->dq) {
        snprintf(name, sizeof name, "%s_dequant", c->g->nodes[v->node].name);
        if (v->fnode < 0 && (v->fnode = ql_graph_add(c->g, name, QL_OP_DEQUANTIZE, &v->node, 1, NULL)) < 0)
            return QL_EINVAL;
        idx = v->fnode;
    } else if (v->kind == V_TNF || v->kind == V_LSTMY) {
        return ql_error(QL_EUNSUPPORTED, "graph output '%s' is a time-major sequence; qlab gives batch-first "
                        "outputs (transpose it in the model)", nm);
    }
    if (o) {
        o->out_layout = v->kind == V_NCHW ? QL_ONNX_NCHW : v->kind == V_C11 ? QL_ONNX_C11 : QL_ONNX_PLAIN;
        snprintf(o->output_name, sizeof o->output_name, "%s", nm);
    }
    return ql_graph_set_output(c->g, idx);
}

static ql_status find_opset(const Onnx__ModelProto *m, int64_t *opset) {
    *opset = -1;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const char *d = m->opset_import[i]->domain;
        if (!d || !d[0] || !strcmp(d, "ai.onnx")) *opset = m->opset_import[i]->version;
    }
    if (*opset < 0)
        return ql_error(QL_EUNSUPPORTED, "the model imports no opset of the default ONNX domain (only %s)",
                        m->n_opset_import && m->opset_import[0]->domain ? m->opset_import[0]->domain : "none");
    if (*opset < 1 || *opset > 21)
        return ql_error(QL_EUNSUPPORTED, "opset %lld is outside the 1..21 qlab reads", (long long)*opset);
    return QL_OK;
}

ql_status ql_onnx_load_mem(const uint8_t *buf, size_t len, ql_graph **out, ql_onnx_import *o) {
    *out = NULL;
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    if (!m) return ql_error(QL_EFORMAT, "not an ONNX model (malformed or truncated protobuf)");
    onnx_imp c = {0};
    ql_status st = m->graph ? find_opset(m, &c.opset) : ql_error(QL_EFORMAT, "the ONNX model has no graph");
    if (st == QL_OK) {
        c.gp = m->graph;
        int cap = (int)(c.gp->n_initializer + c.gp->n_input) + 8;
        for (size_t i = 0; i < c.gp->n_node; i++) cap += (int)c.gp->node[i]->n_output;
        c.cap = cap;
        c.v = ql_calloc(sizeof *c.v * (size_t)cap);
        c.done = ql_calloc(c.gp->n_node + 1);
        if (!c.v || !c.done) st = QL_ENOMEM;
    }
    if (o) o->opset = c.opset;
    c.simulate = o && o->simulate;
    if (st == QL_OK) st = bind_inputs(&c, o);
    if (st == QL_OK) st = import_nodes(&c);
    if (st == QL_OK) st = set_output(&c, o);
    for (int i = 0; i < c.nv; i++) {
        ql_tensor_free(c.v[i].cst);
        ql_tensor_free(c.v[i].q);
        ql_tensor_free(c.v[i].qscale);
        ql_tensor_free(c.v[i].qzero);
    }
    ql_free(c.v);
    ql_free(c.done);
    onnx__model_proto__free_unpacked(m, NULL);
    if (st != QL_OK) { ql_graph_free(c.g); return st; }
    c.g->version++;
    *out = c.g;
    return QL_OK;
}

ql_status ql_onnx_load(const char *path, ql_graph **out, ql_onnx_import *o) {
    uint8_t *buf;
    size_t len;
    *out = NULL;
    QL_TRY(onnx_read_file(path, &buf, &len));
    ql_status st = ql_onnx_load_mem(buf, len, out, o);
    ql_free(buf);
    return st == QL_OK ? QL_OK : ql_error_prefix(st, "loading %s", path);
}
