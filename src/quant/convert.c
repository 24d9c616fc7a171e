/* convert: builds the quantized graph. Planned nodes become their INT8
 * versions (weights quantized with the plan's weight observer, output
 * qparams from the activation observers); a quantize node is inserted where
 * an FP32 value enters a quantized node, a dequantize where a u8 value
 * enters an FP32 node or leaves the model. Names: "<producer>_quant",
 * "<producer>_dequant". A quantized conv / linear whose value only FP32
 * nodes (or the model's output) read writes f32 straight from its s32
 * accumulator instead (attr f32_out): no 8-bit rounding of the logits, so no
 * ties made by requantization, and one pass fewer. */
#include <stdio.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/qops.h"
#include "qlab/quant.h"
#include "graph/op.h"

typedef struct {
    ql_graph *src, *dst;
    int *fmap, *qmap;        /* [src nodes] index in dst of the f32 / u8 value, -1 = not made yet */
    float *scale;            /* [src nodes] qparams of the u8 value */
    int32_t *zero;
    int32_t *qlo, *qhi;      /* [src nodes] its code range */
    unsigned char *q;        /* [src nodes] converted to INT8 */
    unsigned char *f32_only; /* [src nodes] read only as f32 (by FP32 nodes or as the output) */
} conv_ctx;

static ql_op_type qop(ql_op_type op) {
    switch (op) {
    case QL_OP_CONV2D: return QL_OP_QCONV2D;
    case QL_OP_LINEAR: return QL_OP_QLINEAR;
    case QL_OP_ADD: return QL_OP_QADD;
    case QL_OP_MAXPOOL2D: return QL_OP_QMAXPOOL2D;
    case QL_OP_GLOBAL_AVGPOOL: return QL_OP_QGLOBAL_AVGPOOL;
    case QL_OP_RELU: case QL_OP_RELU6: return QL_OP_QRELU;
    case QL_OP_FLATTEN: return QL_OP_QFLATTEN;
    default: return QL_OP_COUNT;
    }
}

static ql_status observer_qparams(const ql_node *n, ql_observer *o, float *s, int32_t *z, int32_t *qlo,
                                  int32_t *qhi) {
    if (!o || ql_observer_count(o) == 0)
        return ql_error(QL_ESTATE, "convert: node '%s' was never calibrated: run qlab.calibrate(model, loader) "
                        "after prepare", n->name);
    ql_observer_qrange(ql_observer_options(o), qlo, qhi);
    if (*qlo < 0) *qlo = 0;      // u8 storage whatever the observer's grid
    if (*qhi > 255) *qhi = 255;
    return ql_observer_qparams(o, s, z);
}

static int add_node(conv_ctx *c, const char *name, ql_op_type op, const int *in, int nin, const ql_attrs *a) {
    int idx = ql_graph_add(c->dst, name, op, in, nin, a);
    return idx;
}

/* dst index of src node i's value as f32 (inserting a dequantize). */
static int f32_value(conv_ctx *c, int i) {
    if (c->fmap[i] >= 0) return c->fmap[i];
    char name[512];
    snprintf(name, sizeof name, "%s_dequant", c->src->nodes[i].name);
    int idx = add_node(c, name, QL_OP_DEQUANTIZE, &c->qmap[i], 1, NULL);
    if (idx >= 0) strcpy(c->dst->nodes[idx].precision, "f32");
    return c->fmap[i] = idx;
}

/* dst index of src node i's value as u8 (inserting a quantize). */
static int u8_value(conv_ctx *c, int i) {
    if (c->qmap[i] >= 0) return c->qmap[i];
    const ql_node *n = &c->src->nodes[i];
    if (observer_qparams(n, n->obs, &c->scale[i], &c->zero[i], &c->qlo[i], &c->qhi[i]) != QL_OK) return -1;
    char name[512];
    snprintf(name, sizeof name, "%s_quant", n->name);
    int idx = add_node(c, name, QL_OP_QUANTIZE, &c->fmap[i], 1, NULL);
    if (idx < 0) return -1;
    ql_node *d = &c->dst->nodes[idx];
    d->out_scale = c->scale[i];
    d->out_zero = c->zero[i];
    d->out_qmin = c->qlo[i];
    d->out_qmax = c->qhi[i];
    strcpy(d->precision, "u8");
    return c->qmap[i] = idx;
}

/* Quantizes an f32 weight into the s8 param of d, per the plan's weight observer. */
static ql_status quantize_weight(const ql_node *n, const ql_tensor *w, ql_node *d) {
    /* QAT: the ranges the fake-quant trained with; PTQ: a fresh observer on the final weights */
    int qat = n->wobs && ql_observer_count(n->wobs) > 0;
    ql_observer *o = qat ? ql_observer_clone(n->wobs) : ql_observer_new(&n->plan.weight);
    if (!o) return ql_error_prefix(QL_EINVAL, "node '%s' weight observer", n->name);
    ql_status st = qat ? QL_OK : ql_observer_observe(o, w);
    int ch = o ? ql_observer_channels(o) : 0, oc = (int)w->shape[0];
    float *sc = ql_f32(d->params[1].value);
    int32_t *zp = d->params[2].value->data, qmin, qmax;
    ql_observer_qrange(&n->plan.weight, &qmin, &qmax);
    if (st == QL_OK && ch != 1 && ch != oc) st = ql_error(QL_ESHAPE, "node '%s': weight observer has %d channels for %d outputs", n->name, ch, oc);
    if (st == QL_OK && ch == 1) {
        st = ql_observer_qparams(o, sc, zp);
        for (int k = 1; k < oc; k++) { sc[k] = sc[0]; zp[k] = zp[0]; }
    } else if (st == QL_OK) {
        st = ql_observer_qparams(o, sc, zp);
    }
    ql_observer_free(o);
    QL_TRY(st);
    int64_t per = w->numel / oc;
    for (int k = 0; k < oc; k++) {
        if (zp[k] != 0) return ql_error(QL_EINVAL, "node '%s': weight zero point %d (the kernels need symmetric weights)", n->name, zp[k]);
        ql_quantize_s8(per, ql_f32(w) + k * per, sc[k], 0, qmin, qmax, (int8_t *)d->params[0].value->data + k * per);
    }
    return QL_OK;
}

static void set_precision(ql_node *d, const ql_qplan *p) {
    int wb = p->weight.bits, ab = p->act.bits;
    if (wb == 8 && ab == 8) strcpy(d->precision, "int8");
    else snprintf(d->precision, sizeof d->precision, "w%da%d", wb, ab);
}

static ql_status convert_node(conv_ctx *c, int i) {
    const ql_node *n = &c->src->nodes[i];
    int in[QL_MAX_INPUTS];
    if (!c->q[i]) {   /* FP32: same node, f32 inputs, parameters copied */
        for (int k = 0; k < n->ninputs; k++)
            if ((in[k] = f32_value(c, n->inputs[k])) < 0) return QL_EINVAL;
        if (ql_plan_half_dtype(n) != QL_DTYPE_F32)   /* f16 / bf16 plan: half weights, f32 in and out (dynamic.c) */
            return (c->fmap[i] = ql_dynamic_add_node(c->dst, n, in, ql_plan_half_dtype(n))) < 0 ? QL_EINVAL : QL_OK;
        int idx = add_node(c, n->name, n->op, in, n->ninputs, &n->a);
        if (idx < 0) return QL_EINVAL;
        ql_node *d = &c->dst->nodes[idx];
        for (int k = 0; k < n->nparams; k++) QL_TRY(ql_tensor_copy(d->params[k].value, n->params[k].value));
        strcpy(d->precision, n->precision);
        c->fmap[i] = idx;
        return QL_OK;
    }
    for (int k = 0; k < n->ninputs; k++)
        if ((in[k] = u8_value(c, n->inputs[k])) < 0) return QL_EINVAL;
    ql_attrs a = n->a;
    if (n->op == QL_OP_RELU) a.act = QL_ACT_RELU;
    if (n->op == QL_OP_RELU6) a.act = QL_ACT_RELU6;
    int f32_out = c->f32_only[i] && (n->op == QL_OP_CONV2D || n->op == QL_OP_LINEAR);
    a.f32_out = f32_out;
    int idx = add_node(c, n->name, qop(n->op), in, n->ninputs, &a);
    if (idx < 0) return QL_EINVAL;
    ql_node *d = &c->dst->nodes[idx];
    set_precision(d, &n->plan);
    if (f32_out) {   /* no output qparams: the activation observer is not needed */
        QL_TRY(quantize_weight(n, n->params[0].value, d));
        if (n->a.bias) QL_TRY(ql_tensor_copy(d->params[3].value, n->params[1].value));
        c->fmap[i] = idx;
        return QL_OK;
    }
    if (ql_quant_passthrough(n->op)) {
        c->scale[i] = c->scale[n->inputs[0]];
        c->zero[i] = c->zero[n->inputs[0]];
        c->qlo[i] = c->qlo[n->inputs[0]];
        c->qhi[i] = c->qhi[n->inputs[0]];
    } else {
        QL_TRY(observer_qparams(n, n->obs, &c->scale[i], &c->zero[i], &c->qlo[i], &c->qhi[i]));
    }
    d->out_scale = c->scale[i];
    d->out_zero = c->zero[i];
    d->out_qmin = c->qlo[i];
    d->out_qmax = c->qhi[i];
    if (n->op == QL_OP_CONV2D || n->op == QL_OP_LINEAR) {
        QL_TRY(quantize_weight(n, n->params[0].value, d));
        if (n->a.bias) QL_TRY(ql_tensor_copy(d->params[3].value, n->params[1].value));
    }
    c->qmap[i] = idx;
    return QL_OK;
}

ql_status ql_convert(ql_graph *g) {
    if (!ql_is_prepared(g)) return ql_error(QL_ESTATE, "convert: the model is not prepared: call prepare{...} and calibrate first");
    QL_TRY(ql_qat_lower(g));
    int nn = g->nnodes;
    conv_ctx c = {.src = g};
    c.dst = ql_graph_new(g->nodes[0].out_ndim, g->nodes[0].out_shape);
    c.fmap = ql_malloc(sizeof(int) * nn);
    c.qmap = ql_malloc(sizeof(int) * nn);
    c.scale = ql_malloc(sizeof(float) * nn);
    c.zero = ql_malloc(sizeof(int32_t) * nn);
    c.qlo = ql_malloc(sizeof(int32_t) * nn);
    c.qhi = ql_malloc(sizeof(int32_t) * nn);
    c.q = ql_calloc((size_t)nn);
    c.f32_only = ql_calloc((size_t)nn);
    ql_status st = (c.dst && c.fmap && c.qmap && c.scale && c.zero && c.qlo && c.qhi && c.q && c.f32_only)
                       ? QL_OK : QL_ENOMEM;
    for (int i = 0; st == QL_OK && i < nn; i++) {
        c.fmap[i] = c.qmap[i] = -1;
        c.q[i] = i > 0 && g->nodes[i].plan.mode == QL_QMODE_INT8 && ql_quant_supported(g->nodes[i].op);
    }
    /* f32_only[i]: some reader, and no quantized one */
    unsigned char *u8_read = st == QL_OK ? ql_calloc((size_t)nn) : NULL;
    if (st == QL_OK && !u8_read) st = QL_ENOMEM;
    for (int j = 1; st == QL_OK && j < nn; j++)
        for (int k = 0; k < g->nodes[j].ninputs; k++) {
            int i = g->nodes[j].inputs[k];
            if (c.q[j]) u8_read[i] = 1; else c.f32_only[i] = 1;
        }
    if (st == QL_OK) {
        c.f32_only[g->output] = 1;
        for (int i = 0; i < nn; i++) c.f32_only[i] = c.f32_only[i] && !u8_read[i];
    }
    ql_free(u8_read);
    if (st == QL_OK) c.fmap[0] = 0;
    for (int i = 1; st == QL_OK && i < nn; i++) st = convert_node(&c, i);
    if (st == QL_OK) {
        int out = c.fmap[g->output] >= 0 ? c.fmap[g->output] : f32_value(&c, g->output);
        st = out < 0 ? QL_EINVAL : ql_graph_set_output(c.dst, out);
    }
    if (st == QL_OK) {   /* the converted graph takes the place of the old one */
        ql_graph tmp = *g;
        c.dst->version = g->version + 1;
        c.dst->profile = g->profile;
        *g = *c.dst;
        *c.dst = tmp;
    }
    ql_graph_free(c.dst);
    ql_free(c.fmap); ql_free(c.qmap); ql_free(c.scale); ql_free(c.zero); ql_free(c.qlo); ql_free(c.qhi); ql_free(c.q); ql_free(c.f32_only);
    return st;
}
