/* f16linear / bf16linear nodes: weight (out,in) stored f16 or bf16, bias f32,
 * activations f32 in and out; the half GEMM widens the weights inside the
 * kernel (qlab/half.h). */
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/half.h"
#include "graph/op.h"

typedef struct {
    uint64_t version;
    ql_hgemm *gemm;
} hlinear_priv;

static void hlinear_priv_free(void *p) {
    hlinear_priv *q = p;
    if (!q) return;
    ql_hgemm_free(q->gemm);
    ql_free(q);
}

static ql_dtype wdtype(const ql_node *n) { return n->op == QL_OP_BF16LINEAR ? QL_DTYPE_BF16 : QL_DTYPE_F16; }

static ql_status hlinear_infer(ql_node *n, const ql_node *const *in) {
    QL_TRY(ql_op_linear_def.infer(n, in));
    strcpy(n->precision, ql_dtype_name(wdtype(n)));
    return QL_OK;
}

/* weight (out,in) f16 / bf16, bias (out) f32 */
static ql_status hlinear_params(ql_node *n) {
    int64_t ws[2] = {n->a.out_ch, n->a.in_ch}, bs[1] = {n->a.out_ch};
    QL_TRY(ql_node_add_param_dtype(n, "weight", wdtype(n), 2, ws, 0));
    if (n->a.bias) QL_TRY(ql_node_add_param_dtype(n, "bias", QL_DTYPE_F32, 1, bs, 0));
    return QL_OK;
}

static ql_status hlinear_forward(ql_op_ctx *c) {
    ql_node *n = c->n;
    hlinear_priv *q = n->priv;
    if (c->x[0]->dtype != QL_DTYPE_F32)
        return ql_error(QL_ESTATE, "node '%s': %s needs an f32 input", n->name, ql_op_name(n->op));
    if (!q || q->version != c->g->version || !q->gemm) {
        if (!q) {
            if (!(q = ql_calloc(sizeof *q))) return QL_ENOMEM;
            n->priv = q;
        }
        ql_hgemm_free(q->gemm);
        q->gemm = ql_hgemm_new(wdtype(n), n->params[0].value->data, n->a.out_ch, n->a.in_ch, QL_HGEMM_AUTO);
        if (!q->gemm) return ql_error_prefix(QL_ENOMEM, "node '%s'", n->name);
        q->version = c->g->version;
    }
    int64_t m = c->x[0]->numel / n->a.in_ch;
    size_t nws = ql_hgemm_workspace(q->gemm, m);
    void *ws = nws ? ql_graph_scratch(c->g, (nws + 3) / 4) : NULL;
    if (nws && !ws) return QL_ENOMEM;
    ql_hgemm_forward(q->gemm, m, ql_f32(c->x[0]), n->a.in_ch, n->a.bias ? ql_f32(n->params[1].value) : NULL,
                     ql_f32(c->y), n->a.out_ch, ws);
    ql_act_forward(n->a.act, c->y->numel, ql_f32(c->y));
    return QL_OK;
}

static ql_status no_backward(ql_op_ctx *c) {
    return ql_error(QL_EUNSUPPORTED, "node '%s': %s has no backward; train the FP32 model before converting",
                    c->n->name, ql_op_name(c->n->op));
}

const ql_op_def ql_op_f16linear_def = {1, 1, hlinear_infer, hlinear_params, hlinear_forward, no_backward,
                                       hlinear_priv_free};
const ql_op_def ql_op_bf16linear_def = {1, 1, hlinear_infer, hlinear_params, hlinear_forward, no_backward,
                                        hlinear_priv_free};
