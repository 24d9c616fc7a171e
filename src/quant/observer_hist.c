/* The running histogram of PyTorch 1.13's HistogramObserver and its L2-norm
 * range search (_non_linear_param_search), written to give torch's numbers:
 * every step that torch computes in float32 is computed here in float, in
 * the same order; what torch accumulates in double (cumsum) is double here,
 * and torch.sum's float32 reduction order is reproduced (torch_sum_f32).
 * Checked bit-exact against torch 1.13 (scale, zero point, min/max and every
 * histogram count) on 150 random multi-batch sequences, both counting modes.
 *
 * Counting (torch.histc): bin = (int64)((x - L) / (R - L) * bins), x == R in
 * the last bin, values outside [L, R] dropped. That map is monotone in x, so
 * each bin is an interval of floats: we find the interval ends once per (L, R)
 * by bisection (thr[]), and count each element with one multiply and a
 * correction compare against thr — the same bins as torch's division. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "qlab/alloc.h"
#include "float_order.h"
#include "observer_impl.h"

#define UPSAMPLE 128          /* torch's upsample_rate */
#define PAR_MIN (1 << 16)     /* elements before counting goes parallel */

ql_status ql_hist_init(ql_hist *h, int bins, int compat113) {
    memset(h, 0, sizeof *h);
    h->bins = bins;
    h->compat113 = compat113;
    h->counts = ql_calloc((size_t)bins * sizeof(float));
    h->scratch = ql_calloc((size_t)bins * sizeof(float));
    h->thr = ql_calloc(((size_t)bins + 1) * sizeof(float));
    if (!h->counts || !h->scratch || !h->thr) {
        ql_hist_free(h);
        return ql_error(QL_ENOMEM, "observer: no memory for a %d-bin histogram", bins);
    }
    return QL_OK;
}

void ql_hist_free(ql_hist *h) {
    ql_free(h->counts);
    ql_free(h->scratch);
    ql_free(h->thr);
    h->counts = h->scratch = h->thr = NULL;
}

void ql_hist_reset(ql_hist *h) {
    h->init = 0;
    h->lo = INFINITY;
    h->hi = -INFINITY;
    if (h->counts) memset(h->counts, 0, (size_t)h->bins * sizeof(float));
}

ql_status ql_hist_copy(ql_hist *dst, const ql_hist *src) {
    QL_TRY(ql_hist_init(dst, src->bins, src->compat113));
    float *c = dst->counts, *s = dst->scratch, *t = dst->thr;
    *dst = *src;
    dst->counts = c; dst->scratch = s; dst->thr = t;
    memcpy(c, src->counts, (size_t)src->bins * sizeof(float));
    memcpy(t, src->thr, ((size_t)src->bins + 1) * sizeof(float));
    return QL_OK;
}

/* torch.histc's bin of x for edges [L, L + D], bins nb; nb means "past the end". */
static inline int64_t histc_pos(float x, float L, float D, float nbf, int nb) {
    float q = (x - L) / D * nbf;
    if (!(q < nbf)) return nb;
    return (int64_t)q;
}

/* thr[k] = smallest float in [L, R] that histc puts in a bin >= k (k = 1..nb-1). */
static void build_thresholds(ql_hist *h, float L, float R) {
    int nb = h->bins;
    float D = R - L, nbf = (float)nb;
    uint32_t lo = ql_f2key(L), hi = ql_f2key(R);
    h->thr[0] = L;
    for (int k = 1; k < nb; k++) {
        uint32_t a = lo, b = hi;           /* pos(a) < k <= pos(b) */
        while (b - a > 1) {
            uint32_t m = a + (b - a) / 2;
            if (histc_pos(ql_key2f(m), L, D, nbf, nb) >= k) b = m; else a = m;
        }
        h->thr[k] = ql_key2f(b);
        lo = a;                            /* thresholds increase with k */
    }
    h->thr[nb] = INFINITY;
    h->thr_lo = L; h->thr_hi = R; h->thr_valid = 1;
}

/* out[bins] := torch.histc(x, bins, min=L, max=R) (L < R, floats). */
static ql_status histc(ql_hist *h, const float *x, int64_t n, float L, float R, float *out) {
    int nb = h->bins;
    if (!h->thr_valid || h->thr_lo != L || h->thr_hi != R) build_thresholds(h, L, R);
    const float *thr = h->thr;
    float inv = (float)nb / (R - L);
    int nt = n > PAR_MIN ? omp_get_max_threads() : 1;
    uint32_t *loc = ql_calloc((size_t)nt * nb * sizeof(uint32_t));
    if (!loc) return ql_error(QL_ENOMEM, "observer: no memory for histogram counts");
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        uint32_t *c = loc + (size_t)omp_get_thread_num() * nb;
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            if (!(v >= L && v <= R)) continue;
            int k = (int)((v - L) * inv);
            k = k > nb - 1 ? nb - 1 : k;
            k = k < 0 ? 0 : k;
            /* the multiply is off by at most one bin (4 roundings: |error| <
             * bins * 2.4e-7 < 1): fix it branch-free, both compares independent;
             * thr[0] = L and thr[nb] = inf keep k in range */
            int up = v >= thr[k + 1], down = v < thr[k];
            c[k + up - down]++;
        }
    }
    for (int j = 0; j < nb; j++) {
        uint64_t s = 0;
        for (int t = 0; t < nt; t++) s += loc[(size_t)t * nb + j];
        out[j] = (float)s;
    }
    ql_free(loc);
    return QL_OK;
}

/* The counting edges torch uses for a histogram of [lo, hi] (xmin/xmax: the batch). */
static void histc_edges(const ql_hist *h, float lo, float hi, float xmin, float xmax, float *L, float *R) {
    double l = lo, r = hi;
    if (h->compat113) { l = trunc(l); r = trunc(r); }   /* torch 1.13: min=int(min_val) */
    if (l == r) { l = xmin; r = xmax; }
    if (l == r) { l -= 1; r += 1; }
    *L = (float)l; *R = (float)r;
    if (!(*L < *R)) *R = nextafterf(*L, INFINITY);    /* huge values: keep L < R */
}

void ql_hist_add_interval(double *out, int nb, double lo, double hi, double a, double b, double c) {
    if (c == 0 || !(hi > lo)) { if (c != 0) out[nb / 2] += c; return; }
    double w = (hi - lo) / nb;
    if (b <= a) {                              /* point mass */
        int k = (int)floor((a - lo) / w);
        out[k < 0 ? 0 : k >= nb ? nb - 1 : k] += c;
        return;
    }
    double dens = c / (b - a);
    int k0 = (int)floor((a - lo) / w), k1 = (int)floor((b - lo) / w);
    if (k0 < 0) k0 = 0;
    if (k1 > nb - 1) k1 = nb - 1;
    if (k0 > nb - 1) k0 = nb - 1;
    if (k1 < 0) k1 = 0;
    if (k0 == k1) { out[k0] += c; return; }
    for (int k = k0; k <= k1; k++) {
        double e0 = k == k0 ? a : lo + k * w, e1 = k == k1 ? b : lo + (k + 1) * w;
        if (e1 > e0) out[k] += dens * (e1 - e0);
    }
}

/* torch's _combine_histograms: out[k] = fresh[k] + (the old histogram, upsampled
 * by 128 and placed at start, summed over windows of ds) / 128. The zero-padded
 * upsampled array is never built: only its non-zero run is summed, in order. */
static void combine(int nb, const float *old, float *fresh, int64_t ds, int64_t start) {
    int64_t total = (int64_t)nb * ds, end = start + (int64_t)nb * UPSAMPLE;
    if (end > total) end = total;
    double acc = 0, prev = 0;
    int64_t p = start;
    for (int k = 0; k < nb; k++) {
        int64_t last = (int64_t)k * ds + ds - 1;
        for (; p <= last && p < end; p++) acc += (double)old[(p - start) / UPSAMPLE];
        double shifted = k == 0 ? 0.0 : (double)(float)prev;   /* torch keeps it in float32 */
        fresh[k] = fresh[k] + (float)((acc - shifted) / UPSAMPLE);
        prev = acc;
    }
}

ql_status ql_hist_observe(ql_hist *h, const float *x, int64_t n, float xmin, float xmax) {
    int nb = h->bins;
    float L, R;
    if (!h->init || h->lo == h->hi) {       /* first batch, or only one value so far */
        histc_edges(h, xmin, xmax, xmin, xmax, &L, &R);
        QL_TRY(histc(h, x, n, L, R, h->counts));
        h->lo = xmin; h->hi = xmax; h->init = 1;
        return QL_OK;
    }
    float cmin = fminf(xmin, h->lo), cmax = fmaxf(xmax, h->hi);
    /* _adjust_min_max, in float32 as torch */
    float hbw = (h->hi - h->lo) / (float)(nb * UPSAMPLE);
    float span = (float)nb * hbw;
    float ratio = ceilf((cmax - cmin) / span);
    if (hbw > 0 && isfinite(ratio) && ratio >= 1 && ratio <= (float)(1 << 24)) {
        int64_t ds = (int64_t)ratio;
        float e = (float)ds * span - (cmax - cmin);
        cmax = cmax + e;
        int64_t start = (int64_t)nearbyintf((h->lo - cmin) / hbw);
        histc_edges(h, cmin, cmax, xmin, xmax, &L, &R);
        QL_TRY(histc(h, x, n, L, R, h->scratch));
        if (cmin == h->lo && cmax == h->hi) {
            for (int k = 0; k < nb; k++) h->scratch[k] = h->scratch[k] + h->counts[k];
        } else {
            combine(nb, h->counts, h->scratch, ds, start);
        }
    } else {
        /* a range ratio torch could not handle (it would allocate bins * ratio
         * floats or divide by zero): rebin the old counts proportionally */
        double *tmp = ql_calloc((size_t)nb * sizeof(double));
        if (!tmp) return ql_error(QL_ENOMEM, "observer: no memory to rebin a histogram");
        double ow = ((double)h->hi - h->lo) / nb;
        for (int k = 0; k < nb; k++)
            ql_hist_add_interval(tmp, nb, cmin, cmax, h->lo + k * ow, h->lo + (k + 1) * ow, h->counts[k]);
        histc_edges(h, cmin, cmax, xmin, xmax, &L, &R);
        ql_status s = histc(h, x, n, L, R, h->scratch);
        for (int k = 0; k < nb && s == QL_OK; k++) h->scratch[k] += (float)tmp[k];
        ql_free(tmp);
        QL_TRY(s);
    }
    float *t = h->counts; h->counts = h->scratch; h->scratch = t;
    h->lo = cmin; h->hi = cmax;
    return QL_OK;
}

/* c10's div_floor_floating: floor(a / b) as torch.div(..., rounding_mode='floor'). */
static inline float div_floor(float a, float b) {
    float mod = fmodf(a, b);
    float div = (a - mod) / b;
    if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0f;
    if (div == 0) return copysignf(0.0f, a / b);
    float fl = floorf(div);
    if (div - fl > 0.5f) fl += 1.0f;
    return fl;
}

/* torch.sum of a contiguous float32 vector on CPU, in torch's order (cascade_sum
 * of aten/src/ATen/native/cpu/SumKernel.cpp with 8-float AVX2 vectors): rows of
 * 4 vectors summed in chunks of 16 rows, chunk sums carried up 4 levels, then
 * the 4 vectors, then the 8 lanes, then the tail. Bit-exact against torch's
 * AVX2 kernel (the capability Debian's torch 1.13 uses here); torch on an
 * AVX-512 machine sums in 16-float vectors and may differ in the last bit. */
static float torch_sum_f32(const float *x, int64_t n) {
    enum { W = 8, ILP = 4, LEVELS = 4 };
    int64_t nvec = n / W, rows = nvec / ILP;
    int ceil_log2 = 1;
    if (rows > 2) { ceil_log2 = 0; while (((int64_t)1 << ceil_log2) < rows) ceil_log2++; }
    int power = ceil_log2 / LEVELS > 4 ? ceil_log2 / LEVELS : 4;
    int64_t step = (int64_t)1 << power;
    float acc[LEVELS][ILP][W];
    memset(acc, 0, sizeof acc);
    int64_t i = 0;
    while (i + step <= rows) {
        for (int64_t j = 0; j < step; j++, i++)
            for (int k = 0; k < ILP; k++)
                for (int l = 0; l < W; l++) acc[0][k][l] += x[(i * ILP + k) * W + l];
        for (int j = 1; j < LEVELS; j++) {
            for (int k = 0; k < ILP; k++)
                for (int l = 0; l < W; l++) { acc[j][k][l] += acc[j - 1][k][l]; acc[j - 1][k][l] = 0; }
            if ((i & ((step - 1) << (j * power))) != 0) break;
        }
    }
    for (; i < rows; i++)
        for (int k = 0; k < ILP; k++)
            for (int l = 0; l < W; l++) acc[0][k][l] += x[(i * ILP + k) * W + l];
    for (int j = 1; j < LEVELS; j++)
        for (int k = 0; k < ILP; k++)
            for (int l = 0; l < W; l++) acc[0][k][l] += acc[j][k][l];
    for (int64_t r = rows * ILP; r < nvec; r++)
        for (int l = 0; l < W; l++) acc[0][0][l] += x[r * W + l];
    float v[W], total = 0;
    for (int l = 0; l < W; l++) v[l] = ((acc[0][0][l] + acc[0][1][l]) + acc[0][2][l]) + acc[0][3][l];
    for (int64_t r = nvec * W; r < n; r++) total += x[r];
    for (int l = 0; l < W; l++) total += v[l];
    return total;
}

static inline float cube_diff3(float e, float b) { return (e * e * e - b * b * b) / 3.0f; }

/* torch's _compute_quantization_error(start, end): the L2 error of quantizing
 * the histogram to dst_nbins levels over bins [start, end]; float32 as torch,
 * summed in torch's order. norm: (bins,) scratch. */
static double l2_error(const ql_hist *h, int start, int end, int dst_nbins, float *norms) {
    int nb = h->bins;
    double bw = ((double)h->hi - (double)h->lo) / nb;
    double dbw = bw * (double)(end - start + 1) / dst_nbins;
    if (dbw == 0.0) return 0.0;
    float fbw = (float)bw, fdbw = (float)dbw, half = (float)(dbw / 2), mhalf = (float)(-dbw / 2);
    if (fdbw == 0.0f) return 0.0;
    float dmax = (float)(dst_nbins - 1);
    float mid = cube_diff3(half, mhalf);
    for (int i = 0; i < nb; i++) {
        float sb = (float)(i - start) * fbw;
        float se = sb + fbw;
        float db = fminf(fmaxf(div_floor(sb, fdbw), 0.0f), dmax);
        float de = fminf(fmaxf(div_floor(se, fdbw), 0.0f), dmax);
        float dens = h->counts[i] / fbw;
        float dbc = (db + 0.5f) * fdbw;
        float norm = dens * cube_diff3(half, sb - dbc);
        norm = norm + (de - db - 1.0f) * (dens * mid);
        float dec = de * fdbw + half;
        norm = norm + dens * cube_diff3(se - dec, mhalf);
        norms[i] = norm;
    }
    return torch_sum_f32(norms, nb);
}

ql_status ql_hist_l2_search(const ql_hist *h, int dst_nbins, float *lo, float *hi) {
    int nb = h->bins;
    if (!h->init || h->lo == h->hi) { *lo = h->lo; *hi = h->hi; return QL_OK; }
    float *csum = ql_malloc((size_t)nb * 2 * sizeof(float)), *norms = csum + nb;
    if (!csum) return ql_error(QL_ENOMEM, "observer: no memory for the range search");
    double acc = 0;   /* torch.cumsum of float32 accumulates in double */
    for (int i = 0; i < nb; i++) { acc += h->counts[i]; csum[i] = (float)acc; }
    double total = torch_sum_f32(h->counts, nb);    /* torch.sum(histogram).item() */
    double alpha = 0.0, beta = 1.0, norm_min = INFINITY;
    int start = 0, end = nb - 1;
    while (alpha < beta) {
        double na = alpha + 1e-5, nbt = beta - 1e-5;
        float ta = (float)(na * total), tb = (float)(nbt * total);
        int l = start, r = end;
        while (l < end && csum[l] < ta) l++;
        while (r > start && csum[r] > tb) r--;
        int ns = start, ne = end;
        if (l - start > end - r) { ns = l; alpha = na; }
        else { ne = r; beta = nbt; }
        if (ns == start && ne == end) continue;
        double norm = l2_error(h, ns, ne, dst_nbins, norms);
        if (norm > norm_min) break;
        norm_min = norm;
        start = ns; end = ne;
    }
    ql_free(csum);
    float bwf = (h->hi - h->lo) / (float)nb;
    *lo = h->lo + bwf * (float)start;
    *hi = h->lo + bwf * (float)(end + 1);
    return QL_OK;
}
