/* Checkpoints: model parameters, optimizer state, loader generator, state text. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/checkpoint.h"
#include "qlab/model_file.h"
#include "qlab/safetensors.h"

#define OPTIM_PREFIX "optim/"

ql_status ql_checkpoint_save(const char *path, const ql_graph *g, const ql_optim *o,
                             const ql_rng *loader_rng, const char *state_text) {
    ql_st_writer *w = ql_st_writer_new();
    char *json = ql_graph_to_json(g);
    char **names = NULL;
    int nst = o ? ql_optim_state_count(o) : 0;
    ql_status st = (w && json) ? QL_OK : ql_error(QL_ENOMEM, "checkpoint: out of memory");
    if (st == QL_OK && nst && !(names = ql_calloc(sizeof(char *) * nst))) st = QL_ENOMEM;
    for (int i = 0; i < g->nnodes && st == QL_OK; i++)
        for (int j = 0; j < g->nodes[i].nparams && st == QL_OK; j++)
            st = ql_st_writer_add(w, g->nodes[i].params[j].name, g->nodes[i].params[j].value);
    for (int i = 0; i < nst && st == QL_OK; i++) {
        const char *n = ql_optim_state_name(o, i);
        names[i] = ql_malloc(strlen(n) + sizeof OPTIM_PREFIX);
        if (!names[i]) { st = QL_ENOMEM; break; }
        sprintf(names[i], OPTIM_PREFIX "%s", n);
        st = ql_st_writer_add(w, names[i], ql_optim_state_tensor(o, i));
    }
    char rng[160], steps[32];
    snprintf(rng, sizeof rng, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
             loader_rng ? loader_rng->s[0] : 0, loader_rng ? loader_rng->s[1] : 0,
             loader_rng ? loader_rng->s[2] : 0, loader_rng ? loader_rng->s[3] : 0);
    snprintf(steps, sizeof steps, "%" PRId64, o ? ql_optim_steps(o) : 0);
    if (st == QL_OK) st = ql_st_writer_meta(w, "qlab.graph", json);
    if (st == QL_OK) st = ql_st_writer_meta(w, "qlab.checkpoint.rng", rng);
    if (st == QL_OK) st = ql_st_writer_meta(w, "qlab.checkpoint.steps", steps);
    if (st == QL_OK) st = ql_st_writer_meta(w, "qlab.checkpoint.state", state_text ? state_text : "");
    if (st == QL_OK) st = ql_st_writer_write(w, path);
    for (int i = 0; names && i < nst; i++) ql_free(names[i]);
    ql_free(names);
    ql_free(json);
    ql_st_writer_free(w);
    return st;
}

static ql_status load_all(const char *path, const ql_st_file *f, ql_graph *g, ql_optim *o, ql_rng *rng,
                          char **state_text) {
    const char *rs = ql_st_meta(f, "qlab.checkpoint.rng"), *ss = ql_st_meta(f, "qlab.checkpoint.steps");
    const char *state = ql_st_meta(f, "qlab.checkpoint.state");
    if (!rs || !ss || !state || strlen(rs) != 64)
        return ql_error(QL_EFORMAT, "%s: not a qlab checkpoint (missing qlab.checkpoint metadata)", path);
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nparams; j++) {
            ql_param *p = &g->nodes[i].params[j];
            const ql_st_entry *e = ql_st_find(f, p->name);
            if (!e) return ql_error(QL_EFORMAT, "%s: checkpoint has no tensor '%s' (a different model?)", path, p->name);
            ql_tensor *t;
            QL_TRY(ql_st_tensor(f, e, &t));
            ql_status st = (t->dtype == p->value->dtype && ql_tensor_same_shape(t, p->value))
                               ? ql_tensor_copy(p->value, t)
                               : ql_error(QL_ESHAPE, "%s: tensor '%s' has another shape or dtype than the model's", path, p->name);
            ql_tensor_free(t);
            QL_TRY(st);
        }
    for (int i = 0; o && i < f->n; i++) {
        const ql_st_entry *e = &f->entries[i];
        if (strncmp(e->name, OPTIM_PREFIX, strlen(OPTIM_PREFIX))) continue;
        ql_tensor *t;
        QL_TRY(ql_st_tensor(f, e, &t));
        ql_status st = ql_optim_state_set(o, e->name + strlen(OPTIM_PREFIX), t);
        ql_tensor_free(t);
        QL_TRY(st);
    }
    if (o) ql_optim_set_steps(o, strtoll(ss, NULL, 10));
    if (rng)
        for (int i = 0; i < 4; i++) {
            char part[17];
            memcpy(part, rs + 16 * i, 16);
            part[16] = 0;
            rng->s[i] = strtoull(part, NULL, 16);
        }
    g->version++;
    if (state_text && !(*state_text = ql_strdup(state))) return QL_ENOMEM;
    return QL_OK;
}

ql_status ql_checkpoint_load(const char *path, ql_graph *g, ql_optim *o, ql_rng *loader_rng,
                             char **state_text) {
    ql_st_file *f;
    QL_TRY(ql_st_read(path, &f));
    ql_status st = load_all(path, f, g, o, loader_rng, state_text);
    ql_st_free(f);
    return st;
}
