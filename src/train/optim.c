/* SGD / Adam / AdamW with PyTorch's update rules. State is kept per
 * parameter name so a cloned or reloaded graph can continue the same run. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/optim.h"

typedef struct {
    char *name;        /* "<param>.momentum_buffer" ... */
    ql_tensor *t;
    int init;          /* SGD momentum buffer set on the first step */
} slot;

struct ql_optim {
    ql_optim_opts o;
    int n, cap;
    slot *slots;
    int64_t steps;
};

void ql_optim_opts_default(ql_optim_opts *o, ql_optim_kind kind) {
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->lr = kind == QL_OPTIM_SGD ? 0.1f : 1e-3f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    if (kind == QL_OPTIM_ADAMW) o->weight_decay = 1e-2f;
}

ql_optim *ql_optim_new(const ql_optim_opts *o) {
    ql_optim *op = ql_calloc(sizeof *op);
    if (op) op->o = *o;
    return op;
}

void ql_optim_free(ql_optim *o) {
    if (!o) return;
    for (int i = 0; i < o->n; i++) { ql_free(o->slots[i].name); ql_tensor_free(o->slots[i].t); }
    ql_free(o->slots);
    ql_free(o);
}

const ql_optim_opts *ql_optim_options(const ql_optim *o) { return &o->o; }
int64_t ql_optim_steps(const ql_optim *o) { return o->steps; }
void ql_optim_set_steps(ql_optim *o, int64_t steps) { o->steps = steps; }

/* Finds or creates the state tensor "<param><suffix>", shaped like p. */
static slot *get_slot(ql_optim *o, const ql_param *p, const char *suffix) {
    char name[512];
    snprintf(name, sizeof name, "%s%s", p->name, suffix);
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->slots[i].name, name)) {
            if (o->slots[i].t->numel != p->value->numel) { ql_error(QL_ESHAPE, "optimizer state '%s' has the wrong size", name); return NULL; }
            return &o->slots[i];
        }
    if (o->n == o->cap) {
        int cap = o->cap ? o->cap * 2 : 64;
        slot *s = ql_realloc(o->slots, sizeof *s * cap);
        if (!s) return NULL;
        o->slots = s;
        o->cap = cap;
    }
    slot *s = &o->slots[o->n];
    s->name = ql_strdup(name);
    s->t = ql_tensor_new(QL_DTYPE_F32, p->value->ndim, p->value->shape);
    s->init = 0;
    if (!s->name || !s->t) { ql_free(s->name); ql_tensor_free(s->t); return NULL; }
    o->n++;
    return s;
}

static void sgd_update(const ql_optim_opts *o, int64_t n, float *w, const float *g, slot *buf, float lr) {
    float wd = o->weight_decay, mom = o->momentum, damp = 1.0f - o->dampening;
    float *b = buf ? ql_f32(buf->t) : NULL;
    int first = buf && !buf->init;
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float d = g[i] + wd * w[i];
        if (b) {
            b[i] = first ? d : mom * b[i] + damp * d;
            d = o->nesterov ? d + mom * b[i] : b[i];
        }
        w[i] -= lr * d;
    }
    if (buf) buf->init = 1;
}

static void adam_update(const ql_optim_opts *o, int64_t n, float *w, const float *g, float *m, float *v,
                        int64_t step, float lr) {
    float b1 = o->beta1, b2 = o->beta2, wd = o->weight_decay;
    double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
    float step_size = (float)(lr / bc1), sbc2 = (float)sqrt(bc2);
    int decoupled = o->kind == QL_OPTIM_ADAMW;
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        if (decoupled) w[i] *= 1.0f - lr * wd;
        else gi += wd * w[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        w[i] -= step_size * m[i] / (sqrtf(v[i]) / sbc2 + o->eps);
    }
}

ql_status ql_optim_step(ql_optim *o, ql_graph *g, float lr) {
    if (!(lr >= 0) || !isfinite(lr)) return ql_error(QL_EINVAL, "learning rate %g is not a finite non-negative number", lr);
    o->steps++;
    for (int i = 0; i < g->nnodes; i++) {
        ql_node *nd = &g->nodes[i];
        for (int j = 0; j < nd->nparams; j++) {
            ql_param *p = &nd->params[j];
            if (!p->trainable || !p->grad || p->value->dtype != QL_DTYPE_F32) continue;
            float *w = ql_f32(p->value), *gr = ql_f32(p->grad);
            if (o->o.kind == QL_OPTIM_SGD) {
                slot *b = NULL;
                if (o->o.momentum != 0 && !(b = get_slot(o, p, ".momentum_buffer"))) return QL_ENOMEM;
                sgd_update(&o->o, p->value->numel, w, gr, b, lr);
            } else {
                slot *m = get_slot(o, p, ".exp_avg"), *v = m ? get_slot(o, p, ".exp_avg_sq") : NULL;
                if (!m || !v) return QL_ENOMEM;
                adam_update(&o->o, p->value->numel, w, gr, ql_f32(m->t), ql_f32(v->t), o->steps, lr);
            }
        }
    }
    g->version++;
    return QL_OK;
}

int ql_optim_state_count(const ql_optim *o) { return o->n; }
const char *ql_optim_state_name(const ql_optim *o, int i) { return o->slots[i].name; }
const ql_tensor *ql_optim_state_tensor(const ql_optim *o, int i) { return o->slots[i].t; }

ql_status ql_optim_state_set(ql_optim *o, const char *name, const ql_tensor *t) {
    if (t->dtype != QL_DTYPE_F32) return ql_error(QL_EFORMAT, "optimizer state '%s' must be f32", name);
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->slots[i].name, name)) {
            QL_TRY(ql_tensor_copy(o->slots[i].t, t));
            o->slots[i].init = 1;
            return QL_OK;
        }
    if (o->n == o->cap) {
        int cap = o->cap ? o->cap * 2 : 64;
        slot *s = ql_realloc(o->slots, sizeof *s * cap);
        if (!s) return QL_ENOMEM;
        o->slots = s;
        o->cap = cap;
    }
    slot *s = &o->slots[o->n];
    s->name = ql_strdup(name);
    s->t = ql_tensor_clone(t);
    s->init = 1;
    if (!s->name || !s->t) { ql_free(s->name); ql_tensor_free(s->t); return QL_ENOMEM; }
    o->n++;
    return QL_OK;
}
