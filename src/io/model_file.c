/* .qlm model files: PyTorch-named tensors in a safetensors file plus the
 * graph as JSON in __metadata__["qlab.graph"] (graph_json.c). Loading trusts
 * nothing: every tensor must be exactly the parameter the graph expects. */
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/model_file.h"
#include "qlab/safetensors.h"

#define GRAPH_KEY "qlab.graph"

/* ---- files ---------------------------------------------------------------- */

ql_status ql_model_save(const ql_graph *g, const char *path) {
    ql_st_writer *w = ql_st_writer_new();
    char *json = ql_graph_to_json(g);
    ql_status st = (w && json) ? QL_OK : QL_ENOMEM;
    for (int i = 0; i < g->nnodes && st == QL_OK; i++)
        for (int k = 0; k < g->nodes[i].nparams && st == QL_OK; k++)
            st = ql_st_writer_add(w, g->nodes[i].params[k].name, g->nodes[i].params[k].value);
    if (st == QL_OK) st = ql_st_writer_meta(w, GRAPH_KEY, json);
    if (st == QL_OK) st = ql_st_writer_meta(w, "format", "pt");   /* what safetensors' torch loader expects */
    if (st == QL_OK) st = ql_st_writer_write(w, path);
    ql_st_writer_free(w);
    ql_free(json);
    return st == QL_OK ? QL_OK : ql_error_prefix(st, "saving %s", path);
}

/* "file has (10,256), model expects (10,512)" style checks of one tensor. */
/* convert: a foreign dtype that reads as the parameter's (F64 -> F32) is
 * fine (bare state_dicts); .qlm files hold qlab's own dtypes only. */
static ql_status check_entry(const ql_st_entry *e, const ql_param *p, int convert) {
    char a[128], b[128];
    if (e->dtype != p->value->dtype || (e->converted && !convert))
        return ql_error(QL_EFORMAT, "tensor '%s' is %s, the model expects %s", e->name, e->file_dtype,
                        ql_dtype_st_name(p->value->dtype));
    int same = e->ndim == p->value->ndim;
    for (int i = 0; same && i < e->ndim; i++) same = e->shape[i] == p->value->shape[i];
    if (!same)
        return ql_error(QL_ESHAPE, "size mismatch for %s: the file has %s, the model expects %s", e->name,
                        ql_shape_str(e->ndim, e->shape, a, sizeof a),
                        ql_shape_str(p->value->ndim, p->value->shape, b, sizeof b));
    return QL_OK;
}


static ql_status load_params(ql_graph *g, const ql_st_file *f) {
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nparams; k++) {
            ql_param *p = &g->nodes[i].params[k];
            const ql_st_entry *e = ql_st_find(f, p->name);
            if (!e) return ql_error(QL_EFORMAT, "parameter '%s' of node '%s' is missing from the file", p->name, g->nodes[i].name);
            QL_TRY(check_entry(e, p, 0));
        }
    for (int i = 0; i < f->n; i++)
        if (!ql_graph_param(g, f->entries[i].name))
            return ql_error(QL_EFORMAT, "tensor '%s' in the file is not a parameter of the graph", f->entries[i].name);
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nparams; k++)
            QL_TRY(ql_st_copy(f, ql_st_find(f, g->nodes[i].params[k].name), g->nodes[i].params[k].value->data));
    g->version++;
    return QL_OK;
}

ql_status ql_model_load(const char *path, ql_graph **out) {
    ql_st_file *f = NULL;
    ql_graph *g = NULL;
    *out = NULL;
    QL_TRY(ql_st_read(path, &f));
    const char *json = ql_st_meta(f, GRAPH_KEY);
    ql_status st = json ? QL_OK : ql_error(QL_EFORMAT, "not a qlab model: no %s metadata; use load_state_dict "
                                           "for a bare safetensors file", GRAPH_KEY);
    /* every parameter is in the file, so the graph needs about its size (f32
     * zero-filled before the copy), plus room for names and runtime state */
    int64_t cap = ql_mem_set_budget(2 * (int64_t)f->data_size + ((int64_t)64 << 20));
    if (st == QL_OK) st = ql_graph_from_json(json, &g);
    ql_mem_set_budget(cap);
    if (st == QL_OK) st = load_params(g, f);
    ql_st_free(f);
    if (st != QL_OK) {
        ql_graph_free(g);
        return ql_error_prefix(st, "loading %s", path);
    }
    *out = g;
    return QL_OK;
}

/* ---- bare state_dicts --------------------------------------------------------- */

/* "a, b, c (+4 more)" */
static void list_add(char *buf, size_t cap, int *count, const char *name) {
    size_t len = strlen(buf);
    if (*count < 5 && len < cap) snprintf(buf + len, cap - len, "%s%s", *count ? ", " : "", name);
    (*count)++;
}

static void list_end(char *buf, size_t cap, int count) {
    size_t len = strlen(buf);
    if (count > 5 && len < cap) snprintf(buf + len, cap - len, " (+%d more)", count - 5);
}

/* PyTorch's BatchNorm counter: an I64 buffer qlab does not keep. */
static int ignorable(const char *name) {
    const char *s = ".num_batches_tracked";
    size_t a = strlen(name), b = strlen(s);
    return a >= b && !strcmp(name + a - b, s);
}

static ql_status match_state_dict(ql_graph *g, const ql_st_file *f, int strict) {
    char missing[400] = "", unexpected[400] = "";
    int nmissing = 0, nunexpected = 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nparams; k++) {
            ql_param *p = &g->nodes[i].params[k];
            const ql_st_entry *e = ql_st_find(f, p->name);
            if (e) QL_TRY(check_entry(e, p, 1));
            else list_add(missing, sizeof missing, &nmissing, p->name);
        }
    for (int i = 0; i < f->n; i++)
        if (!ignorable(f->entries[i].name) && !ql_graph_param(g, f->entries[i].name))
            list_add(unexpected, sizeof unexpected, &nunexpected, f->entries[i].name);
    if (!strict || (!nmissing && !nunexpected)) return QL_OK;
    list_end(missing, sizeof missing, nmissing);
    list_end(unexpected, sizeof unexpected, nunexpected);
    return ql_error(QL_EFORMAT, "state_dict does not match the model: %d missing%s%s; %d unexpected%s%s",
                    nmissing, nmissing ? ": " : "", missing, nunexpected, nunexpected ? ": " : "", unexpected);
}

ql_status ql_model_load_state_dict(ql_graph *g, const char *path, int strict, int *nloaded) {
    ql_st_file *f = NULL;
    if (nloaded) *nloaded = 0;
    QL_TRY(ql_st_read(path, &f));
    ql_status st = match_state_dict(g, f, strict);   /* all checks before the first copy */
    int n = 0;
    for (int i = 0; i < g->nnodes && st == QL_OK; i++)
        for (int k = 0; k < g->nodes[i].nparams && st == QL_OK; k++) {
            const ql_st_entry *e = ql_st_find(f, g->nodes[i].params[k].name);
            if (e && (st = ql_st_copy(f, e, g->nodes[i].params[k].value->data)) == QL_OK) n++;
        }
    ql_st_free(f);
    if (st != QL_OK) return ql_error_prefix(st, "loading %s", path);
    if (n) g->version++;
    if (nloaded) *nloaded = n;
    return QL_OK;
}
