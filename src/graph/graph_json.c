/* The graph as JSON, the "qlab.graph" entry of a .qlm file:
 *   {"format":"qlab.graph","version":1,"input":[28,28,1],"output":"fc",
 *    "nodes":[{"name":..,"op":..,"inputs":[..],"attrs":{..},"precision":"f32"}, ...]}
 * The reader trusts nothing: keys, types, names, cycles and attributes are
 * checked, and nodes may come in any order (they are sorted topologically). */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "qlab/alloc.h"
#include "qlab/model_file.h"

#define GRAPH_FORMAT "qlab.graph"
#define FORMAT_VERSION 1

/* ---- attributes ------------------------------------------------------- */

typedef enum { A_PAIR, A_INT, A_BOOL, A_FLOAT } attr_kind;
#define OPS(x) (1ull << (x))   /* 64 bits: room for every op */
#define CONVS (OPS(QL_OP_CONV2D) | OPS(QL_OP_QCONV2D) | OPS(QL_OP_CONV_BN) | OPS(QL_OP_F16CONV2D) | OPS(QL_OP_BF16CONV2D))
#define LSTMS (OPS(QL_OP_LSTM) | OPS(QL_OP_DLSTM) | OPS(QL_OP_F16LSTM) | OPS(QL_OP_BF16LSTM))
#define WINDOW (CONVS | OPS(QL_OP_MAXPOOL2D) | OPS(QL_OP_AVGPOOL2D) | OPS(QL_OP_QMAXPOOL2D))
#define WEIGHTED (CONVS | LSTMS | OPS(QL_OP_LINEAR) | OPS(QL_OP_QLINEAR) | OPS(QL_OP_DLINEAR) | \
                  OPS(QL_OP_F16LINEAR) | OPS(QL_OP_BF16LINEAR))

/* Every ql_attrs field, and the ops for which it is always written; other
 * fields are written only when they differ from ql_attrs_default. */
static const struct { const char *key; attr_kind kind; size_t off; unsigned long long ops; } attr_keys[] = {
    {"kernel", A_PAIR, offsetof(ql_attrs, kernel), WINDOW},
    {"stride", A_PAIR, offsetof(ql_attrs, stride), WINDOW},
    {"padding", A_PAIR, offsetof(ql_attrs, padding), WINDOW},
    {"dilation", A_PAIR, offsetof(ql_attrs, dilation), CONVS},
    {"groups", A_INT, offsetof(ql_attrs, groups), CONVS},
    {"in_ch", A_INT, offsetof(ql_attrs, in_ch), WEIGHTED | OPS(QL_OP_BATCHNORM2D)},
    {"out_ch", A_INT, offsetof(ql_attrs, out_ch), WEIGHTED},
    {"bias", A_BOOL, offsetof(ql_attrs, bias), WEIGHTED},
    {"layers", A_INT, offsetof(ql_attrs, layers), LSTMS},
    {"eps", A_FLOAT, offsetof(ql_attrs, eps), OPS(QL_OP_BATCHNORM2D) | OPS(QL_OP_CONV_BN)},
    {"momentum", A_FLOAT, offsetof(ql_attrs, momentum), OPS(QL_OP_BATCHNORM2D) | OPS(QL_OP_CONV_BN)},
    {"ceil_mode", A_BOOL, offsetof(ql_attrs, ceil_mode), OPS(QL_OP_MAXPOOL2D) | OPS(QL_OP_AVGPOOL2D) | OPS(QL_OP_QMAXPOOL2D)},
    {"count_include_pad", A_BOOL, offsetof(ql_attrs, count_include_pad), OPS(QL_OP_AVGPOOL2D)},
    {"act", A_INT, offsetof(ql_attrs, act), 0},
    {"f32_out", A_BOOL, offsetof(ql_attrs, f32_out), 0},
};
#define NATTRS (int)(sizeof attr_keys / sizeof *attr_keys)

static size_t attr_size(attr_kind k) { return k == A_PAIR ? 2 * sizeof(int) : k == A_FLOAT ? sizeof(float) : sizeof(int); }

/* The shortest decimal that reads back as the same float (1e-05, not 9.99999974e-06). */
static double float_for_json(float f) {
    char b[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, (double)f);
        if ((float)strtod(b, NULL) == f) break;
    }
    return strtod(b, NULL);
}

static cJSON *attrs_to_json(const ql_node *n) {
    ql_attrs def;
    ql_attrs_default(&def);
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; o && i < NATTRS; i++) {
        const char *p = (const char *)&n->a + attr_keys[i].off;
        if (!(attr_keys[i].ops & OPS(n->op)) && !memcmp(p, (const char *)&def + attr_keys[i].off, attr_size(attr_keys[i].kind)))
            continue;
        const int *v = (const int *)p;
        cJSON *j = NULL;
        switch (attr_keys[i].kind) {
        case A_PAIR: j = cJSON_CreateIntArray(v, 2); break;
        case A_INT: j = cJSON_CreateNumber(*v); break;
        case A_BOOL: j = cJSON_CreateBool(*v); break;
        case A_FLOAT: j = cJSON_CreateNumber(float_for_json(*(const float *)p)); break;
        }
        if (!j) { cJSON_Delete(o); return NULL; }
        cJSON_AddItemToObject(o, attr_keys[i].key, j);
    }
    return o;
}

static int json_int(const cJSON *j, int *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < -(double)INT_MAX || d > (double)INT_MAX) return -1;
    *out = (int)d;
    return 0;
}

static ql_status attr_from_json(const char *node, const cJSON *j, ql_attrs *a) {
    int i = 0;
    while (i < NATTRS && strcmp(attr_keys[i].key, j->string)) i++;
    if (i == NATTRS) return ql_error(QL_EFORMAT, "node '%s': unknown attribute '%s'", node, j->string);
    char *p = (char *)a + attr_keys[i].off;
    int *v = (int *)p, ok = 0;
    switch (attr_keys[i].kind) {
    case A_PAIR:
        if (cJSON_IsArray(j) && cJSON_GetArraySize(j) == 2)
            ok = !json_int(cJSON_GetArrayItem(j, 0), &v[0]) && !json_int(cJSON_GetArrayItem(j, 1), &v[1]);
        else if (!json_int(j, &v[0])) { v[1] = v[0]; ok = 1; }   /* "kernel": 3 means [3,3] */
        break;
    case A_INT: ok = !json_int(j, v); break;
    case A_BOOL:
        if (cJSON_IsBool(j)) { *v = cJSON_IsTrue(j); ok = 1; }
        else ok = !json_int(j, v) && (*v == 0 || *v == 1);
        break;
    case A_FLOAT:
        ok = cJSON_IsNumber(j) && isfinite(j->valuedouble) && fabs(j->valuedouble) < 1e30;
        if (ok) *(float *)p = (float)j->valuedouble;
        break;
    }
    if (!ok) {
        static const char *want[] = {"an integer or a pair of integers", "an integer", "a boolean", "a number"};
        return ql_error(QL_EFORMAT, "node '%s': attribute '%s' must be %s", node, j->string, want[attr_keys[i].kind]);
    }
    return QL_OK;
}

/* ---- graph -> JSON ------------------------------------------------------ */

static cJSON *node_to_json(const ql_graph *g, const ql_node *n) {
    cJSON *o = cJSON_CreateObject(), *in = cJSON_CreateArray(), *at = attrs_to_json(n);
    int ok = o && in && at && cJSON_AddStringToObject(o, "name", n->name) &&
             cJSON_AddStringToObject(o, "op", ql_op_name(n->op));
    for (int k = 0; ok && k < n->ninputs; k++) {
        cJSON *s = cJSON_CreateString(g->nodes[n->inputs[k]].name);
        ok = s != NULL;
        if (s) cJSON_AddItemToArray(in, s);
    }
    if (ok) {
        cJSON_AddItemToObject(o, "inputs", in);
        cJSON_AddItemToObject(o, "attrs", at);
        if (n->out_dtype == QL_DTYPE_U8) {   /* the output's quantization parameters */
            cJSON *q = cJSON_AddObjectToObject(o, "qparams");
            if (!q || !cJSON_AddNumberToObject(q, "scale", float_for_json(n->out_scale)) ||
                !cJSON_AddNumberToObject(q, "zero_point", n->out_zero) ||
                ((n->out_qmin != 0 || n->out_qmax != 255) &&   /* written only when narrowed */
                 (!cJSON_AddNumberToObject(q, "qmin", n->out_qmin) || !cJSON_AddNumberToObject(q, "qmax", n->out_qmax)))) {
                cJSON_Delete(o);
                return NULL;
            }
        }
        if (cJSON_AddStringToObject(o, "precision", n->precision)) return o;
        in = at = NULL;
    }
    cJSON_Delete(in); cJSON_Delete(at); cJSON_Delete(o);
    return NULL;
}

char *ql_graph_to_json(const ql_graph *g) {
    cJSON *root = cJSON_CreateObject(), *nodes = cJSON_CreateArray(), *shape = cJSON_CreateArray();
    int ok = root && nodes && shape && cJSON_AddStringToObject(root, "format", GRAPH_FORMAT) &&
             cJSON_AddNumberToObject(root, "version", FORMAT_VERSION);
    for (int i = 0; ok && i < g->nodes[0].out_ndim; i++) {
        cJSON *d = cJSON_CreateNumber((double)g->nodes[0].out_shape[i]);
        ok = d != NULL;
        if (d) cJSON_AddItemToArray(shape, d);
    }
    for (int i = 1; ok && i < g->nnodes; i++) {
        cJSON *n = node_to_json(g, &g->nodes[i]);
        ok = n != NULL;
        if (n) cJSON_AddItemToArray(nodes, n);
    }
    char *s = NULL, *out = NULL;
    if (ok) {
        cJSON_AddItemToObject(root, "input", shape);
        shape = NULL;
        ok = cJSON_AddStringToObject(root, "output", g->nodes[g->output].name) != NULL;
        cJSON_AddItemToObject(root, "nodes", nodes);
        nodes = NULL;
    }
    if (ok && (s = cJSON_PrintUnformatted(root))) out = ql_strdup(s);
    cJSON_free(s);
    cJSON_Delete(root); cJSON_Delete(nodes); cJSON_Delete(shape);
    if (!out) ql_error(QL_ENOMEM, "out of memory writing the graph as JSON");
    return out;
}

/* ---- JSON -> graph ------------------------------------------------------ */

typedef struct {
    const char *name;
    ql_op_type op;
    int ninputs;
    int inputs[QL_MAX_INPUTS];   /* index into the parsed list; -1 = the graph input */
    ql_attrs a;
    const char *precision;
    int has_q;                   /* "qparams" given */
    float scale;
    int zero_point, qmin, qmax;
    int placed;                  /* index in the built graph, 0 until placed */
} jnode;

static ql_status bad(const char *fmt, const char *a, const char *b) {
    return ql_error(QL_EFORMAT, fmt, a, b);
}

static ql_status parse_node(const cJSON *j, int idx, jnode *n) {
    char where[32];
    snprintf(where, sizeof where, "#%d", idx);
    if (!cJSON_IsObject(j)) return bad("node %s%s is not a JSON object", where, "");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (!cJSON_IsString(name) || !name->valuestring[0]) return bad("node %s%s has no \"name\" string", where, "");
    n->name = name->valuestring;
    for (const cJSON *k = j->child; k; k = k->next)
        if (strcmp(k->string, "name") && strcmp(k->string, "op") && strcmp(k->string, "inputs") &&
            strcmp(k->string, "attrs") && strcmp(k->string, "precision") && strcmp(k->string, "qparams"))
            return bad("node '%s': unknown key '%s'", n->name, k->string);
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "op");
    if (!cJSON_IsString(op)) return bad("node '%s': no \"op\" string%s", n->name, "");
    if (ql_op_from_name(op->valuestring, &n->op) || n->op == QL_OP_INPUT)
        return bad("node '%s': unknown op '%s'", n->name, op->valuestring);
    ql_attrs_default(&n->a);
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "attrs");
    if (at && !cJSON_IsObject(at)) return bad("node '%s': \"attrs\" is not an object%s", n->name, "");
    for (const cJSON *k = at ? at->child : NULL; k; k = k->next) QL_TRY(attr_from_json(n->name, k, &n->a));
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "precision");
    n->precision = "f32";
    if (pr && (!cJSON_IsString(pr) || !pr->valuestring[0] || strlen(pr->valuestring) >= sizeof ((ql_node *)0)->precision))
        return bad("node '%s': \"precision\" must be a short string such as \"f32\"%s", n->name, "");
    if (pr) n->precision = pr->valuestring;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "qparams");
    n->has_q = q != NULL;
    if (q) {
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(q, "scale"), *zp = cJSON_GetObjectItemCaseSensitive(q, "zero_point");
        if (!cJSON_IsObject(q) || !cJSON_IsNumber(sc) || !cJSON_IsNumber(zp) || !(sc->valuedouble > 0) ||
            !isfinite(sc->valuedouble) || sc->valuedouble > 1e30 || zp->valuedouble != floor(zp->valuedouble) ||
            zp->valuedouble < 0 || zp->valuedouble > 255)
            return bad("node '%s': \"qparams\" must be {\"scale\": > 0, \"zero_point\": 0..255}%s", n->name, "");
        n->scale = (float)sc->valuedouble;
        n->zero_point = (int)zp->valuedouble;
        // optional output code range (reduce_range): 0 <= qmin <= zero_point <= qmax <= 255, qmin < qmax
        for (const cJSON *k = q->child; k; k = k->next)
            if (strcmp(k->string, "scale") && strcmp(k->string, "zero_point") && strcmp(k->string, "qmin") &&
                strcmp(k->string, "qmax"))
                return bad("node '%s': unknown \"qparams\" key '%s'", n->name, k->string);
        const cJSON *lo = cJSON_GetObjectItemCaseSensitive(q, "qmin"), *hi = cJSON_GetObjectItemCaseSensitive(q, "qmax");
        if ((lo && !cJSON_IsNumber(lo)) || (hi && !cJSON_IsNumber(hi)))
            return bad("node '%s': \"qmin\" / \"qmax\" must be integers%s", n->name, "");
        double a = lo ? lo->valuedouble : 0, b = hi ? hi->valuedouble : 255;
        if (a != floor(a) || b != floor(b) || a < 0 || b > 255 || a >= b || zp->valuedouble < a || zp->valuedouble > b)
            return bad("node '%s': \"qparams\" need integers 0 <= qmin <= zero_point <= qmax <= 255, qmin < qmax%s",
                       n->name, "");
        n->qmin = (int)a;
        n->qmax = (int)b;
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "inputs");
    if (!cJSON_IsArray(in)) return bad("node '%s': no \"inputs\" array%s", n->name, "");
    if (cJSON_GetArraySize(in) > QL_MAX_INPUTS) return bad("node '%s': too many inputs%s", n->name, "");
    for (const cJSON *k = in->child; k; k = k->next)
        if (!cJSON_IsString(k)) return bad("node '%s': \"inputs\" must hold node names%s", n->name, "");
    return QL_OK;
}

/* Input names to indices (the implicit "input" node is -1). */
static ql_status resolve(const cJSON *jnodes, jnode *ns, int n) {
    int i = 0;
    for (const cJSON *j = jnodes->child; j; j = j->next, i++) {
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "inputs");
        ns[i].ninputs = 0;
        for (const cJSON *k = in->child; k; k = k->next) {
            int src = -2;
            if (!strcmp(k->valuestring, "input")) src = -1;
            for (int m = 0; m < n && src == -2; m++)
                if (!strcmp(ns[m].name, k->valuestring)) src = m;
            if (src == -2) return bad("node '%s': unknown input '%s'", ns[i].name, k->valuestring);
            if (src == i) return bad("node '%s': is its own input%s", ns[i].name, "");
            ns[i].inputs[ns[i].ninputs++] = src;
        }
    }
    return QL_OK;
}

/* A node that is not placed has an unplaced input; following inputs must
 * come back to a node already seen: that loop is a cycle. */
static ql_status report_cycle(const jnode *ns, int n, int from) {
    int *pos = ql_calloc((size_t)n * sizeof *pos), *walk = ql_malloc((size_t)n * sizeof *walk), len = 0, u = from;
    if (!pos || !walk) { ql_free(pos); ql_free(walk); return QL_ENOMEM; }
    while (!pos[u]) {
        walk[len++] = u;
        pos[u] = len;
        int next = -1;
        for (int k = 0; k < ns[u].ninputs && next < 0; k++)
            if (ns[u].inputs[k] >= 0 && !ns[ns[u].inputs[k]].placed) next = ns[u].inputs[k];
        QL_ASSERT(next >= 0);
        u = next;
    }
    /* walk[p..len-1] goes against the data flow; print it along, from u to u. */
    char path[600];
    int p = pos[u] - 1;
    size_t k = (size_t)snprintf(path, sizeof path, "'%s'", ns[u].name);
    for (int i = len - 1; i >= p && k < sizeof path; i--)
        k += (size_t)snprintf(path + k, sizeof path - k, " -> '%s'", ns[walk[i]].name);
    ql_free(pos);
    ql_free(walk);
    return ql_error(QL_EFORMAT, "the graph has a cycle: %s", path);
}

/* Builds the graph in a topological order (file order among ready nodes). */
static ql_status build(ql_graph *g, jnode *ns, int n) {
    for (int done = 0; done < n;) {
        int progress = 0;
        for (int i = 0; i < n; i++) {
            if (ns[i].placed) continue;
            int ready = 1, idx[QL_MAX_INPUTS];
            for (int k = 0; k < ns[i].ninputs && ready; k++) {
                int s = ns[i].inputs[k];
                ready = s < 0 || ns[s].placed;
                idx[k] = s < 0 ? 0 : ns[s].placed;
            }
            if (!ready) continue;
            int at = ql_graph_add(g, ns[i].name, ns[i].op, idx, ns[i].ninputs, &ns[i].a);
            if (at < 0) return QL_EFORMAT;
            strcpy(g->nodes[at].precision, ns[i].precision);
            if ((g->nodes[at].out_dtype == QL_DTYPE_U8) != ns[i].has_q)
                return bad("node '%s': %s", ns[i].name, ns[i].has_q ? "\"qparams\" given for an op without a quantized output"
                                                                   : "a quantized op needs \"qparams\"");
            if (ns[i].has_q) {
                ql_node *d = &g->nodes[at];
                d->out_scale = ns[i].scale; d->out_zero = ns[i].zero_point;
                d->out_qmin = ns[i].qmin; d->out_qmax = ns[i].qmax;
            }
            ns[i].placed = at;
            done++;
            progress = 1;
        }
        if (!progress) {
            for (int i = 0; i < n; i++)
                if (!ns[i].placed) return report_cycle(ns, n, i);
        }
    }
    return QL_OK;
}

static ql_status parse_input_shape(const cJSON *j, int *ndim, int64_t *shape) {
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) < 1 || cJSON_GetArraySize(j) >= QL_MAX_DIMS)
        return ql_error(QL_EFORMAT, "\"input\" must be the per-sample shape, an array of 1..%d sizes", QL_MAX_DIMS - 1);
    *ndim = 0;
    for (const cJSON *d = j->child; d; d = d->next) {
        int v;
        if (json_int(d, &v) || v < 1) return ql_error(QL_EFORMAT, "\"input\" sizes must be positive integers");
        shape[(*ndim)++] = v;
    }
    return QL_OK;
}

static ql_status check_header(const cJSON *root) {
    if (!cJSON_IsObject(root)) return ql_error(QL_EFORMAT, "the graph JSON is not an object");
    for (const cJSON *k = root->child; k; k = k->next)
        if (strcmp(k->string, "format") && strcmp(k->string, "version") && strcmp(k->string, "input") &&
            strcmp(k->string, "output") && strcmp(k->string, "nodes"))
            return ql_error(QL_EFORMAT, "unknown key '%s' in the graph JSON", k->string);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, GRAPH_FORMAT))
        return ql_error(QL_EFORMAT, "the graph JSON has no \"format\": \"%s\"", GRAPH_FORMAT);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
    int ver;
    if (json_int(v, &ver) || ver != FORMAT_VERSION)
        return ql_error(QL_EFORMAT, "graph format version %s is not supported (this qlab reads %d)",
                        cJSON_IsNumber(v) ? "given" : "missing", FORMAT_VERSION);
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "output")))
        return ql_error(QL_EFORMAT, "the graph JSON has no \"output\" node name");
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "nodes")))
        return ql_error(QL_EFORMAT, "the graph JSON has no \"nodes\" array");
    return QL_OK;
}

static ql_status from_tree(const cJSON *root, ql_graph **out) {
    QL_TRY(check_header(root));
    int ndim = 0;
    int64_t shape[QL_MAX_DIMS];
    QL_TRY(parse_input_shape(cJSON_GetObjectItemCaseSensitive(root, "input"), &ndim, shape));
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    int n = cJSON_GetArraySize(jn), i = 0;
    jnode *ns = ql_calloc((size_t)(n ? n : 1) * sizeof *ns);
    if (!ns) return QL_ENOMEM;
    ql_status st = QL_OK;
    for (const cJSON *j = jn->child; j && st == QL_OK; j = j->next, i++) st = parse_node(j, i, &ns[i]);
    for (i = 0; i < n && st == QL_OK; i++) {
        if (!strcmp(ns[i].name, "input")) st = bad("node name '%s' is reserved for the graph input%s", "input", "");
        for (int m = 0; m < i && st == QL_OK; m++)
            if (!strcmp(ns[i].name, ns[m].name)) st = bad("duplicate node name '%s'%s", ns[i].name, "");
    }
    if (st == QL_OK) st = resolve(jn, ns, n);
    ql_graph *g = NULL;
    if (st == QL_OK && !(g = ql_graph_new(ndim, shape))) st = QL_ENOMEM;
    if (st == QL_OK) st = build(g, ns, n);
    if (st == QL_OK) {
        const char *o = cJSON_GetObjectItemCaseSensitive(root, "output")->valuestring;
        int idx = ql_graph_find(g, o);
        if (idx < 0) st = bad("\"output\" names '%s', which is not a node%s", o, "");
        else g->output = idx;
    }
    ql_free(ns);
    if (st != QL_OK) { ql_graph_free(g); return st; }
    *out = g;
    return QL_OK;
}

ql_status ql_graph_from_json(const char *json, ql_graph **out) {
    *out = NULL;
    if (!json) return ql_error(QL_EINVAL, "no graph JSON");
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = (at && at >= json && at <= json + strlen(json)) ? (long)(at - json) : -1;
        return ql_error(QL_EFORMAT, "the graph is not valid JSON (error near offset %ld: '%.24s')", off,
                        off >= 0 ? at : "");
    }
    ql_status st = from_tree(root, out);
    cJSON_Delete(root);
    return st;
}
