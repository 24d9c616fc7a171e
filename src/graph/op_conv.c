/* conv2d node: PyTorch's OIHW weight in the file, an OHWI packed copy for the
 * kernels (rebuilt when g->version moves), im2col scratch from the graph. */
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/cpu.h"
#include "qlab/ops.h"
#include "graph/op.h"

typedef struct {
    uint64_t version;   /* g->version the copy was packed at */
    int valid;
    /* Inference only: taps that read nothing but padding for every output
     * pixel are dropped (a 3x3 conv on a 1x1 map is a 1x1 conv), so the
     * kernel reads only the weights that matter. */
    int pruned;               /* 1 when wp holds the pruned kernel */
    int kh0, kw0, kh, kw;     /* first kept tap, kept extent */
    float *wp;                /* (OC,kh,kw,C/groups) or NULL */
    uint64_t wp_version;
    ql_wfq wfq;               /* QAT: weight fake-quant of the last pack */
    float *fq;                /* QAT: fq(weight) OIHW, or NULL */
    ql_conv_plan *plan;       /* oneDNN primitives of this node, by shape */
    uint64_t fq_version;      /* QAT: g->version + 1 fq was computed at, 0: never */
    float *wb, *bb;           /* inference with a fused batchnorm: folded weight and bias */
    size_t wb_n;
    uint64_t wb_version;      /* g->version + 1 they were folded at, 0: never */
    const float *wb_src;
    ql_conv_fregions *regions;   /* inference by live-tap regions (batch >= REGION_MIN_BATCH) */
    _Alignas(64) float w[];   /* (OC,KH,KW,C/groups), cache-line aligned like ql_malloc */
} conv_priv;

static void conv_priv_free(void *priv) {
    conv_priv *p = priv;
    if (p) { ql_free(p->wp); ql_free(p->fq); ql_wfq_free(&p->wfq); ql_conv_plan_free(p->plan); ql_free(p->wb); ql_free(p->bb);
             ql_conv2d_regions_free(p->regions); }
    ql_free(p);
}

static ql_status conv_infer(ql_node *n, const ql_node *const *in) {
    ql_attrs *a = &n->a;
    QL_TRY(ql_check_image(n, in[0]));
    QL_TRY(ql_check_window(n, 1));
    int64_t h = in[0]->out_shape[0], w = in[0]->out_shape[1], c = in[0]->out_shape[2];
    if (a->in_ch == 0) a->in_ch = (int)c;
    if (a->in_ch != c)
        return ql_error(QL_ESHAPE, "node '%s': conv2d expects %d input channels, got %lld from '%s'",
                        n->name, a->in_ch, (long long)c, in[0]->name);
    if (a->out_ch < 1) return ql_error(QL_EINVAL, "node '%s': conv2d out_ch must be >= 1, got %d", n->name, a->out_ch);
    if (a->groups < 1 || a->in_ch % a->groups || a->out_ch % a->groups)
        return ql_error(QL_EINVAL, "node '%s': conv2d groups=%d must divide in_ch=%d and out_ch=%d",
                        n->name, a->groups, a->in_ch, a->out_ch);
    ql_conv2d_shape s = {.n = 1, .h = (int)h, .w = (int)w, .c = (int)c, .oc = a->out_ch,
                         .kh = a->kernel[0], .kw = a->kernel[1], .sh = a->stride[0], .sw = a->stride[1],
                         .ph = a->padding[0], .pw = a->padding[1], .dh = a->dilation[0],
                         .dw = a->dilation[1], .groups = a->groups};
    int64_t eh = (int64_t)a->dilation[0] * (a->kernel[0] - 1) + 1, ew = (int64_t)a->dilation[1] * (a->kernel[1] - 1) + 1;
    if (eh > h + 2 * a->padding[0] || ew > w + 2 * a->padding[1])
        return ql_error(QL_ESHAPE, "node '%s': conv2d kernel %lldx%lld (with dilation) is larger than "
                        "the padded input %lldx%lld", n->name, (long long)eh, (long long)ew,
                        (long long)(h + 2 * a->padding[0]), (long long)(w + 2 * a->padding[1]));
    if (ql_conv2d_shape_init(&s) != QL_OK) return ql_error_prefix(QL_ESHAPE, "node '%s'", n->name);
    n->out_ndim = 3;
    n->out_shape[0] = s.oh; n->out_shape[1] = s.ow; n->out_shape[2] = a->out_ch;
    return QL_OK;
}

static ql_status conv_params(ql_node *n) {
    const ql_attrs *a = &n->a;
    int64_t ws[4] = {a->out_ch, a->in_ch / a->groups, a->kernel[0], a->kernel[1]}, bs[1] = {a->out_ch};
    QL_TRY(ql_node_add_param(n, "weight", 4, ws, 1));
    if (a->bias) QL_TRY(ql_node_add_param(n, "bias", 1, bs, 1));
    return QL_OK;
}

static ql_status conv_shape(const ql_op_ctx *c, ql_conv2d_shape *s) {
    return ql_conv_shape_of(&c->n->a, c->x[0], c->batch, s);
}

static conv_priv *priv_of(ql_node *n) {
    conv_priv *p = n->priv;
    if (p) return p;
    if (!(p = ql_malloc(sizeof *p + (size_t)n->params[0].value->numel * sizeof(float)))) return NULL;
    memset(p, 0, sizeof *p);
    p->pruned = -1;
    n->priv = p;
    return p;
}

/* The OIHW weight the kernels run on: the parameter itself, or under QAT
 * fq(weight), recomputed when the parameters changed. */
static const float *oihw_weight(ql_op_ctx *c) {
    ql_node *n = c->n;
    const ql_tensor *w = n->params[0].value;
    conv_priv *p = priv_of(n);
    if (!p) return NULL;
    if (!n->wobs) return ql_f32(w);
    if (p->fq_version != c->g->version + 1) {
        if (!p->fq && !(p->fq = ql_malloc((size_t)w->numel * sizeof(float)))) return NULL;
        if (ql_qat_weight_forward(n, c->training, ql_f32(w), n->a.out_ch, w->numel / n->a.out_ch, p->fq, &p->wfq) != QL_OK)
            return NULL;
        p->fq_version = c->g->version + 1;
    }
    return p->fq;
}

/* The OHWI copy of that weight, repacked when the parameters changed. */
static const float *packed_weight(ql_op_ctx *c) {
    const ql_attrs *a = &c->n->a;
    const float *src = oihw_weight(c);
    conv_priv *p = c->n->priv;
    if (!src) return NULL;
    if (!p->valid || p->version != c->g->version) {
        ql_conv_weight_oihw_to_ohwi(src, p->w, a->out_ch, a->in_ch / a->groups, a->kernel[0], a->kernel[1]);
        p->version = c->g->version;
        p->valid = 1;
    }
    return p->w;
}

/* Inference: the conv restricted to its live taps (same outputs: the dropped
 * taps only ever multiply padding). Adjusts *s and returns the weight. */
static const float *pruned_weight(ql_op_ctx *c, const float *w, ql_conv2d_shape *s) {
    conv_priv *p = c->n->priv;
    if (p->pruned < 0) {
        ql_conv2d_shape t;
        p->pruned = ql_conv_prune_taps(s, &p->kh0, &p->kw0, &t);
        p->kh = t.kh; p->kw = t.kw;
    }
    if (!p->pruned) return w;
    int ic = s->c / s->groups;
    if (!p->wp) {
        if (!(p->wp = ql_malloc((size_t)s->oc * p->kh * p->kw * ic * sizeof(float)))) return NULL;
        p->wp_version = c->g->version - 1;
    }
    if (p->wp_version != c->g->version) {
        for (int o = 0; o < s->oc; o++)
            for (int y = 0; y < p->kh; y++)
                for (int x = 0; x < p->kw; x++)
                    memcpy(p->wp + (((size_t)o * p->kh + y) * p->kw + x) * ic,
                           w + (((size_t)o * s->kh + y + p->kh0) * s->kw + x + p->kw0) * ic, ic * sizeof(float));
        p->wp_version = c->g->version;
    }
    ql_conv_prune_taps(s, &p->kh0, &p->kw0, s);
    return p->wp;
}

/* w' = w * gamma/sqrt(var+eps) per output channel, b' = (b - mean) * that + beta:
 * the conv then writes what conv followed by the batchnorm would (to float
 * rounding). Refolded when the parameters move. */
static int fold_bn(ql_op_ctx *c, const ql_conv2d_shape *s, const float **w, const float **b) {
    conv_priv *p = c->n->priv;
    const ql_node *bn = c->bn;
    size_t per = (size_t)s->kh * s->kw * (s->c / s->groups), nw = per * s->oc;
    if (p->wb_n < nw || !p->bb) {
        ql_free(p->wb); ql_free(p->bb);
        p->wb = ql_malloc(nw * sizeof(float));
        p->bb = ql_malloc((size_t)s->oc * sizeof(float));
        p->wb_n = p->wb && p->bb ? nw : 0;
        p->wb_version = 0;
        if (!p->wb_n) return 0;
    }
    if (p->wb_version != c->g->version + 1 || p->wb_src != *w) {
        ql_batchnorm_fold(s->oc, (int64_t)per, *w, *b, ql_f32(bn->params[0].value), ql_f32(bn->params[1].value),
                          ql_f32(bn->params[2].value), ql_f32(bn->params[3].value), bn->a.eps, p->wb, p->bb);
        p->wb_version = c->g->version + 1;
        p->wb_src = *w;
    }
    *w = p->wb;
    *b = p->bb;
    return 1;
}

#define REGION_MIN_BATCH 8   /* below, the regions' extra weight bytes cost more than the taps they skip */

static ql_status conv_forward(ql_op_ctx *c) {
    ql_conv2d_shape s;
    QL_TRY(conv_shape(c, &s));
    if (c->training) {   /* oneDNN reads the OIHW parameter as it is */
        const float *wt = oihw_weight(c);
        if (!wt) return QL_ENOMEM;
        const float *bt = c->n->a.bias ? ql_f32(c->n->params[1].value) : NULL;
        if (ql_conv2d_dnnl_forward(&((conv_priv *)c->n->priv)->plan, &s, 1, ql_f32(c->x[0]), wt, 1,
                                   c->g->version + 1, bt, c->n->a.act, ql_f32(c->y)))
            return QL_OK;
    }
    const float *w = packed_weight(c);
    if (w && !c->training) w = pruned_weight(c, w, &s);
    if (!w) return QL_ENOMEM;
    const float *b = c->n->a.bias ? ql_f32(c->n->params[1].value) : NULL;
    conv_priv *p = c->n->priv;
    if (c->bn && !fold_bn(c, &s, &w, &b)) return QL_ENOMEM;
    int act = c->n->a.act ? c->n->a.act : c->act;
    /* Output maps of at most 4 pixels over many rows (ResNet-18's last stages at
     * batch 64): oneDNN's direct kernels ran them 1.3-3.8x slower than im2col +
     * sgemm, even on OpenBLAS's AVX2 kernels; at batch 1 oneDNN is faster.
     * Grouped and depthwise convs stay on oneDNN (the direct kernels lose there). */
    int small_map = s.groups == 1 && s.oh * s.ow <= 4 && (int64_t)s.n * s.oh * s.ow >= 64;
    /* From a few images on, border pixels multiply only their live taps
     * (ResNet-18 on 28x28: 56 % of layer3's MACs and 31 % of layer2's are
     * padding), through sgemm like small maps. On AVX-512 only where small
     * maps take sgemm anyway: elsewhere oneDNN's AVX-512 kernels over every
     * tap may beat OpenBLAS's (OPENBLAS_CORETYPE=Haswell: AVX2) over the live
     * ones, which this AVX2-only machine could not measure. */
    if (s.n >= REGION_MIN_BATCH && s.groups == 1 && (small_map || ql_isa_best() < QL_ISA_AVX512)) {
        size_t nrw = ql_conv2d_regions_workspace(&p->regions, &s);
        if (nrw) {
            float *rws = ql_graph_scratch(c->g, nrw);
            if (!rws) return QL_ENOMEM;
            int r = ql_conv2d_regions_forward(&p->regions, &s, ql_f32(c->x[0]), w, c->g->version + 1, b, ql_f32(c->y),
                                              rws);
            if (r < 0) return QL_ENOMEM;
            if (r) { ql_act_forward(act, c->y->numel, ql_f32(c->y)); return QL_OK; }
        }
    }
    if (!small_map && ql_conv2d_dnnl_forward(&p->plan, &s, c->training, ql_f32(c->x[0]), w, 0, c->g->version + 1, b,
                                             act, ql_f32(c->y)))
        return QL_OK;
    size_t nws = ql_conv2d_workspace(&s);
    float *ws = ql_graph_scratch(c->g, nws);
    if (nws && !ws) return QL_ENOMEM;
    ql_conv2d_forward(&s, ql_f32(c->x[0]), w, b, ql_f32(c->y), ws);
    ql_act_forward(act, c->y->numel, ql_f32(c->y));
    return QL_OK;
}

/* grad (OC,IC,KH,KW) += d (OC,KH,KW,IC) */
static void unpack_accumulate(const float *d, float *grad, int oc, int ic, int kh, int kw) {
    for (int o = 0; o < oc; o++)
        for (int i = 0; i < ic; i++)
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++)
                    grad[(((size_t)o * ic + i) * kh + y) * kw + x] += d[(((size_t)o * kh + y) * kw + x) * ic + i];
}

/* oneDNN's backward on the OIHW weight: dw accumulates straight into the
 * parameter's gradient (through fq's straight-through mask under QAT).
 * Returns 0 when oneDNN did not take it (the caller runs the reference). */
static int backward_dnnl(ql_op_ctx *c, const ql_conv2d_shape *s, const float *dy, ql_tensor *gw, ql_tensor *gb,
                         float *scratch) {
    ql_node *n = c->n;
    const float *w = oihw_weight(c);
    conv_priv *p = n->priv;
    if (!w || !ql_conv2d_dnnl_available()) return 0;
    size_t nw = gw ? (size_t)gw->numel : 0;
    float *d = nw && p->wfq.active ? scratch : NULL;   /* QAT: d(fq(w)) before the mask */
    if (d) memset(d, 0, nw * sizeof(float));
    float *dw = d ? d : nw ? ql_f32(gw) : NULL;
    int ok = ql_conv2d_dnnl_backward(&p->plan, s, ql_f32(c->x[0]), w, 1, c->g->version + 1, dy, c->dx[0], dw,
                                     gb ? ql_f32(gb) : NULL);
    if (ok && d) {   /* QAT: straight-through the weight fake-quant */
        ql_qat_weight_backward(&p->wfq, ql_f32(n->params[0].value), d);
        float *G = ql_f32(gw);
        for (size_t e = 0; e < nw; e++) G[e] += d[e];
    }
    return ok;
}

static ql_status conv_backward(ql_op_ctx *c) {
    ql_node *n = c->n;
    const ql_attrs *a = &n->a;
    ql_conv2d_shape s;
    QL_TRY(conv_shape(c, &s));
    ql_tensor *gw = n->params[0].grad, *gb = a->bias ? n->params[1].grad : NULL;
    size_t nws = ql_conv2d_workspace(&s), nw = gw ? (size_t)gw->numel : 0;
    size_t ny = a->act ? (size_t)c->y->numel : 0;
    float *ws = ql_graph_scratch(c->g, nws + nw + ny);
    if (nws + nw + ny && !ws) return QL_ENOMEM;
    const float *dy = c->dy;
    if (ny) {   /* through the fused activation first */
        float *m = ws + nws + nw;
        memcpy(m, c->dy, ny * sizeof *m);
        ql_act_backward(a->act, (int64_t)ny, ql_f32(c->y), m);
        dy = m;
    }
    if (backward_dnnl(c, &s, dy, gw, gb, nw ? ws + nws : NULL)) return QL_OK;
    const float *w = packed_weight(c);
    if (!w) return QL_ENOMEM;
    float *dw = nw ? ws + nws : NULL;   /* OHWI, unpacked into the OIHW grad below */
    if (dw) memset(dw, 0, nw * sizeof *dw);
    conv_priv *p = n->priv;
    ql_conv2d_backward(&s, ql_f32(c->x[0]), w, dy, c->dx[0], dw, gb ? ql_f32(gb) : NULL, ws);
    if (dw && p->wfq.active) {   /* QAT: straight-through the weight fake-quant */
        float *d = ql_malloc(nw * sizeof(float));
        if (!d) return QL_ENOMEM;
        ql_conv_weight_ohwi_to_oihw(dw, d, a->out_ch, a->in_ch / a->groups, a->kernel[0], a->kernel[1]);
        ql_qat_weight_backward(&p->wfq, ql_f32(n->params[0].value), d);
        float *G = ql_f32(gw);
        for (size_t e = 0; e < nw; e++) G[e] += d[e];
        ql_free(d);
    } else if (dw) {
        unpack_accumulate(dw, ql_f32(gw), a->out_ch, a->in_ch / a->groups, a->kernel[0], a->kernel[1]);
    }
    return QL_OK;
}

const ql_op_def ql_op_conv2d_def = {1, 1, conv_infer, conv_params, conv_forward, conv_backward, conv_priv_free};
