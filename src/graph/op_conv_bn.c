/* conv_bn node (QAT): a conv and its batchnorm trained the way PyTorch's
 * ConvBn2d QAT modules train them. With s = gamma / sqrt(running_var + eps):
 *   training, BN live:  y0 = conv(x, fq(w * s)) / s (+ conv bias); y = BN(y0) with batch statistics
 *   BN frozen or eval:  y  = conv(x, fq(w * s)) + (bias - running_mean) * s + beta
 * so the weights the fake-quant sees are the folded ones convert will
 * quantize. Parameters: <n>.weight, [<n>.bias], <n>.bn.{weight,bias,running_mean,running_var}
 * (PyTorch's names for a fused ConvBn2d). The gradient of gamma through s is
 * left out while BN is live (it cancels under the straight-through estimate). */
#include <math.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/ops.h"
#include "graph/op.h"
#include "ops/ops_internal.h"

typedef struct {
    ql_wfq wfq;
    int oc;
    int64_t per;
    float *ws, *wq, *wp;     /* (OC,per) w*s, fq(w*s) OIHW; fq(w*s) OHWI */
    float *s, *bias_f;       /* (OC) */
    float *mean, *invstd;    /* (OC) batch statistics of the last training forward */
    float *y0; size_t y0_cap;
    int batch_stats;         /* the last forward used batch statistics */
    ql_conv_plan *plan;      /* oneDNN primitives (on the OIHW fq(w*s)) */
} cbn_priv;

static void cbn_free(void *pv) {
    cbn_priv *p = pv;
    if (!p) return;
    ql_wfq_free(&p->wfq);
    ql_conv_plan_free(p->plan);
    float *bufs[] = {p->ws, p->wq, p->wp, p->s, p->bias_f, p->mean, p->invstd, p->y0};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) ql_free(bufs[i]);
    ql_free(p);
}

enum { P_W = 0 };
static int p_bias(const ql_node *n) { return n->a.bias ? 1 : -1; }
static int p_gamma(const ql_node *n) { return n->a.bias ? 2 : 1; }

static ql_status cbn_infer(ql_node *n, const ql_node *const *in) { return ql_op_conv2d_def.infer(n, in); }

static ql_status cbn_params(ql_node *n) {
    const ql_attrs *a = &n->a;
    int64_t ws[4] = {a->out_ch, a->in_ch / a->groups, a->kernel[0], a->kernel[1]}, cs[1] = {a->out_ch};
    QL_TRY(ql_node_add_param(n, "weight", 4, ws, 1));
    if (a->bias) QL_TRY(ql_node_add_param(n, "bias", 1, cs, 1));
    QL_TRY(ql_node_add_param(n, "bn.weight", 1, cs, 1));
    QL_TRY(ql_node_add_param(n, "bn.bias", 1, cs, 1));
    QL_TRY(ql_node_add_param(n, "bn.running_mean", 1, cs, 0));
    QL_TRY(ql_node_add_param(n, "bn.running_var", 1, cs, 0));
    float *g = ql_f32(n->params[p_gamma(n)].value), *rv = ql_f32(n->params[p_gamma(n) + 3].value);
    for (int o = 0; o < a->out_ch; o++) g[o] = rv[o] = 1.0f;
    return QL_OK;
}

static ql_status get_priv(ql_node *n, int oc, int64_t per, cbn_priv **out) {
    cbn_priv *p = n->priv;
    if (p && p->oc == oc && p->per == per) { *out = p; return QL_OK; }
    cbn_free(p);
    n->priv = NULL;
    if (!(p = ql_calloc(sizeof *p))) return QL_ENOMEM;
    n->priv = p;
    size_t wn = (size_t)oc * per;
    p->oc = oc;
    p->per = per;
    if (!(p->ws = ql_malloc(wn * 4)) || !(p->wq = ql_malloc(wn * 4)) || !(p->wp = ql_malloc(wn * 4)) ||
        !(p->s = ql_malloc(oc * 4)) || !(p->bias_f = ql_malloc(oc * 4)) || !(p->mean = ql_malloc(oc * 4)) ||
        !(p->invstd = ql_malloc(oc * 4)))
        return QL_ENOMEM;
    *out = p;
    return QL_OK;
}

static ql_status shape_of(const ql_op_ctx *c, ql_conv2d_shape *s) {
    return ql_conv_shape_of(&c->n->a, c->x[0], c->batch, s);
}

/* y = conv(x, fq(w*s)) + b: oneDNN on the OIHW weight, else the reference on the OHWI copy. */
static void conv(cbn_priv *p, const ql_conv2d_shape *s, int training, const float *x, const float *b,
                 float *y, float *ws) {
    if (!ql_conv2d_dnnl_forward(&p->plan, s, training, x, p->wq, 1, 0, b, 0, y))
        ql_conv2d_forward(s, x, p->wp, b, y, ws);
}

static ql_status cbn_forward(ql_op_ctx *c) {
    ql_node *n = c->n;
    const ql_attrs *a = &n->a;
    ql_conv2d_shape s;
    QL_TRY(shape_of(c, &s));
    int oc = a->out_ch, ic = a->in_ch / a->groups, gi = p_gamma(n);
    int64_t per = (int64_t)ic * a->kernel[0] * a->kernel[1];
    cbn_priv *p;
    QL_TRY(get_priv(n, oc, per, &p));
    const float *w = ql_f32(n->params[P_W].value), *gamma = ql_f32(n->params[gi].value);
    const float *beta = ql_f32(n->params[gi + 1].value);
    float *rm = ql_f32(n->params[gi + 2].value), *rv = ql_f32(n->params[gi + 3].value);
    const float *b = a->bias ? ql_f32(n->params[p_bias(n)].value) : NULL;
    /* the per-element loops are split over the threads: serial, they left
     * the other thread spinning through a fifth of a QAT step */
    #pragma omp parallel for schedule(static) if (ql_ops_parallel((int64_t)oc * per, QL_OPS_PAR_ELEMS))
    for (int o = 0; o < oc; o++) {
        p->s[o] = gamma[o] / sqrtf(rv[o] + a->eps);
        for (int64_t e = 0; e < per; e++) p->ws[o * per + e] = w[o * per + e] * p->s[o];
    }
    QL_TRY(ql_qat_weight_forward(n, c->training, p->ws, oc, per, p->wq, &p->wfq));
    /* oneDNN reads the OIHW fq(w*s) as it is; the reference kernels want OHWI */
    int dnnl = ql_conv2d_dnnl_available();
    if (!dnnl) ql_conv_weight_oihw_to_ohwi(p->wq, p->wp, oc, ic, a->kernel[0], a->kernel[1]);
    size_t nws = dnnl ? 0 : ql_conv2d_workspace(&s);
    float *ws = ql_graph_scratch(c->g, nws);
    if (nws && !ws) return QL_ENOMEM;
    float *y = ql_f32(c->y);
    int64_t m = c->y->numel / oc;
    p->batch_stats = c->training && !c->g->bn_frozen;
    if (p->batch_stats) {
        size_t need = (size_t)c->y->numel;
        if (need > p->y0_cap) {
            ql_free(p->y0);
            p->y0_cap = 0;
            if (!(p->y0 = ql_malloc(need * sizeof(float)))) return QL_ENOMEM;
            p->y0_cap = need;
        }
        conv(p, &s, c->training, ql_f32(c->x[0]), NULL, p->y0, ws);
        #pragma omp parallel for schedule(static) if (ql_ops_parallel(m * oc, QL_OPS_PAR_ELEMS))
        for (int64_t r = 0; r < m; r++)
            for (int o = 0; o < oc; o++) p->y0[r * oc + o] = p->y0[r * oc + o] / p->s[o] + (b ? b[o] : 0.0f);
        ql_batchnorm_forward_train(m, oc, p->y0, gamma, beta, rm, rv, a->eps, a->momentum, y, p->mean, p->invstd);
    } else {
        for (int o = 0; o < oc; o++) p->bias_f[o] = ((b ? b[o] : 0.0f) - rm[o]) * p->s[o] + beta[o];
        conv(p, &s, c->training, ql_f32(c->x[0]), p->bias_f, y, ws);
    }
    ql_act_forward(a->act, c->y->numel, y);
    return QL_OK;
}

// out[o] += mul[o] * column sum o of x (M, c): rows in order within each thread's block, in double
static void colsum_add(int64_t m, int c, const float *x, float *out, const float *mul) {
    for (int c0 = 0; c0 < c; c0 += QL_OPS_COLS) {
        int nb = c - c0 < QL_OPS_COLS ? c - c0 : QL_OPS_COLS;
        double acc[QL_OPS_COLS];
        ql_ops_col_sums(m, nb, c, x + c0, NULL, NULL, acc, NULL);
        for (int j = 0; j < nb; j++) out[c0 + j] += (float)(acc[j] * (mul ? mul[c0 + j] : 1.0f));
    }
}

static ql_status cbn_backward(ql_op_ctx *c) {
    ql_node *n = c->n;
    const ql_attrs *a = &n->a;
    cbn_priv *p = n->priv;
    if (!p) return ql_error(QL_ESTATE, "node '%s': backward before forward", n->name);
    ql_conv2d_shape s;
    QL_TRY(shape_of(c, &s));
    int oc = a->out_ch, ic = a->in_ch / a->groups, gi = p_gamma(n);
    int64_t per = p->per, m = c->y->numel / oc, ny = c->y->numel;
    size_t nws = ql_conv2d_workspace(&s), wn = (size_t)oc * per;
    float *ws = ql_graph_scratch(c->g, nws + 2 * (size_t)ny + 2 * wn);
    if (!ws) return QL_ENOMEM;
    float *dm = ws + nws, *d0 = dm + ny, *dwo = d0 + ny, *dws = dwo + wn;
    memcpy(dm, c->dy, (size_t)ny * sizeof(float));
    ql_act_backward(a->act, ny, ql_f32(c->y), dm);
    const float *gamma = ql_f32(n->params[gi].value), *rm = ql_f32(n->params[gi + 2].value);
    const float *rv = ql_f32(n->params[gi + 3].value), *w = ql_f32(n->params[P_W].value);
    const float *b = a->bias ? ql_f32(n->params[p_bias(n)].value) : NULL;
    ql_tensor *gw = n->params[P_W].grad, *gb = a->bias ? n->params[p_bias(n)].grad : NULL;
    ql_tensor *gg = n->params[gi].grad, *gbeta = n->params[gi + 1].grad;
    const float *dconv;
    if (p->batch_stats) {
        ql_batchnorm_backward_train(m, oc, p->y0, gamma, p->mean, p->invstd, dm, d0,
                                    gg ? ql_f32(gg) : NULL, gbeta ? ql_f32(gbeta) : NULL);
        if (gb) colsum_add(m, oc, d0, ql_f32(gb), NULL);
        #pragma omp parallel for schedule(static) if (ql_ops_parallel(m * oc, QL_OPS_PAR_ELEMS))
        for (int64_t r = 0; r < m; r++)
            for (int o = 0; o < oc; o++) d0[r * oc + o] /= p->s[o];
        dconv = d0;
    } else {   /* y = conv + (b - rm) s + beta */
        float k[oc];
        if (gbeta) colsum_add(m, oc, dm, ql_f32(gbeta), NULL);
        if (gb) colsum_add(m, oc, dm, ql_f32(gb), p->s);
        for (int o = 0; o < oc; o++) k[o] = ((b ? b[o] : 0.0f) - rm[o]) / sqrtf(rv[o] + a->eps);
        if (gg) colsum_add(m, oc, dm, ql_f32(gg), k);
        dconv = dm;
    }
    float *dwp = gw || (gg && !p->batch_stats) ? dwo : NULL;
    if (dwp) { memset(dwp, 0, wn * sizeof(float)); memset(dws, 0, wn * sizeof(float)); }
    int dnnl = ql_conv2d_dnnl_backward(&p->plan, &s, ql_f32(c->x[0]), p->wq, 1, 0, dconv, c->dx[0],
                                       dwp ? dws : NULL, NULL);   /* dws: OIHW, zeroed above */
    if (!dnnl) {
        if (ql_conv2d_dnnl_available()) ql_conv_weight_oihw_to_ohwi(p->wq, p->wp, oc, ic, a->kernel[0], a->kernel[1]);
        ql_conv2d_backward(&s, ql_f32(c->x[0]), p->wp, dconv, c->dx[0], dwp, NULL, ws);
    }
    if (dwp) {
        if (!dnnl) ql_conv_weight_ohwi_to_oihw(dwp, dws, oc, ic, a->kernel[0], a->kernel[1]);
        ql_qat_weight_backward(&p->wfq, p->ws, dws);          /* d(w*s), straight-through */
        float *G = gw ? ql_f32(gw) : NULL, *Gg = gg ? ql_f32(gg) : NULL;
        #pragma omp parallel for schedule(static) if (ql_ops_parallel((int64_t)oc * per, QL_OPS_PAR_ELEMS))
        for (int o = 0; o < oc; o++) {
            double acc = 0;
            float r = 1.0f / sqrtf(rv[o] + a->eps);
            for (int64_t e = 0; e < per; e++) {
                if (G) G[o * per + e] += dws[o * per + e] * p->s[o];
                acc += (double)dws[o * per + e] * w[o * per + e] * r;
            }
            if (Gg && !p->batch_stats) Gg[o] += (float)acc;
        }
    }
    return QL_OK;
}

const ql_op_def ql_op_conv_bn_def = {1, 1, cbn_infer, cbn_params, cbn_forward, cbn_backward, cbn_free};
