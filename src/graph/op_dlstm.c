/* dlstm node: dynamic INT8 LSTM {T,F} -> {T,H}. Per layer l, PyTorch's names
 * with the quantization parameters beside them: weight_ih_l<l> (4H,I) s8,
 * weight_ih_l<l>_scale (4H) f32, weight_ih_l<l>_zero_point (4H) s32, the
 * same three for weight_hh_l<l>, then bias_ih_l<l>, bias_hh_l<l> f32.
 * Gates and nonlinearities in f32 (qlab/qdynamic.h). */
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/qdynamic.h"
#include "graph/op.h"

#define MAX_LAYERS 16

typedef struct {
    uint64_t version;
    ql_dlstm *lstm;
} dlstm_priv;

static void dlstm_priv_free(void *p) {
    dlstm_priv *q = p;
    if (!q) return;
    ql_dlstm_free(q->lstm);
    ql_free(q);
}

static ql_status dlstm_infer(ql_node *n, const ql_node *const *in) {
    QL_TRY(ql_op_lstm_def.infer(n, in));
    strcpy(n->precision, "dyn8");
    return QL_OK;
}

static int per_layer(const ql_node *n) { return n->a.bias ? 8 : 6; }

static ql_status add_qweight(ql_node *n, const char *base, int64_t rows, int64_t cols) {
    char s[48];
    int64_t ws[2] = {rows, cols}, cs[1] = {rows};
    snprintf(s, sizeof s, "%s", base); QL_TRY(ql_node_add_param_dtype(n, s, QL_DTYPE_S8, 2, ws, 0));
    snprintf(s, sizeof s, "%s_scale", base); QL_TRY(ql_node_add_param_dtype(n, s, QL_DTYPE_F32, 1, cs, 0));
    snprintf(s, sizeof s, "%s_zero_point", base); QL_TRY(ql_node_add_param_dtype(n, s, QL_DTYPE_S32, 1, cs, 0));
    return QL_OK;
}

static ql_status dlstm_params(ql_node *n) {
    const ql_attrs *a = &n->a;
    int64_t h4 = 4 * (int64_t)a->out_ch, b[1] = {h4};
    char s[32];
    for (int l = 0; l < a->layers; l++) {
        snprintf(s, sizeof s, "weight_ih_l%d", l); QL_TRY(add_qweight(n, s, h4, l ? a->out_ch : a->in_ch));
        snprintf(s, sizeof s, "weight_hh_l%d", l); QL_TRY(add_qweight(n, s, h4, a->out_ch));
        if (!a->bias) continue;
        snprintf(s, sizeof s, "bias_ih_l%d", l); QL_TRY(ql_node_add_param_dtype(n, s, QL_DTYPE_F32, 1, b, 0));
        snprintf(s, sizeof s, "bias_hh_l%d", l); QL_TRY(ql_node_add_param_dtype(n, s, QL_DTYPE_F32, 1, b, 0));
    }
    return QL_OK;
}

static ql_status build(ql_node *n, ql_dlstm **out) {
    const int L = n->a.layers, P = per_layer(n);
    const int8_t *wi[MAX_LAYERS], *wh[MAX_LAYERS];
    const float *si[MAX_LAYERS], *sh[MAX_LAYERS], *bi[MAX_LAYERS], *bh[MAX_LAYERS];
    for (int l = 0; l < L; l++) {
        const ql_param *p = &n->params[l * P];
        QL_TRY(ql_check_symmetric_weight(n, l * P));
        QL_TRY(ql_check_symmetric_weight(n, l * P + 3));
        wi[l] = p[0].value->data; si[l] = ql_f32(p[1].value);
        wh[l] = p[3].value->data; sh[l] = ql_f32(p[4].value);
        bi[l] = n->a.bias ? ql_f32(p[6].value) : NULL;
        bh[l] = n->a.bias ? ql_f32(p[7].value) : NULL;
    }
    ql_dlstm_weights w = {wi, wh, si, sh, n->a.bias ? bi : NULL, n->a.bias ? bh : NULL};
    if (!(*out = ql_dlstm_new(n->a.in_ch, n->a.out_ch, L, &w, ql_isa_active())))
        return ql_error_prefix(QL_ENOMEM, "node '%s'", n->name);
    return QL_OK;
}

static ql_status dlstm_forward(ql_op_ctx *c) {
    ql_node *n = c->n;
    dlstm_priv *q = n->priv;
    if (c->x[0]->dtype != QL_DTYPE_F32) return ql_error(QL_ESTATE, "node '%s': dlstm needs an f32 input", n->name);
    if (!q || q->version != c->g->version || !q->lstm) {
        if (!q) {
            if (!(q = ql_calloc(sizeof *q))) return QL_ENOMEM;
            n->priv = q;
        }
        ql_dlstm_free(q->lstm);
        q->lstm = NULL;
        QL_TRY(build(n, &q->lstm));
        q->version = c->g->version;
    }
    int N = (int)c->batch, T = (int)c->x[0]->shape[1];
    size_t nws = ql_dlstm_workspace(q->lstm, N, T);
    void *ws = ql_graph_scratch(c->g, (nws + 3) / 4);
    if (nws && !ws) return QL_ENOMEM;
    ql_dlstm_forward(q->lstm, N, T, ql_f32(c->x[0]), ql_f32(c->y), ws);
    return QL_OK;
}

static ql_status no_backward(ql_op_ctx *c) {
    return ql_error(QL_EUNSUPPORTED, "node '%s': dynamic INT8 ops have no backward; train the FP32 model "
                    "before quantize_dynamic", c->n->name);
}

const ql_op_def ql_op_dlstm_def = {1, 1, dlstm_infer, dlstm_params, dlstm_forward, no_backward, dlstm_priv_free};
