/* dlinear node: dynamic INT8 linear, f32 in and out. weight (out,in) s8
 * symmetric per output channel with weight_scale / weight_zero_point, bias
 * f32; each call quantizes its input to u8 from the batch's own range
 * (qlab/qdynamic.h). The packed kernel is rebuilt when g->version moves. */
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/qdynamic.h"
#include "graph/op.h"

typedef struct {
    uint64_t version;
    ql_dlinear *lin;
} dlinear_priv;

static void dlinear_priv_free(void *p) {
    dlinear_priv *q = p;
    if (!q) return;
    ql_dlinear_free(q->lin);
    ql_free(q);
}

static ql_status dlinear_infer(ql_node *n, const ql_node *const *in) {
    QL_TRY(ql_op_linear_def.infer(n, in));
    strcpy(n->precision, "dyn8");
    return QL_OK;
}

static ql_status dlinear_forward(ql_op_ctx *c) {
    ql_node *n = c->n;
    dlinear_priv *q = n->priv;
    if (c->x[0]->dtype != QL_DTYPE_F32) return ql_error(QL_ESTATE, "node '%s': dlinear needs an f32 input", n->name);
    if (!q || q->version != c->g->version || !q->lin) {
        QL_TRY(ql_check_symmetric_weight(n, 0));
        if (!q) {
            if (!(q = ql_calloc(sizeof *q))) return QL_ENOMEM;
            n->priv = q;
        }
        ql_dlinear_free(q->lin);
        q->lin = ql_dlinear_new(n->a.in_ch, n->a.out_ch, n->params[0].value->data, ql_f32(n->params[1].value),
                                n->a.bias ? ql_f32(n->params[3].value) : NULL, ql_isa_active());
        if (!q->lin) return ql_error_prefix(QL_ENOMEM, "node '%s'", n->name);
        q->version = c->g->version;
    }
    int64_t m = c->x[0]->numel / n->a.in_ch;
    size_t nws = ql_dlinear_workspace(q->lin, m);
    void *ws = ql_graph_scratch(c->g, (nws + 3) / 4);
    if (!ws) return QL_ENOMEM;
    ql_dlinear_forward(q->lin, m, ql_f32(c->x[0]), n->a.in_ch, ql_f32(c->y), n->a.out_ch, ws);
    ql_act_forward(n->a.act, c->y->numel, ql_f32(c->y));
    return QL_OK;
}

static ql_status no_backward(ql_op_ctx *c) {
    return ql_error(QL_EUNSUPPORTED, "node '%s': dynamic INT8 ops have no backward; train the FP32 model "
                    "before quantize_dynamic", c->n->name);
}

const ql_op_def ql_op_dlinear_def = {1, 1, dlinear_infer, ql_s8_linear_params, dlinear_forward, no_backward,
                                     dlinear_priv_free};
