/* Range choices made on a histogram: percentile, entropy (KL divergence, as
 * TensorRT calibrates) and MSE.
 *
 * percentile: affine -> [q(1 - p), q(p)] of x; symmetric -> +-q(p) of |x|;
 *   quantiles interpolate linearly inside a bin.
 * entropy: TensorRT's search on the |x| histogram (the signed histogram folded
 *   at 0, bins cut at 0 split in proportion). Levels: 2^(bits-1) when the
 *   range is symmetric or the data has both signs, 2^bits for affine
 *   one-signed data (ReLU outputs: every code on one side). Bin 0 takes bin
 *   1's count (exact zeros cost nothing). Candidate thresholds are the bin
 *   edges i*w, every i = levels..bins (the KL is not unimodal: a coarse
 *   stride lands in the wrong dip); for each, the reference P is bins [0, i)
 *   with the outliers added to the last one, Q is the same bins without the
 *   outliers merged into `levels` groups of i/levels bins (group of bin k:
 *   floor(k*levels/i)) and spread back over the non-empty bins; both
 *   smoothed (eps 1e-4 on empty bins) and KL(P||Q) minimised, ties keeping
 *   the larger t. As NVIDIA's pytorch-quantization (calib/histogram.py).
 *   Affine two-signed: [max(min, -t), min(max, t)].
 * mse: the expected squared error of quantize-dequantize, integrated
 *   exactly over each bin (values uniform inside a bin), for shrunk ranges:
 *   symmetric +-t, t = amax*f; affine [f*min, f*max], then each end alone
 *   (top, then bottom). Each 1-d search: f = k/25, then 20 steps between the
 *   best one's neighbours (resolution 0.2% of the range); ties keep the
 *   wider range. Per channel (weights): the channel's values themselves up
 *   to 16384 per channel, a histogram of them beyond. */
#include <math.h>
#include <string.h>
#include "qlab/alloc.h"
#include "observer_impl.h"

#define MSE_GRID 25       /* coarse grid of shrink factors k/25 */
#define MSE_FINE 20       /* then 20 steps between the best one's neighbours */
#define MSE_RAW_MAX 16384 /* per-channel mse: raw values up to this many per channel */

/* |x| histogram of counts[bins] over [lo, hi]: out[bins] over [0, amax]. */
static void fold_abs(const float *counts, int nb, double lo, double hi, double *out, double *amax) {
    double A = fmax(fabs(lo), fabs(hi)), w = (hi - lo) / nb;
    memset(out, 0, (size_t)nb * sizeof(double));
    for (int k = 0; k < nb; k++) {
        double c = counts[k];
        if (c == 0) continue;
        double a = lo + k * w, b = k == nb - 1 ? hi : lo + (k + 1) * w;
        if (a >= 0) ql_hist_add_interval(out, nb, 0, A, a, b, c);
        else if (b <= 0) ql_hist_add_interval(out, nb, 0, A, -b, -a, c);
        else {
            double fneg = -a / (b - a);
            ql_hist_add_interval(out, nb, 0, A, 0, -a, c * fneg);
            ql_hist_add_interval(out, nb, 0, A, 0, b, c * (1 - fneg));
        }
    }
    *amax = A;
}

/* The q-quantile (0..1) of a histogram h[nb] over [lo, hi]. */
static double quantile(const double *h, int nb, double lo, double hi, double q) {
    double total = 0, w = (hi - lo) / nb;
    for (int k = 0; k < nb; k++) total += h[k];
    if (total <= 0) return q < 0.5 ? lo : hi;
    double target = q * total, cum = 0;
    for (int k = 0; k < nb; k++) {
        if (h[k] > 0 && cum + h[k] >= target) {
            double f = (target - cum) / h[k];
            if (f < 0) f = 0;
            return lo + (k + f) * w;
        }
        cum += h[k];
    }
    for (int k = nb - 1; k >= 0; k--) if (h[k] > 0) return lo + (k + 1) * w;
    return hi;
}

void ql_calib_percentile(const float *counts, int bins, float lo, float hi, double pct, int symmetric,
                         float *rlo, float *rhi) {
    *rlo = lo; *rhi = hi;
    if (!(hi > lo)) return;
    double *h = ql_malloc((size_t)bins * sizeof(double)), q = pct / 100.0;
    if (!h) return;   /* no memory: keep the full range */
    if (symmetric) {
        double A;
        fold_abs(counts, bins, lo, hi, h, &A);
        float t = (float)quantile(h, bins, 0, A, q);
        *rlo = -t; *rhi = t;
    } else {
        for (int k = 0; k < bins; k++) h[k] = counts[k];
        *rhi = (float)quantile(h, bins, lo, hi, q);
        *rlo = (float)quantile(h, bins, lo, hi, 1.0 - q);
        if (*rlo > *rhi) *rlo = *rhi;
    }
    ql_free(h);
}

/* Adds eps to the empty entries of p[n] and takes it evenly from the others;
 * returns 0 if p is all zero or the smoothing would make entries negative. */
static int smooth(double *p, int n) {
    const double eps = 1e-4;
    int zeros = 0;
    for (int k = 0; k < n; k++) zeros += p[k] == 0;
    if (zeros == n) return 0;
    double take = eps * zeros / (n - zeros);
    for (int k = 0; k < n; k++) {
        if (p[k] == 0) p[k] = eps;
        else if ((p[k] -= take) <= 0) return 0;
    }
    return 1;
}

/* KL(P||Q) for the threshold at bin i of |x| histogram h[nb] with `levels` levels. */
static double kl_at(const double *h, int i, int levels, double outliers, double *p, double *q) {
    for (int k = 0; k < i; k++) p[k] = h[k];
    p[i - 1] += outliers;
    /* group g is bins [ceil(g*i/levels), ceil((g+1)*i/levels)): i/levels bins each,
     * the uniform quantizer of [0, t]. Groups of floor(i/levels) with the rest in
     * the last one model a quantizer with one huge top step instead: at
     * i = 2*levels-1 Q copies P bin for bin below t/2 and the KL is tiny, so
     * ReLU6 outputs got t = 6*511/2048 = 1.497. */
    for (int g = 0; g < levels; g++) {
        int a = (int)(((int64_t)g * i + levels - 1) / levels);
        int b = (int)(((int64_t)(g + 1) * i + levels - 1) / levels);
        double sum = 0;
        int nz = 0;
        for (int k = a; k < b; k++) { sum += h[k]; nz += h[k] != 0; }
        for (int k = a; k < b; k++) q[k] = (h[k] != 0 && nz) ? sum / nz : 0;
    }
    if (!smooth(p, i) || !smooth(q, i)) return INFINITY;
    double sp = 0, sq = 0, kl = 0;
    for (int k = 0; k < i; k++) { sp += p[k]; sq += q[k]; }
    for (int k = 0; k < i; k++) {
        double pk = p[k] / sp, qk = q[k] / sq;
        kl += pk * log(pk / qk);
    }
    return kl;
}

ql_status ql_calib_entropy(const float *counts, int bins, float lo, float hi, int bits, int symmetric,
                           float *rlo, float *rhi) {
    *rlo = lo; *rhi = hi;
    if (!(hi > lo)) return QL_OK;
    int one_sided = lo >= 0 || hi <= 0;
    int levels = (symmetric || !one_sided) ? 1 << (bits - 1) : 1 << bits;
    double *h = ql_malloc((size_t)bins * 3 * sizeof(double));
    if (!h) return ql_error(QL_ENOMEM, "observer entropy: no memory");
    double *p = h + bins, *q = h + 2 * bins, A;
    fold_abs(counts, bins, lo, hi, h, &A);
    /* 0 is a code of every quantizer here: exact zeros (ReLU's spike, often half
     * the tensor) cost nothing, yet merged into Q's first group they dominate the
     * KL and pull t down until that group is bin 0 alone. Bin 0 gets its
     * neighbour's count, as NVIDIA's pytorch-quantization does (bins[0] = bins[1]). */
    h[0] = h[1];
    int best = bins;
    if (levels < bins) {
        /* outliers beyond bin i: suffix sums */
        double *tail = ql_malloc(((size_t)bins + 1) * sizeof(double));
        if (!tail) { ql_free(h); return ql_error(QL_ENOMEM, "observer entropy: no memory"); }
        tail[bins] = 0;
        for (int k = bins - 1; k >= 0; k--) tail[k] = tail[k + 1] + h[k];
        /* every threshold (~30 ms at 2048 bins), widest first: ties keep the wider range */
        double best_kl = INFINITY;
        for (int i = bins; i >= levels; i--) {
            double kl = kl_at(h, i, levels, tail[i], p, q);
            if (kl < best_kl) { best_kl = kl; best = i; }
        }
        ql_free(tail);
    }
    ql_free(h);
    float t = (float)(A * best / bins);
    if (symmetric) { *rlo = -t; *rhi = t; }
    else {
        if (lo < -t) *rlo = -t;
        if (hi > t) *rhi = t;
    }
    return QL_OK;
}

/* integral over [ua, ub] of (u - k(u))^2, k(u) = clamp(round(u), qmin, qmax): code space */
static double seg_err(double ua, double ub, int32_t qmin, int32_t qmax) {
    double tot = 0, u = ua;
    while (u < ub) {
        double k = floor(u + 0.5);
        if (k < qmin) k = qmin;
        if (k > qmax) k = qmax;
        double e = k >= qmax ? ub : fmin(ub, k + 0.5);
        if (!(e > u)) e = ub;
        double d0 = u - k, d1 = e - k;
        tot += (d1 * d1 * d1 - d0 * d0 * d0) / 3;
        u = e;
    }
    return tot;
}

double ql_calib_sq_error(const float *a, const float *b, const float *w, int64_t n,
                         float scale, int32_t zp, int32_t qmin, int32_t qmax) {
    double s = scale, err = 0;
    if (a == b && !w) {                 /* raw values, weight 1: the fast path */
        double inv = 1.0 / s, lo = qmin, hi = qmax;
        const double magic = 6755399441055744.0;   /* 1.5 * 2^52: v + magic - magic rounds to even */
        for (int64_t i = 0; i < n; i++) {
            double u = a[i] * inv + zp;
            double c = u < lo ? lo : u > hi ? hi : u;   /* codes are clamped: round inside the range */
            double k = (c + magic) - magic;
            k = k < lo ? lo : k > hi ? hi : k;
            err += (u - k) * (u - k);
        }
        return err * s * s;
    }
    for (int64_t i = 0; i < n; i++) {
        double ua = a[i] / s + zp, ub = b[i] / s + zp, e;
        if (ub > ua) e = seg_err(ua, ub, qmin, qmax) / (ub - ua);
        else {
            double k = nearbyint(ua);
            k = k < qmin ? qmin : k > qmax ? qmax : k;
            e = (ua - k) * (ua - k);
        }
        err += (w ? w[i] : 1.0) * e;
    }
    return err * s * s;
}

typedef struct {
    const float *a, *b, *w;
    int64_t n;
    int32_t qmin, qmax;
    int symmetric;
    ql_dtype dtype;
} mse_data;

static double mse_eval(const mse_data *d, float lo, float hi) {
    float s;
    int32_t zp;
    ql_qparams_from_range(lo, hi, d->qmin, d->qmax, d->symmetric, d->dtype, &s, &zp);
    return ql_calib_sq_error(d->a, d->b, d->w, d->n, s, zp, d->qmin, d->qmax);
}

/* best f in {f0 + (f1 - f0) * k / steps}, of err(lo(f), hi(f)); ties keep the wider range */
typedef struct { const mse_data *d; float lo, hi; int which; } line;   /* which: 0 both, 1 lo, 2 hi */

static double line_err(const line *L, double f, float *lo, float *hi) {
    float l = L->lo, h = L->hi;
    if (L->which != 2) l = (float)(L->lo * f);
    if (L->which != 1) h = (float)(L->hi * f);
    *lo = l; *hi = h;
    return mse_eval(L->d, l, h);
}

static double line_search(const line *L, double f0, double f1, int steps, double *best_f) {
    double best = INFINITY;
    for (int k = steps; k >= 0; k--) {
        double f = f0 + (f1 - f0) * k / steps;
        if (f <= 0) continue;
        float l, h;
        double e = line_err(L, f, &l, &h);
        if (e < best) { best = e; *best_f = f; }
    }
    return best;
}

/* best factor in (0, 1]: a coarse grid, then a fine one around its best (f0: the fallback) */
static double coarse_fine(const line *L, double f0) {
    double f = f0;
    line_search(L, 0, 1, MSE_GRID, &f);
    double g = f;
    line_search(L, fmax(f - 1.0 / MSE_GRID, 1e-6), fmin(f + 1.0 / MSE_GRID, 1), MSE_FINE, &g);
    return g;
}

void ql_calib_mse(const float *a, const float *b, const float *w, int64_t n, float lo, float hi,
                  int32_t qmin, int32_t qmax, int symmetric, ql_dtype dtype, float *rlo, float *rhi) {
    mse_data d = { a, b, w, n, qmin, qmax, symmetric, dtype };
    float mn = lo < 0 ? lo : 0, mx = hi > 0 ? hi : 0;
    *rlo = lo; *rhi = hi;
    if (!(mx > mn)) return;
    if (symmetric) {
        float A = -mn > mx ? -mn : mx;
        line L = { &d, -A, A, 0 };
        double f = coarse_fine(&L, 1);
        *rlo = (float)(-A * f); *rhi = (float)(A * f);
        return;
    }
    line L = { &d, mn, mx, 0 };
    double f = coarse_fine(&L, 1);
    float cl = (float)(mn * f), ch = (float)(mx * f);
    if (mx > 0) {                               /* then the top end, bottom fixed */
        line H = { &d, cl, mx, 2 };
        ch = (float)(mx * coarse_fine(&H, ch / mx));
    }
    if (mn < 0) {                               /* and the bottom end, top fixed */
        line B = { &d, mn, ch, 1 };
        cl = (float)(mn * coarse_fine(&B, cl / mn));
    }
    *rlo = lo >= 0 ? lo : cl;                       /* one-signed data keeps its true end */
    *rhi = hi <= 0 ? hi : ch;
}

/* Non-empty bins of counts[nb] over [lo, hi] as intervals a/b with weights w; returns their number. */
static int64_t hist_intervals(const float *counts, int nb, float lo, float hi, float *a, float *b, float *w) {
    double bw = ((double)hi - lo) / nb;
    int64_t m = 0;
    for (int k = 0; k < nb; k++) {
        if (counts[k] == 0) continue;
        a[m] = (float)(lo + k * bw);
        b[m] = k == nb - 1 ? hi : (float)(lo + (k + 1) * bw);
        w[m] = counts[k];
        m++;
    }
    return m;
}

ql_status ql_calib_hist_error(const float *counts, int bins, float lo, float hi, float scale, int32_t zp,
                              int32_t qmin, int32_t qmax, double *mse, double *power) {
    *mse = *power = 0;
    float *buf = ql_malloc((size_t)bins * 3 * sizeof(float));
    if (!buf) return ql_error(QL_ENOMEM, "observer: no memory");
    int64_t m = hist_intervals(counts, bins, lo, hi, buf, buf + bins, buf + 2 * bins);
    double n = 0, p = 0;
    for (int64_t i = 0; i < m; i++) {   /* mean of x^2 over [a, b] is (a^2 + ab + b^2) / 3 */
        double a = buf[i], b = buf[bins + i], w = buf[2 * bins + i];
        n += w;
        p += w * (a * a + a * b + b * b) / 3;
    }
    if (n > 0) {
        *mse = ql_calib_sq_error(buf, buf + bins, buf + 2 * bins, m, scale, zp, qmin, qmax) / n;
        *power = p / n;
    }
    ql_free(buf);
    return QL_OK;
}

ql_status ql_calib_mse_hist(const float *counts, int bins, float lo, float hi, int32_t qmin, int32_t qmax,
                            int symmetric, ql_dtype dtype, float *rlo, float *rhi) {
    *rlo = lo; *rhi = hi;
    if (!(hi > lo)) return QL_OK;
    float *buf = ql_malloc((size_t)bins * 3 * sizeof(float));
    if (!buf) return ql_error(QL_ENOMEM, "observer mse: no memory");
    int64_t m = hist_intervals(counts, bins, lo, hi, buf, buf + bins, buf + 2 * bins);
    ql_calib_mse(buf, buf + bins, buf + 2 * bins, m, lo, hi, qmin, qmax, symmetric, dtype, rlo, rhi);
    ql_free(buf);
    return QL_OK;
}

ql_status ql_calib_mse_values(const float *x, int64_t n, int bins, int32_t qmin, int32_t qmax,
                              int symmetric, ql_dtype dtype, float *rlo, float *rhi) {
    float lo = x[0], hi = x[0];
    for (int64_t i = 1; i < n; i++) { lo = x[i] < lo ? x[i] : lo; hi = x[i] > hi ? x[i] : hi; }
    *rlo = lo; *rhi = hi;
    if (!(hi > lo)) return QL_OK;
    if (n <= MSE_RAW_MAX) {             /* the values themselves */
        ql_calib_mse(x, x, NULL, n, lo, hi, qmin, qmax, symmetric, dtype, rlo, rhi);
        return QL_OK;
    }
    float *cnt = ql_calloc((size_t)bins * sizeof(float));
    if (!cnt) return ql_error(QL_ENOMEM, "observer mse: no memory");
    float inv = (float)bins / (hi - lo);
    for (int64_t i = 0; i < n; i++) {
        int k = (int)((x[i] - lo) * inv);
        cnt[k < 0 ? 0 : k >= bins ? bins - 1 : k] += 1;
    }
    ql_status s = ql_calib_mse_hist(cnt, bins, lo, hi, qmin, qmax, symmetric, dtype, rlo, rhi);
    ql_free(cnt);
    return s;
}
