/* ONNX LSTM onto qlab's lstm, and the data movement exporters put around
 * it: Transpose between batch-first and time-major, Squeeze of the
 * direction axis, Gather of the last step (seq_last); Identity, Dropout. */
#include <string.h>
#include "io/onnx_import.h"

/* ---- LSTM ---------------------------------------------------------------------- */
/* ONNX gate blocks i,o,f,c -> PyTorch i,f,g,o: PyTorch block t comes from ONNX block from[t]. */
static const int lstm_from[4] = {0, 2, 3, 1};

static void lstm_rows(float *dst, const float *src, int64_t h, int64_t cols) {
    for (int t = 0; t < 4; t++)
        memcpy(dst + (int64_t)t * h * cols, src + (int64_t)lstm_from[t] * h * cols, (size_t)(h * cols) * sizeof(float));
}

static int zero_or_absent(onnx_imp *c, int k) {
    if (!imp_has_in(c, k)) return 1;
    const ql_tensor *t = imp_const(c, k);
    if (!t) return 0;
    for (int64_t i = 0; i < t->numel; i++)
        if (onnx_tensor_get(t, i) != 0) return 0;
    return 1;
}

ql_status imp_op_lstm(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    char s[64];
    if (onnx_attr_int(c->cur, "layout", 0)) return imp_unsupported(c, "layout = 1 (batch-first LSTM)");
    if (strcmp(onnx_attr_str(c->cur, "direction", s, sizeof s), "") && strcmp(s, "forward"))
        return imp_unsupported(c, "only direction = forward");
    if (onnx_attr(c->cur, "activations") || onnx_attr(c->cur, "clip") || onnx_attr_int(c->cur, "input_forget", 0))
        return imp_unsupported(c, "non-default activations, clip or input_forget");
    if (imp_has_in(c, 4)) return imp_unsupported(c, "sequence_lens (qlab runs whole sequences)");
    if (!zero_or_absent(c, 5) || !zero_or_absent(c, 6)) return imp_unsupported(c, "non-zero initial_h / initial_c");
    if (imp_has_in(c, 7)) return imp_unsupported(c, "peepholes (P)");
    if (c->cur->n_output > 2 && c->cur->output[2] && c->cur->output[2][0] && imp_sole_consumer(c, c->cur->output[2]) >= 0)
        return imp_unsupported(c, "the Y_c output is used");
    QL_TRY(imp_need_kind(c, x, V_TNF, "a sequence (T,N,F)"));
    const ql_tensor *w = imp_const(c, 1), *r = imp_const(c, 2), *b = imp_has_in(c, 3) ? imp_const(c, 3) : NULL;
    int64_t h = onnx_attr_int(c->cur, "hidden_size", 0);
    int fx = imp_f32(c, x);
    if (fx < 0) return QL_EINVAL;
    int64_t f = c->g->nodes[fx].out_shape[1];
    if (!w || !r || w->dtype != QL_DTYPE_F32 || r->dtype != QL_DTYPE_F32 || w->ndim != 3 || w->shape[0] != 1)
        return imp_unsupported(c, "W and R must be float constants (1, 4H, .)");
    if (h <= 0) h = w->shape[1] / 4;
    if (w->numel != 4 * h * f || r->numel != 4 * h * h || (b && (b->numel != 8 * h || b->dtype != QL_DTYPE_F32)))
        return imp_unsupported(c, "W, R or B do not match hidden_size and the input features");
    if (imp_has_in(c, 3) && !b) return imp_unsupported(c, "B must be a constant");
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = (int)h;
    char base[300];
    int idx = imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_LSTM, &fx, 1, &a);
    if (idx < 0) return QL_EINVAL;
    ql_node *n = &c->g->nodes[idx];
    lstm_rows(ql_f32(n->params[0].value), ql_f32(w), h, f);
    lstm_rows(ql_f32(n->params[1].value), ql_f32(r), h, h);
    if (b) {
        lstm_rows(ql_f32(n->params[2].value), ql_f32(b), h, 1);
        lstm_rows(ql_f32(n->params[3].value), ql_f32(b) + 4 * h, h, 1);
    }
    if (c->cur->n_output > 0 && c->cur->output[0][0] && !imp_out(c, 0, idx, V_LSTMY)) return QL_EFORMAT;
    if (c->cur->n_output > 1 && c->cur->output[1][0] && !imp_out(c, 1, idx, V_H1N)) return QL_EFORMAT;
    return QL_OK;
}

/* ---- data movement --------------------------------------------------------------- */
static ql_status alias(onnx_imp *c, onnx_val *x, onnx_vkind k) {
    onnx_val *o = imp_out(c, 0, x->node, k);
    if (!o) return QL_EFORMAT;
    o->dq = x->dq;
    o->fnode = x->fnode;
    return QL_OK;
}

static ql_status seq_last(onnx_imp *c, onnx_val *x) {
    int fx = imp_f32(c, x);
    char base[300];
    int idx = fx < 0 ? -1 : imp_add(c, imp_base(c, NULL, base, sizeof base), QL_OP_SEQ_LAST, &fx, 1, NULL);
    return idx >= 0 && imp_out(c, 0, idx, V_PLAIN) ? QL_OK : QL_EINVAL;
}

ql_status imp_op_identity(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    if (!strcmp(c->cur->op_type, "Dropout")) {   /* inference only: training_mode must be absent or false */
        const ql_tensor *tm = imp_has_in(c, 2) ? imp_const(c, 2) : NULL;
        if ((imp_has_in(c, 2) && (!tm || onnx_tensor_get(tm, 0) != 0)) || onnx_attr_int(c->cur, "is_test", 1) == 0)
            return imp_unsupported(c, "Dropout in training mode");
        if (c->cur->n_output > 1 && c->cur->output[1] && c->cur->output[1][0])
            return imp_unsupported(c, "the Dropout mask output");
    }
    if (x->node < 0) {
        ql_tensor *t = ql_tensor_clone(x->cst);
        return imp_out_const(c, 0, t) ? QL_OK : QL_EFORMAT;
    }
    return alias(c, x, x->kind);
}

ql_status imp_op_transpose(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    int64_t p[8];
    int k = onnx_attr_ints(c->cur, "perm", p, 8);
    if (x->node >= 0 && k == 3 && p[0] == 1 && p[1] == 0 && p[2] == 2) {
        if (x->kind == V_PLAIN && c->g->nodes[x->node].out_ndim == 2) return alias(c, x, V_TNF);
        if (x->kind == V_TNF) return alias(c, x, V_PLAIN);
    }
    return imp_unsupported(c, "only the (1,0,2) transpose between batch-first and time-major sequences");
}

static int squeeze_axes(onnx_imp *c, int64_t *ax, int max) {
    if (c->opset < 13) return onnx_attr_ints(c->cur, "axes", ax, max);
    const ql_tensor *t = imp_has_in(c, 1) ? imp_const(c, 1) : NULL;
    if (!t || t->numel > max) return -1;
    for (int64_t i = 0; i < t->numel; i++) ax[i] = (int64_t)onnx_tensor_get(t, i);
    return (int)t->numel;
}

ql_status imp_op_squeeze(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    int64_t ax[4];
    int k = squeeze_axes(c, ax, 4);
    if (x->node >= 0 && k == 1 && x->kind == V_LSTMY && ax[0] == 1) return alias(c, x, V_TNF);
    if (x->node >= 0 && k == 1 && x->kind == V_H1N && ax[0] == 0) return seq_last(c, x);
    if (x->node >= 0 && k == 2 && x->kind == V_C11 && ax[0] == 2 && ax[1] == 3) return alias(c, x, V_PLAIN);
    return imp_unsupported(c, "only Squeeze of an LSTM's direction axis or a pooled (N,C,1,1)");
}

/* Gather of the last time step: x[:, -1] batch-first or x[-1] time-major. */
ql_status imp_op_gather(onnx_imp *c) {
    onnx_val *x;
    QL_TRY(imp_in(c, 0, &x));
    const ql_tensor *i = imp_const(c, 1);
    int64_t axis = onnx_attr_int(c->cur, "axis", 0);
    if (x->node >= 0 && i && i->numel == 1 && c->g->nodes[x->node].out_ndim == 2) {
        int64_t t = c->g->nodes[x->node].out_shape[0], at = (int64_t)onnx_tensor_get(i, 0);
        int last = at == -1 || at == t - 1;
        if (last && ((x->kind == V_PLAIN && axis == 1) || (x->kind == V_TNF && axis == 0))) return seq_last(c, x);
    }
    return imp_unsupported(c, "only Gather of a sequence's last step");
}

