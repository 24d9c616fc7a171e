/* Quantized linear: y (M,N) = requant(x (M,K) u8 . W (N,K) s8 + bias), one
 * packed GEMM with the conv's conventions (s32 bias for u8 output, the float
 * bias added after scaling for f32 output, relu fused into the clamp). */
#include <string.h>
#include "qlab/alloc.h"
#include "qops/qops_internal.h"

struct ql_qlinear {
    int k, n, relu, f32_out;
    int32_t x_zero, y_zero, qmin, qmax;
    ql_qgemm_packed *gemm;
    int32_t *bias_q;   /* (N) */
    float *mult;       /* (N) */
    float *fbias;      /* (N) f32 output with bias */
};

static int finite_pos(float v) { return v > 0 && v < INFINITY; }

void ql_qlinear_free(ql_qlinear *l) {
    if (!l) return;
    ql_qgemm_packed_free(l->gemm);
    ql_free(l->bias_q);
    ql_free(l->mult);
    ql_free(l->fbias);
    ql_free(l);
}

ql_qlinear *ql_qlinear_new(int k, int n, const ql_qlinear_params *p, ql_isa isa) {
    if (k <= 0 || n <= 0 || !p || !p->w || !p->w_scale) {
        ql_error(QL_EINVAL, "qlinear: bad shape (in %d, out %d) or missing weights", k, n);
        return NULL;
    }
    if (!finite_pos(p->x_scale) || (!p->f32_out && !finite_pos(p->y_scale)) ||
        p->x_zero < 0 || p->x_zero > 255 || p->y_zero < 0 || p->y_zero > 255 || p->relu < 0 || p->relu > 2) {
        ql_error(QL_EINVAL, "qlinear: bad quantization parameters (x %g/%d, y %g/%d, relu %d)",
                 (double)p->x_scale, p->x_zero, (double)p->y_scale, p->y_zero, p->relu);
        return NULL;
    }
    for (int j = 0; j < n; j++)
        if (!(p->w_scale[j] >= 0 && p->w_scale[j] < INFINITY)) {
            ql_error(QL_EINVAL, "qlinear: weight scale %d is %g", j, (double)p->w_scale[j]);
            return NULL;
        }
    ql_qlinear *l = ql_calloc(sizeof *l);
    if (!l) return NULL;
    l->k = k; l->n = n; l->relu = p->relu; l->f32_out = p->f32_out;
    l->x_zero = p->x_zero; l->y_zero = p->y_zero;
    ql_qout_bounds(p->relu, p->y_scale, p->y_zero, p->y_qmin, p->y_qmax, &l->qmin, &l->qmax);
    l->bias_q = ql_calloc(sizeof(int32_t) * n);
    l->mult = ql_malloc(sizeof(float) * n);
    if (!l->bias_q || !l->mult) goto fail;
    if (p->f32_out && p->bias) {
        if (!(l->fbias = ql_malloc(sizeof(float) * n))) goto fail;
        memcpy(l->fbias, p->bias, sizeof(float) * n);
    }
    for (int j = 0; j < n; j++) {
        float sw = p->w_scale[j], sb = p->x_scale * sw;
        l->mult[j] = p->f32_out ? sb : sb / p->y_scale;
        if (p->bias && !p->f32_out) l->bias_q[j] = ql_quantize_bias(p->bias[j], p->x_scale, sw);
    }
    if (!(l->gemm = ql_qgemm_pack(p->w, n, k, isa, p->x_qmax > 0 ? p->x_qmax : 255))) goto fail;
    return l;
fail:
    ql_qlinear_free(l);
    return NULL;
}

void ql_qlinear_forward(const ql_qlinear *l, int64_t m, const uint8_t *x, void *y) {
    if (!l || m <= 0) return;
    ql_qgemm_epilogue e = {.a_zero = l->x_zero, .bias = l->bias_q, .mult = l->mult, .y_zero = l->y_zero,
                           .qmin = l->qmin, .qmax = l->qmax, .fbias = l->fbias};
    if (!l->f32_out) {
        ql_qgemm_u8(l->gemm, m, x, l->k, y, l->n, &e);
        return;
    }
    ql_qgemm_f32(l->gemm, m, x, l->k, y, l->n, &e);
    if (l->relu) {   // no clamp on floats: the fused activation is applied here
        float *f = y;
        for (int64_t i = 0; i < m * l->n; i++) {
            float v = f[i] > 0.0f ? f[i] : 0.0f;
            f[i] = l->relu == 2 && v > 6.0f ? 6.0f : v;
        }
    }
}
