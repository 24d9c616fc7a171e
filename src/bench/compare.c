/* Numeric comparison of two tensors (reference f32 vs an approximation,
 * possibly u8 with its qparams): SQNR / MSE / max error sums, and for logits
 * the softmax KL divergence and argmax agreement. Sums in double, serial, so
 * a result does not depend on the thread count. */
#include <math.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/compare.h"
#include "qlab/topk.h"

void ql_compare_init(ql_compare_sums *s) { memset(s, 0, sizeof *s); }
void ql_logit_sums_init(ql_logit_sums *s) { memset(s, 0, sizeof *s); }

// IEEE half (u16 bits) -> float
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);                       /* zero, subnormal */
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 0x400), (int)e - 25);
    return sign ? -v : v;
}

static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

// element i of t as a real value: f32 as is, u8 as scale * (q - zp), f16 / bf16 widened
static inline double value_at(const ql_tensor *t, int64_t i) {
    switch (t->dtype) {
    case QL_DTYPE_F32: return ((const float *)t->data)[i];
    case QL_DTYPE_U8: return (double)t->scale * ((int32_t)((const uint8_t *)t->data)[i] - t->zero_point);
    case QL_DTYPE_F16: return f16_to_f32(((const uint16_t *)t->data)[i]);
    case QL_DTYPE_BF16: return bf16_to_f32(((const uint16_t *)t->data)[i]);
    default: return 0;
    }
}

static ql_status check_pair(const ql_tensor *ref, const ql_tensor *approx, const char *what) {
    if (!ref || !approx) return ql_error(QL_EINVAL, "%s: missing tensor", what);
    if (ref->dtype != QL_DTYPE_F32)
        return ql_error(QL_EINVAL, "%s: the reference must be f32, got %s", what, ql_dtype_name(ref->dtype));
    ql_dtype d = approx->dtype;
    if (d != QL_DTYPE_F32 && d != QL_DTYPE_U8 && d != QL_DTYPE_F16 && d != QL_DTYPE_BF16)
        return ql_error(QL_EINVAL, "%s: cannot read %s values", what, ql_dtype_name(d));
    if (ref->numel != approx->numel) {
        char a[128], b[128];
        return ql_error(QL_ESHAPE, "%s: %s and %s differ in size", what, ql_shape_str(ref->ndim, ref->shape, a, sizeof a),
                        ql_shape_str(approx->ndim, approx->shape, b, sizeof b));
    }
    return QL_OK;
}

// ref (n) f32, approx (n) -> s += sum x^2, sum (x - xq)^2, max |x - xq|
ql_status ql_compare_accumulate(ql_compare_sums *s, const ql_tensor *ref, const ql_tensor *approx) {
    ql_status st = check_pair(ref, approx, "compare");
    if (st != QL_OK) return st;
    const float *x = ql_f32(ref);
    double sx = 0, se = 0, mx = s->max_abs;
    for (int64_t i = 0; i < ref->numel; i++) {
        double r = x[i], e = r - value_at(approx, i);
        sx += r * r;
        se += e * e;
        if (fabs(e) > mx || e != e) mx = e != e ? INFINITY : fabs(e);
    }
    s->sum_ref2 += sx;
    s->sum_err2 += se;
    s->max_abs = mx;
    s->n += ref->numel;
    return QL_OK;
}

double ql_compare_sqnr_db(const ql_compare_sums *s) {
    if (s->sum_err2 == 0) return INFINITY;
    return 10.0 * log10(s->sum_ref2 / s->sum_err2);
}

double ql_compare_mse(const ql_compare_sums *s) { return s->n ? s->sum_err2 / (double)s->n : 0; }

// row (c) as floats -> log softmax into out (c)
static void log_softmax(const float *x, int64_t c, double *out) {
    double m = -INFINITY, z = 0;
    for (int64_t k = 0; k < c; k++) if (x[k] > m) m = x[k];
    for (int64_t k = 0; k < c; k++) z += exp((double)x[k] - m);
    double lz = m + log(z);
    for (int64_t k = 0; k < c; k++) out[k] = (double)x[k] - lz;
}

// ref, approx (N, C) logits; labels (N) s32 or NULL. Hits and agreement follow ql_topk_row.
ql_status ql_compare_logits(ql_logit_sums *s, const ql_tensor *ref, const ql_tensor *approx, const ql_tensor *labels) {
    ql_status st = check_pair(ref, approx, "compare_logits");
    if (st != QL_OK) return st;
    if (ref->ndim < 1) return ql_error(QL_ESHAPE, "compare_logits: logits need a shape (N, C)");
    int64_t c = ref->shape[ref->ndim - 1], n = c > 0 ? ref->numel / c : 0;
    if (c < 1 || c > 1 << 20) return ql_error(QL_ESHAPE, "compare_logits: %lld classes", (long long)c);
    if (labels && (labels->dtype != QL_DTYPE_S32 || labels->numel != n))
        return ql_error(QL_ESHAPE, "compare_logits: labels must be %lld s32 values", (long long)n);
    enum { SMALL = 1024 };
    double dbuf[2 * SMALL], *p = dbuf;
    float fbuf[SMALL], *fq = fbuf;
    if (c > SMALL) {
        p = ql_malloc(2 * (size_t)c * sizeof *p);
        fq = ql_malloc((size_t)c * sizeof *fq);
        if (!p || !fq) { ql_free(p); ql_free(fq); return QL_ENOMEM; }
    }
    double *lp = p, *lq = p + c;
    ql_topk_counts k = {0};
    for (int64_t r = 0; r < n; r++) {
        const float *fr = ql_f32(ref) + r * c;
        for (int64_t j = 0; j < c; j++) fq[j] = (float)value_at(approx, r * c + j);
        log_softmax(fr, c, lp);
        log_softmax(fq, c, lq);
        double kl = 0;
        for (int64_t j = 0; j < c; j++) kl += exp(lp[j]) * (lp[j] - lq[j]);
        s->kl += kl;
        ql_topk_count(&k, fq, fr, 1, c, labels ? (const int32_t *)labels->data + r : NULL);
    }
    s->agree += k.agree;
    s->ties += k.ties;
    if (labels) {
        s->correct_ref += k.ref_top1;
        s->correct_approx += k.top1;
    }
    s->rows += n;
    if (p != dbuf) { ql_free(p); ql_free(fq); }
    return QL_OK;
}
