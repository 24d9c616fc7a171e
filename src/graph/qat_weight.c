/* QAT weight fake-quant shared by conv2d, conv_bn and linear nodes: the
 * node's weight observer (n->wobs) sees the weight each training step, and
 * the kernels run on fq(weight); backward masks the weight gradient
 * straight-through. */
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/fakequant.h"
#include "graph/op.h"

void ql_wfq_free(ql_wfq *st) {
    ql_free(st->scale);
    ql_free(st->zp);
    memset(st, 0, sizeof *st);
}

ql_status ql_qat_weight_forward(ql_node *n, int training, const float *w, int oc, int64_t per, float *out,
                                ql_wfq *st) {
    st->active = 0;
    if (!n->wobs || n->fq_off) {
        if (out != w) memcpy(out, w, (size_t)oc * per * sizeof *out);
        return QL_OK;
    }
    if (training && !ql_observer_frozen(n->wobs)) {
        ql_tensor v = {.dtype = QL_DTYPE_F32, .ndim = 2, .shape = {oc, per}, .numel = (int64_t)oc * per,
                       .data = (void *)w, .scale = 1.0f};
        QL_TRY(ql_observer_observe(n->wobs, &v));
    }
    if (ql_observer_count(n->wobs) == 0) {   /* nothing seen yet: plain weights */
        if (out != w) memcpy(out, w, (size_t)oc * per * sizeof *out);
        return QL_OK;
    }
    if (st->oc != oc) {
        ql_wfq_free(st);
        if (!(st->scale = ql_malloc(sizeof(float) * oc)) || !(st->zp = ql_malloc(sizeof(int32_t) * oc))) {
            ql_wfq_free(st);
            return QL_ENOMEM;
        }
        st->oc = oc;
    }
    int ch = ql_observer_channels(n->wobs);
    if (ch != 1 && ch != oc)
        return ql_error(QL_ESHAPE, "node '%s': weight observer has %d channels for %d outputs", n->name, ch, oc);
    QL_TRY(ql_observer_qparams(n->wobs, st->scale, st->zp));
    for (int k = 1; ch == 1 && k < oc; k++) { st->scale[k] = st->scale[0]; st->zp[k] = st->zp[0]; }
    ql_observer_qrange(ql_observer_options(n->wobs), &st->qmin, &st->qmax);
    st->per = per;
    ql_fake_quant_channels(oc, per, w, st->scale, st->zp, st->qmin, st->qmax, out);
    st->active = 1;
    return QL_OK;
}

void ql_qat_weight_backward(const ql_wfq *st, const float *w, float *dw) {
    if (!st->active) return;
    ql_fake_quant_channels_backward(st->oc, st->per, w, st->scale, st->zp, st->qmin, st->qmax, dw, dw);
}
