/* Per-channel vs per-tensor weight quantization error, computed exactly over
 * every weight with the symmetric scale the observers give (absmax / qmax). */
#include <math.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/weight_stats.h"

// squared error of rounding x to the grid of step s, codes in [-qmax-1, qmax]
static double sq_err(const float *x, int64_t n, float s, int32_t qmax) {
    double e = 0;
    if (!(s > 0)) { for (int64_t i = 0; i < n; i++) e += (double)x[i] * x[i]; return e; }
    for (int64_t i = 0; i < n; i++) {
        float q = nearbyintf(x[i] / s);
        if (q > qmax) q = (float)qmax;
        if (q < -qmax - 1) q = (float)(-qmax - 1);
        double d = (double)x[i] - (double)q * s;
        e += d * d;
    }
    return e;
}

ql_status ql_weight_stats_compute(const ql_tensor *w, int bits, ql_weight_stats *out) {
    memset(out, 0, sizeof *out);
    if (!w || w->dtype != QL_DTYPE_F32 || w->ndim < 1 || w->numel < 1)
        return ql_error(QL_EINVAL, "weight_stats: need an f32 weight tensor (OC, ...)");
    if (bits < 2 || bits > 8) return ql_error(QL_EINVAL, "weight_stats: bits must be 2..8, got %d", bits);
    int oc = (int)w->shape[0];
    int64_t per = w->numel / oc;
    int32_t qmax = (1 << (bits - 1)) - 1;
    out->channels = oc;
    out->min = ql_malloc(sizeof(float) * (size_t)oc);
    out->max = ql_malloc(sizeof(float) * (size_t)oc);
    if (!out->min || !out->max) { ql_weight_stats_free(out); return QL_ENOMEM; }
    const float *x = ql_f32(w);
    float amax_t = 0;
    double power = 0;
    for (int c = 0; c < oc; c++) {
        float mn = INFINITY, mx = -INFINITY;
        for (int64_t i = 0; i < per; i++) {
            float v = x[c * per + i];
            if (!isfinite(v)) { ql_weight_stats_free(out); return ql_error(QL_EINVAL, "weight_stats: a weight is %g", (double)v); }
            mn = fminf(mn, v);
            mx = fmaxf(mx, v);
            power += (double)v * v;
        }
        out->min[c] = mn;
        out->max[c] = mx;
        amax_t = fmaxf(amax_t, fmaxf(-mn, mx));
    }
    double e_c = 0, e_t = sq_err(x, w->numel, amax_t / (float)qmax, qmax);
    for (int c = 0; c < oc; c++)
        e_c += sq_err(x + c * per, per, fmaxf(-out->min[c], out->max[c]) / (float)qmax, qmax);
    double n = (double)w->numel;
    out->mse_per_channel = e_c / n;
    out->mse_per_tensor = e_t / n;
    out->sqnr_per_channel_db = e_c > 0 ? 10.0 * log10(power / e_c) : INFINITY;
    out->sqnr_per_tensor_db = e_t > 0 ? 10.0 * log10(power / e_t) : INFINITY;
    return QL_OK;
}

void ql_weight_stats_free(ql_weight_stats *s) {
    ql_free(s->min);
    ql_free(s->max);
    s->min = s->max = NULL;
}
