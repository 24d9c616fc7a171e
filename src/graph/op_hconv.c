/* f16conv2d / bf16conv2d nodes: weight (OC,IC/g,KH,KW) stored f16 or bf16
 * (PyTorch layout), bias f32, activations f32 in and out. Packed once per
 * g->version: an OHWI half copy without the taps that read only padding.
 * Per call, either the weights are widened to f32 in the scratch for the
 * FP32 conv kernel, or (groups 1, when the half GEMM has a better path for
 * this M: batch-1 dot products, AVX-512 BF16) im2col + the half GEMM. */
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/half.h"
#include "graph/op.h"

typedef struct {
    uint64_t version;
    ql_conv2d_shape t;    /* the (pruned) geometry, n = 1 */
    uint16_t *w;          /* (OC, t.kh, t.kw, C/groups) half */
    ql_hgemm *gemm;       /* groups 1: w as (OC, kh*kw*C) */
} hconv_priv;

static void hconv_priv_free(void *p) {
    hconv_priv *q = p;
    if (!q) return;
    ql_hgemm_free(q->gemm);
    ql_free(q->w);
    ql_free(q);
}

static ql_dtype wdtype(const ql_node *n) { return n->op == QL_OP_BF16CONV2D ? QL_DTYPE_BF16 : QL_DTYPE_F16; }

static ql_status hconv_infer(ql_node *n, const ql_node *const *in) {
    QL_TRY(ql_op_conv2d_def.infer(n, in));
    strcpy(n->precision, ql_dtype_name(wdtype(n)));
    return QL_OK;
}

/* weight (OC,IC/g,KH,KW) f16 / bf16, bias (OC) f32 */
static ql_status hconv_params(ql_node *n) {
    const ql_attrs *a = &n->a;
    int64_t ws[4] = {a->out_ch, a->in_ch / a->groups, a->kernel[0], a->kernel[1]}, bs[1] = {a->out_ch};
    QL_TRY(ql_node_add_param_dtype(n, "weight", wdtype(n), 4, ws, 0));
    if (a->bias) QL_TRY(ql_node_add_param_dtype(n, "bias", QL_DTYPE_F32, 1, bs, 0));
    return QL_OK;
}

static ql_status hconv_pack(ql_op_ctx *c, hconv_priv **out) {
    ql_node *n = c->n;
    hconv_priv *q = n->priv;
    if (q && q->version == c->g->version && q->w) { *out = q; return QL_OK; }
    if (!q) {
        if (!(q = ql_calloc(sizeof *q))) return QL_ENOMEM;
        n->priv = q;
    }
    ql_hgemm_free(q->gemm);
    ql_free(q->w);
    q->gemm = NULL;
    q->w = NULL;
    const ql_attrs *a = &n->a;
    const ql_tensor *x = c->x[0];
    ql_conv2d_shape s;
    QL_TRY(ql_conv_shape_of(a, x, 1, &s));
    int kh0 = 0, kw0 = 0, ic = s.c / s.groups;
    ql_conv2d_shape t = s;
    ql_conv_prune_taps(&s, &kh0, &kw0, &t);   /* inference only: drop taps that read only padding */
    if (!(q->w = ql_malloc(sizeof(uint16_t) * (size_t)s.oc * t.kh * t.kw * ic))) return QL_ENOMEM;
    ql_conv_weight_live_ohwi(n->params[0].value->data, sizeof(uint16_t), &s, kh0, kw0, t.kh, t.kw, q->w);
    if (s.groups == 1 &&
        !(q->gemm = ql_hgemm_new(wdtype(n), q->w, s.oc, t.kh * t.kw * ic, QL_HGEMM_AUTO)))
        return ql_error_prefix(QL_ENOMEM, "node '%s'", n->name);
    q->t = t;
    q->version = c->g->version;
    *out = q;
    return QL_OK;
}

// x (N,H,W,C) -> cols (N*OH*OW, KH*KW*C), taps in (ky, kx, c) order as OHWI, zeros for padding
static void im2col(const ql_conv2d_shape *s, const float *x, float *cols) {
    const int64_t K = (int64_t)s->kh * s->kw * s->c, rows = (int64_t)s->n * s->oh * s->ow;
    #pragma omp parallel for schedule(static) if (rows * K > (1 << 16))
    for (int64_t r = 0; r < rows; r++) {
        int64_t img = r / ((int64_t)s->oh * s->ow);
        int oy = (int)((r / s->ow) % s->oh), ox = (int)(r % s->ow);
        float *d = cols + r * K;
        for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++, d += s->c) {
                int iy = oy * s->sh - s->ph + ky * s->dh, ix = ox * s->sw - s->pw + kx * s->dw;
                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) memset(d, 0, sizeof(float) * s->c);
                else memcpy(d, x + ((img * s->h + iy) * s->w + ix) * s->c, sizeof(float) * s->c);
            }
    }
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static ql_status hconv_forward(ql_op_ctx *c) {
    ql_node *n = c->n;
    if (c->x[0]->dtype != QL_DTYPE_F32)
        return ql_error(QL_ESTATE, "node '%s': %s needs an f32 input", n->name, ql_op_name(n->op));
    hconv_priv *q = NULL;
    QL_TRY(hconv_pack(c, &q));
    ql_conv2d_shape s = q->t;
    s.n = (int)c->batch;
    QL_TRY(ql_conv2d_shape_init(&s));
    const float *x = ql_f32(c->x[0]), *b = n->a.bias ? ql_f32(n->params[1].value) : NULL;
    float *y = ql_f32(c->y);
    int64_t m = (int64_t)s.n * s.oh * s.ow, k = (int64_t)s.kh * s.kw * s.c;
    if (q->gemm && ql_hgemm_chosen(q->gemm, m) != QL_HGEMM_WIDEN) {
        int direct = s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0;
        size_t ncols = direct ? 0 : align64(sizeof(float) * (size_t)(m * k)), ng = ql_hgemm_workspace(q->gemm, m);
        char *ws = ncols + ng ? (char *)ql_graph_scratch(c->g, (ncols + ng + 3) / 4) : NULL;
        if (ncols + ng && !ws) return QL_ENOMEM;
        if (!direct) im2col(&s, x, (float *)ws);
        ql_hgemm_forward(q->gemm, m, direct ? x : (const float *)ws, k, b, y, s.oc, ws + ncols);
    } else {
        size_t nw = (size_t)s.oc * s.kh * s.kw * (s.c / s.groups), ncw = ql_conv2d_workspace(&s);
        size_t nw16 = (nw + 15) & ~(size_t)15;   /* the kernel's scratch stays 64-byte aligned */
        float *ws = ql_graph_scratch(c->g, nw16 + ncw);
        if (!ws) return QL_ENOMEM;
        ql_half_to_f32(wdtype(n), (int64_t)nw, q->w, ws);
        ql_conv2d_forward(&s, x, ws, b, y, ws + nw16);
    }
    ql_act_forward(n->a.act, c->y->numel, y);
    return QL_OK;
}

static ql_status no_backward(ql_op_ctx *c) {
    return ql_error(QL_EUNSUPPORTED, "node '%s': %s has no backward; train the FP32 model before converting",
                    c->n->name, ql_op_name(c->n->op));
}

const ql_op_def ql_op_f16conv2d_def = {1, 1, hconv_infer, hconv_params, hconv_forward, no_backward, hconv_priv_free};
const ql_op_def ql_op_bf16conv2d_def = {1, 1, hconv_infer, hconv_params, hconv_forward, no_backward, hconv_priv_free};
