/* Parameter initialisation (PyTorch's defaults) and gradient buffers. */
#include <math.h>
#include <string.h>
#include "qlab/alloc.h"
#include "graph/op.h"

static void fill_uniform(ql_tensor *t, float bound, ql_rng *r) {
    float *p = ql_f32(t);
    for (int64_t i = 0; i < t->numel; i++)
        p[i] = (float)((2.0 * ql_rng_uniform(r) - 1.0) * bound);
}

static void fill_const(ql_tensor *t, float v) {
    float *p = ql_f32(t);
    for (int64_t i = 0; i < t->numel; i++) p[i] = v;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* kaiming_uniform(a=sqrt(5)) has bound gain*sqrt(3/fan_in) with
 * gain = sqrt(2/(1+5)), i.e. 1/sqrt(fan_in) -- the same bound as the bias. */
static void init_fan_in(ql_node *n, int64_t fan_in, ql_rng *r) {
    float bound = fan_in > 0 ? (float)(1.0 / sqrt((double)fan_in)) : 0.0f;
    for (int k = 0; k < n->nparams; k++) fill_uniform(n->params[k].value, bound, r);
}

void ql_graph_init_params(ql_graph *g, ql_rng *r) {
    for (int i = 0; i < g->nnodes; i++) {
        ql_node *n = &g->nodes[i];
        switch (n->op) {
        case QL_OP_CONV2D:
            init_fan_in(n, (int64_t)(n->a.in_ch / n->a.groups) * n->a.kernel[0] * n->a.kernel[1], r);
            break;
        case QL_OP_LINEAR: init_fan_in(n, n->a.in_ch, r); break;
        case QL_OP_LSTM: {
            float bound = (float)(1.0 / sqrt((double)n->a.out_ch));
            for (int k = 0; k < n->nparams; k++) fill_uniform(n->params[k].value, bound, r);
            break;
        }
        case QL_OP_BATCHNORM2D:
            for (int k = 0; k < n->nparams; k++) {
                const char *s = n->params[k].name;
                fill_const(n->params[k].value, ends_with(s, ".weight") || ends_with(s, ".running_var"));
            }
            break;
        default: break;
        }
    }
    g->version++;
}

ql_status ql_graph_alloc_grads(ql_graph *g) {
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nparams; k++) {
            ql_param *p = &g->nodes[i].params[k];
            if (!p->trainable || p->grad) continue;
            if (!(p->grad = ql_tensor_new(QL_DTYPE_F32, p->value->ndim, p->value->shape)))
                return ql_error_prefix(QL_ENOMEM, "gradient of %s", p->name);
        }
    return QL_OK;
}

void ql_graph_zero_grad(ql_graph *g) {
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].nparams; k++)
            if (g->nodes[i].params[k].grad) ql_tensor_zero(g->nodes[i].params[k].grad);
}
