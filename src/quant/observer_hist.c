/* The running histogram of PyTorch 1.13's HistogramObserver and its L2-norm
 * range search (_non_linear_param_search), written to give torch's numbers:
 * every step that torch computes in float32 is computed here in float, in
 * the same order; what torch accumulates in double (cumsum) is double here,
 * and torch.sum's float32 reduction order is reproduced (torch_sum_f32).
 * Checked bit-exact against torch 1.13 (scale, zero point, min/max and every
 * histogram count) on 150 random multi-batch sequences, both counting modes.
 *
 * Counting (torch.histc): bin = (int64)((x - L) / (R - L) * bins), x == R in
 * the last bin, values outside [L, R] dropped; computed with that division,
 * vectorized, so the bins are torch's by construction. */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/cpu.h"
#include "observer_impl.h"

#define UPSAMPLE 128          /* torch's upsample_rate */
#define PAR_MIN (1 << 16)     /* elements before counting goes parallel */

ql_status ql_hist_init(ql_hist *h, int bins, int compat113) {
    memset(h, 0, sizeof *h);
    h->bins = bins;
    h->compat113 = compat113;
    h->counts = ql_calloc((size_t)bins * sizeof(float));
    h->scratch = ql_calloc((size_t)bins * sizeof(float));
    if (!h->counts || !h->scratch) {
        ql_hist_free(h);
        return ql_error(QL_ENOMEM, "observer: no memory for a %d-bin histogram", bins);
    }
    return QL_OK;
}

void ql_hist_free(ql_hist *h) {
    ql_free(h->counts);
    ql_free(h->scratch);
    h->counts = h->scratch = NULL;
}

void ql_hist_reset(ql_hist *h) {
    h->init = 0;
    h->lo = INFINITY;
    h->hi = -INFINITY;
    if (h->counts) memset(h->counts, 0, (size_t)h->bins * sizeof(float));
}

ql_status ql_hist_copy(ql_hist *dst, const ql_hist *src) {
    QL_TRY(ql_hist_init(dst, src->bins, src->compat113));
    float *c = dst->counts, *s = dst->scratch;
    *dst = *src;
    dst->counts = c; dst->scratch = s;
    memcpy(c, src->counts, (size_t)src->bins * sizeof(float));
    return QL_OK;
}

/* Bins of x[n] for edges [L, R] (L < R) into idx[n], nb for "outside": torch's
 * formula, (int64)((x - L) / (R - L) * bins), x == R (and anything the
 * rounding lifts to bins) in the last bin; and, in the same pass, x's min, max
 * and count of non-finite values. Written to vectorize: a vector division is
 * the same IEEE operation as torch's scalar one, and min / max are exact in
 * any order, so the baseline and the AVX2 build give the same results. */
typedef struct { float mn, mx; int64_t bad; } scan_stats;

static inline __attribute__((always_inline)) void bin_body(const float *x, int n, float L, float R, int nb,
                                                           uint32_t *idx, scan_stats *st) {
    float D = R - L, nbf = (float)nb, top = (float)(nb - 1);
    float mn = st->mn, mx = st->mx;
    int bad = 0;       /* n <= a block: 32-bit lanes */
    #pragma omp simd reduction(min:mn) reduction(max:mx) reduction(+:bad)
    for (int i = 0; i < n; i++) {
        float v = x[i];
        float q = (v - L) / D * nbf;
        q = q < top ? q : top;
        q = q > 0.0f ? q : 0.0f;
        idx[i] = (uint32_t)(v >= L && v <= R ? (int)q : nb);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        bad += !(fabsf(v) <= FLT_MAX);
    }
    st->mn = mn; st->mx = mx; st->bad += bad;
}
static void bin_base(const float *x, int n, float L, float R, int nb, uint32_t *idx, scan_stats *st) {
    bin_body(x, n, L, R, nb, idx, st);
}
__attribute__((target("avx2"))) static void bin_avx2(const float *x, int n, float L, float R, int nb,
                                                      uint32_t *idx, scan_stats *st) {
    bin_body(x, n, L, R, nb, idx, st);
}

/* out[bins] := torch.histc(x, bins, min=L, max=R) (L < R, floats); st: x's
 * extrema and non-finite count (NULL: not wanted). */
static ql_status histc(ql_hist *h, const float *x, int64_t n, float L, float R, float *out, scan_stats *st) {
    enum { BLK = 512 };
    int nb = h->bins, stride = nb + 1;   /* slot nb: values outside [L, R] */
    /* four interleaved copies: runs of one bin (ReLU's zeros) would otherwise
     * chain every increment through one memory slot */
    int copies = nb <= 8192 ? 4 : 1;
    int nt = n > PAR_MIN ? omp_get_max_threads() : 1;
    void (*bin_block)(const float *, int, float, float, int, uint32_t *, scan_stats *) =
        ql_isa_active() >= QL_ISA_AVX2 ? bin_avx2 : bin_base;
    float mn = x[0], mx = x[0];
    int64_t bad = 0;
    uint32_t *loc = ql_calloc((size_t)nt * copies * stride * sizeof(uint32_t));
    if (!loc) return ql_error(QL_ENOMEM, "observer: no memory for histogram counts");
    #pragma omp parallel num_threads(nt) if (nt > 1) reduction(min:mn) reduction(max:mx) reduction(+:bad)
    {
        int t = omp_get_thread_num(), nth = omp_get_num_threads();
        scan_stats my = {x[0], x[0], 0};
        uint32_t *c = loc + (size_t)t * copies * stride;
        uint32_t idx[BLK];
        int64_t nblk = (n + BLK - 1) / BLK, b0 = nblk * t / nth, b1 = nblk * (t + 1) / nth;
        for (int64_t b = b0; b < b1; b++) {
            int64_t i0 = b * BLK;
            int m = (int)(n - i0 < BLK ? n - i0 : BLK), i = 0;
            bin_block(x + i0, m, L, R, nb, idx, &my);
            if (copies == 4)
                for (; i + 4 <= m; i += 4) {
                    c[idx[i]]++;
                    c[stride + idx[i + 1]]++;
                    c[2 * stride + idx[i + 2]]++;
                    c[3 * stride + idx[i + 3]]++;
                }
            for (; i < m; i++) c[idx[i]]++;
        }
        mn = my.mn < mn ? my.mn : mn;
        mx = my.mx > mx ? my.mx : mx;
        bad += my.bad;
    }
    if (st) { st->mn = mn; st->mx = mx; st->bad = bad; }
    for (int j = 0; j < nb; j++) {
        uint64_t s = 0;
        for (int t = 0; t < nt * copies; t++) s += loc[(size_t)t * stride + j];
        out[j] = (float)s;
    }
    ql_free(loc);
    return QL_OK;
}

/* The counting edges torch uses for a histogram of [lo, hi] (xmin/xmax: the
 * batch); returns 1 when they are the batch's own (a degenerate [lo, hi]). */
static int histc_edges(const ql_hist *h, float lo, float hi, float xmin, float xmax, float *L, float *R) {
    double l = lo, r = hi;
    int own = 0;
    if (h->compat113) { l = trunc(l); r = trunc(r); }   /* torch 1.13: min=int(min_val) */
    if (l == r) { l = xmin; r = xmax; own = 1; }
    if (l == r) { l -= 1; r += 1; }
    *L = (float)l; *R = (float)r;
    if (!(*L < *R)) *R = nextafterf(*L, INFINITY);    /* huge values: keep L < R */
    return own;
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

/* How a batch with extrema xmin, xmax enters a histogram that has data:
 * torch's _adjust_min_max (in float32, as torch) and the counting edges. */
typedef struct {
    float cmin, cmax, L, R;
    int64_t ds, start;
    int torch_rule;     /* 0: a range ratio torch could not handle */
    int own_edges;      /* the edges are the batch's extrema */
} hist_step;

static void plan_step(const ql_hist *h, float xmin, float xmax, hist_step *s) {
    int nb = h->bins;
    s->cmin = fminf(xmin, h->lo);
    s->cmax = fmaxf(xmax, h->hi);
    float hbw = (h->hi - h->lo) / (float)(nb * UPSAMPLE);
    float span = (float)nb * hbw;
    float ratio = ceilf((s->cmax - s->cmin) / span);
    s->torch_rule = hbw > 0 && isfinite(ratio) && ratio >= 1 && ratio <= (float)(1 << 24);
    s->ds = s->start = 0;
    if (s->torch_rule) {
        s->ds = (int64_t)ratio;
        float e = (float)s->ds * span - (s->cmax - s->cmin);
        s->cmax = s->cmax + e;
        s->start = (int64_t)nearbyintf((h->lo - s->cmin) / hbw);
    }
    s->own_edges = histc_edges(h, s->cmin, s->cmax, xmin, xmax, &s->L, &s->R);
}

/* Merges the batch's counts (h->scratch, counted over s->L..s->R) into the
 * histogram, which then covers [s->cmin, s->cmax]. */
static ql_status merge_step(ql_hist *h, const hist_step *s) {
    int nb = h->bins;
    if (s->torch_rule) {
        if (s->cmin == h->lo && s->cmax == h->hi) {
            for (int k = 0; k < nb; k++) h->scratch[k] = h->scratch[k] + h->counts[k];
        } else {
            combine(nb, h->counts, h->scratch, s->ds, s->start);
        }
    } else {
        /* a range ratio torch could not handle (it would allocate bins * ratio
         * floats or divide by zero): rebin the old counts proportionally */
        double *tmp = ql_calloc((size_t)nb * sizeof(double));
        if (!tmp) return ql_error(QL_ENOMEM, "observer: no memory to rebin a histogram");
        double ow = ((double)h->hi - h->lo) / nb;
        for (int k = 0; k < nb; k++)
            ql_hist_add_interval(tmp, nb, s->cmin, s->cmax, h->lo + k * ow, h->lo + (k + 1) * ow, h->counts[k]);
        for (int k = 0; k < nb; k++) h->scratch[k] += (float)tmp[k];
        ql_free(tmp);
    }
    float *t = h->counts; h->counts = h->scratch; h->scratch = t;
    h->lo = s->cmin; h->hi = s->cmax;
    return QL_OK;
}

ql_status ql_hist_observe(ql_hist *h, const float *x, int64_t n, float xmin, float xmax) {
    if (!h->init || h->lo == h->hi) {       /* first batch, or only one value so far */
        float L, R;
        histc_edges(h, xmin, xmax, xmin, xmax, &L, &R);
        QL_TRY(histc(h, x, n, L, R, h->counts, NULL));
        h->lo = xmin; h->hi = xmax; h->init = 1;
        return QL_OK;
    }
    hist_step s;
    plan_step(h, xmin, xmax, &s);
    QL_TRY(histc(h, x, n, s.L, s.R, h->scratch, NULL));
    return merge_step(h, &s);
}

ql_status ql_hist_observe_scan(ql_hist *h, const float *x, int64_t n, float *xmin, float *xmax, int64_t *nbad,
                               int *done) {
    *done = -1;
    if (!h->init || h->lo == h->hi) return QL_OK;
    /* the step of a batch inside [lo, hi] does not depend on its extrema,
     * unless the edges would be the batch's own */
    hist_step s;
    plan_step(h, h->lo, h->hi, &s);
    if (s.own_edges) return QL_OK;
    scan_stats st;
    QL_TRY(histc(h, x, n, s.L, s.R, h->scratch, &st));
    *xmin = st.mn; *xmax = st.mx; *nbad = st.bad;
    *done = 0;
    if (st.bad || st.mn < h->lo || st.mx > h->hi) return QL_OK;
    QL_TRY(merge_step(h, &s));
    *done = 1;
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
