/* Observers: the object, option checks, observe() dispatch, the chosen range
 * per kind and PyTorch's _calculate_qparams.
 *
 * - Every observer keeps a whole-tensor histogram of what it accepted, with
 *   PyTorch's HistogramObserver rule (observer_hist.c): `bins` bins over the
 *   range seen so far, rebinned with torch's upsample/downsample combine when
 *   a batch widens the range (its top end may then sit a little above the
 *   data, as torch's max_val does). Per-channel and moving-average observers
 *   keep it too, whole tensor and cumulative, for display.
 * - minmax / moving_average keep torch's running (or averaged: the first
 *   batch sets, then m += c * (new - m)) min/max, per tensor or per channel
 *   (every axis but ch_axis is reduced; ch_axis < 0 counts from the end).
 * - histogram: torch's L2 search on the histogram, dst_nbins = 2^bits (256
 *   at 8 bits whatever reduce_range is, as torch 1.13). percentile, entropy,
 *   mse: observer_calib.c, clamped to the observed [min, max].
 * - mse per channel searches each channel of each batch on its values
 *   (observer_calib.c) and its range is the mean of the per-batch ranges
 *   (weights are observed once: exactly the search's result).
 * - ql_observer_minmax() is the true running min/max for every kind but
 *   moving_average; ql_observer_histogram() gives torch's histogram min_val /
 *   max_val.
 * - The chosen range is computed when asked (range / qparams) and cached
 *   until the next accepted observe: the L2 / KL / MSE searches never run
 *   per batch. That cache makes those const calls unsafe to run on one
 *   observer from two threads at once.
 * - Bad input (NaN/Inf, empty, not f32, a range wider than float32) is an
 *   error that leaves the statistics untouched; frozen observers accept and
 *   ignore input; reset clears statistics and count but not the frozen flag. */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/cpu.h"
#include "observer_impl.h"

#define PAR_MIN (1 << 16)

struct ql_observer {
    ql_observer_opts opts;
    int frozen;
    int64_t count;         /* observe() calls accepted */
    int nch;               /* channels with statistics (per tensor: 1); 0 before data */
    float *mn, *mx;        /* (nch,) observed min / max (moving average: averaged) */
    ql_hist hist;          /* whole tensor */
    double *msum_lo, *msum_hi;   /* per-channel mse: sums of the per-batch ranges */
    /* the chosen range, computed when asked and kept until new data arrives */
    int cache_valid;
    float *rlo, *rhi;      /* (nch,) */
};

static const char *kind_names[QL_OBS_COUNT] = {
    "minmax", "moving_average", "histogram", "percentile", "entropy", "mse"
};

const char *ql_observer_kind_name(ql_observer_kind k) {
    return (unsigned)k < QL_OBS_COUNT ? kind_names[k] : "unknown";
}

int ql_observer_kind_from_name(const char *s, ql_observer_kind *out) {
    if (!s) return -1;
    for (int k = 0; k < QL_OBS_COUNT; k++)
        if (!strcmp(s, kind_names[k])) { *out = (ql_observer_kind)k; return 0; }
    if (!strcmp(s, "moving_avg") || !strcmp(s, "movingavg")) { *out = QL_OBS_MOVING_AVG; return 0; }
    if (!strcmp(s, "kl") || !strcmp(s, "kl_divergence")) { *out = QL_OBS_ENTROPY; return 0; }
    return -1;
}

void ql_observer_opts_default(ql_observer_opts *o, ql_observer_kind kind) {
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->dtype = QL_DTYPE_U8;
    o->bits = 8;
    o->bins = 2048;
    o->averaging_constant = 0.01f;
    o->percentile = 99.99f;
}

void ql_observer_qrange(const ql_observer_opts *o, int32_t *qmin, int32_t *qmax) {
    int b = o->bits - (o->reduce_range ? 1 : 0);
    if (o->dtype == QL_DTYPE_S8) { *qmin = -(1 << (b - 1)); *qmax = (1 << (b - 1)) - 1; }
    else { *qmin = 0; *qmax = (1 << b) - 1; }
}

/* PyTorch's _calculate_qparams in float32 (same operations, same order). */
void ql_qparams_from_range(float lo, float hi, int32_t qmin, int32_t qmax, int symmetric, ql_dtype dtype,
                           float *scale, int32_t *zero_point) {
    const float eps = FLT_EPSILON;   /* torch.finfo(torch.float32).eps */
    float mn = lo < 0.0f ? lo : 0.0f, mx = hi > 0.0f ? hi : 0.0f;
    float s;
    int32_t zp = 0;
    if (symmetric) {
        mx = -mn > mx ? -mn : mx;
        s = mx / (float)((double)(qmax - qmin) / 2);
        if (!(s > eps)) s = eps;
        if (dtype == QL_DTYPE_U8)   /* 128 for the full u8 range, else the rounded-down midpoint */
            zp = (qmin == 0 && qmax == 255) ? 128 : (int32_t)floor(((double)qmin + qmax) / 2);
    } else {
        s = (mx - mn) / (float)(qmax - qmin);
        if (!(s > eps)) s = eps;
        float r = nearbyintf(mn / s);   /* torch.round: half to even */
        if (r < -1e9f) r = -1e9f;
        int64_t z = (int64_t)qmin - (int64_t)r;
        zp = (int32_t)(z < qmin ? qmin : z > qmax ? qmax : z);
    }
    *scale = s;
    *zero_point = zp;
}

static ql_status check_opts(const ql_observer_opts *o) {
    if ((unsigned)o->kind >= QL_OBS_COUNT) return ql_error(QL_EINVAL, "observer: unknown kind %d", (int)o->kind);
    const char *k = kind_names[o->kind];
    if (o->dtype != QL_DTYPE_U8 && o->dtype != QL_DTYPE_S8)
        return ql_error(QL_EINVAL, "observer %s: dtype must be u8 or s8, not %s", k, ql_dtype_name(o->dtype));
    if (o->bits < 2 || o->bits > 8)
        return ql_error(QL_EINVAL, "observer %s: bits must be in 2..8, not %d", k, o->bits);
    if (o->reduce_range && o->bits < 3)
        return ql_error(QL_EINVAL, "observer %s: reduce_range needs bits >= 3 (got %d)", k, o->bits);
    if (o->reduce_range && o->symmetric && o->dtype == QL_DTYPE_U8)
        return ql_error(QL_EUNSUPPORTED, "observer %s: cannot reduce range for symmetric u8 quantization "
                        "(as PyTorch)", k);
    if (o->bins < 16 || o->bins > (1 << 20))
        return ql_error(QL_EINVAL, "observer %s: bins must be in 16..%d, not %d", k, 1 << 20, o->bins);
    if (o->kind == QL_OBS_ENTROPY && o->bins < (1 << o->bits))
        return ql_error(QL_EINVAL, "observer entropy: bins (%d) must be at least 2^bits (%d)", o->bins, 1 << o->bits);
    if (o->per_channel && o->kind != QL_OBS_MINMAX && o->kind != QL_OBS_MOVING_AVG && o->kind != QL_OBS_MSE)
        return ql_error(QL_EUNSUPPORTED, "observer %s: per-channel is not supported (as PyTorch: only minmax, "
                        "moving_average, and mse here)", k);
    if (o->kind == QL_OBS_MOVING_AVG && !(o->averaging_constant > 0.0f && o->averaging_constant <= 1.0f))
        return ql_error(QL_EINVAL, "observer moving_average: averaging_constant must be in (0, 1], not %g",
                        (double)o->averaging_constant);
    if (o->kind == QL_OBS_PERCENTILE && !(o->percentile > 50.0f && o->percentile <= 100.0f))
        return ql_error(QL_EINVAL, "observer percentile: percentile must be in (50, 100], not %g",
                        (double)o->percentile);
    if (o->per_channel && o->ch_axis < -QL_MAX_DIMS)
        return ql_error(QL_EINVAL, "observer %s: bad ch_axis %d", k, o->ch_axis);
    return QL_OK;
}

static void free_channels(ql_observer *o) {
    ql_free(o->mn); ql_free(o->mx); ql_free(o->rlo); ql_free(o->rhi);
    ql_free(o->msum_lo); ql_free(o->msum_hi);
    o->mn = o->mx = o->rlo = o->rhi = NULL;
    o->msum_lo = o->msum_hi = NULL;
}

static ql_status alloc_channels(ql_observer *o, int nch) {
    free_channels(o);
    o->mn = ql_malloc((size_t)nch * sizeof(float));
    o->mx = ql_malloc((size_t)nch * sizeof(float));
    o->rlo = ql_malloc((size_t)nch * sizeof(float));
    o->rhi = ql_malloc((size_t)nch * sizeof(float));
    o->msum_lo = ql_calloc((size_t)nch * sizeof(double));
    o->msum_hi = ql_calloc((size_t)nch * sizeof(double));
    if (!o->mn || !o->mx || !o->rlo || !o->rhi || !o->msum_lo || !o->msum_hi) {
        free_channels(o);
        return ql_error(QL_ENOMEM, "observer: no memory for %d channels", nch);
    }
    return QL_OK;
}

ql_observer *ql_observer_new(const ql_observer_opts *opts) {
    if (!opts) { ql_error(QL_EINVAL, "observer: NULL options"); return NULL; }
    if (check_opts(opts) != QL_OK) return NULL;
    ql_observer *o = ql_calloc(sizeof *o);
    if (!o) return NULL;
    o->opts = *opts;
    if (ql_hist_init(&o->hist, opts->bins, opts->torch113_histc) != QL_OK) { ql_free(o); return NULL; }
    ql_hist_reset(&o->hist);
    if (!opts->per_channel && alloc_channels(o, 1) != QL_OK) { ql_observer_free(o); return NULL; }
    return o;
}

static ql_status copy_arr(void **dst, const void *src, size_t bytes) {
    *dst = NULL;
    if (!src) return QL_OK;
    *dst = ql_malloc(bytes);
    if (!*dst) return ql_error(QL_ENOMEM, "observer: no memory to clone");
    memcpy(*dst, src, bytes);
    return QL_OK;
}

ql_observer *ql_observer_clone(const ql_observer *src) {
    if (!src) { ql_error(QL_EINVAL, "observer: clone of NULL"); return NULL; }
    ql_observer *o = ql_calloc(sizeof *o);
    if (!o) return NULL;
    *o = *src;
    o->mn = o->mx = o->rlo = o->rhi = NULL;
    o->msum_lo = o->msum_hi = NULL;
    memset(&o->hist, 0, sizeof o->hist);
    int n = src->opts.per_channel ? src->nch : 1;
    size_t f = (size_t)n * sizeof(float), d = (size_t)n * sizeof(double);
    if (ql_hist_copy(&o->hist, &src->hist) != QL_OK ||
        copy_arr((void **)&o->mn, src->mn, f) || copy_arr((void **)&o->mx, src->mx, f) ||
        copy_arr((void **)&o->rlo, src->rlo, f) || copy_arr((void **)&o->rhi, src->rhi, f) ||
        copy_arr((void **)&o->msum_lo, src->msum_lo, d) || copy_arr((void **)&o->msum_hi, src->msum_hi, d)) {
        ql_observer_free(o);
        return NULL;
    }
    return o;
}

void ql_observer_free(ql_observer *o) {
    if (!o) return;
    free_channels(o);
    ql_hist_free(&o->hist);
    ql_free(o);
}

void ql_observer_reset(ql_observer *o) {
    if (!o) return;
    o->count = 0;
    o->cache_valid = 0;
    ql_hist_reset(&o->hist);
    if (o->opts.per_channel) { free_channels(o); o->nch = 0; }
    else { o->nch = 0; o->msum_lo[0] = o->msum_hi[0] = 0; }
}

const ql_observer_opts *ql_observer_options(const ql_observer *o) { return &o->opts; }
void ql_observer_freeze(ql_observer *o, int frozen) { o->frozen = frozen != 0; }
int ql_observer_frozen(const ql_observer *o) { return o->frozen; }
int64_t ql_observer_count(const ql_observer *o) { return o->count; }
int ql_observer_channels(const ql_observer *o) { return o->opts.per_channel ? o->nch : 1; }

/* min / max and the count of non-finite values of x[n], written to vectorize
 * (min and max are exact in any order); compiled for the baseline and AVX2. */
static inline __attribute__((always_inline)) void minmax_body(const float *x, int64_t n, float *pmn,
                                                              float *pmx, int64_t *pbad) {
    float mn = x[0], mx = x[0];
    int64_t bad = 0;
    #pragma omp simd reduction(min:mn) reduction(max:mx) reduction(+:bad)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        bad += !(fabsf(v) <= FLT_MAX);
    }
    *pmn = mn; *pmx = mx; *pbad = bad;
}
static void minmax_base(const float *x, int64_t n, float *mn, float *mx, int64_t *bad) {
    minmax_body(x, n, mn, mx, bad);
}
__attribute__((target("avx2"))) static void minmax_avx2(const float *x, int64_t n, float *mn, float *mx,
                                                         int64_t *bad) {
    minmax_body(x, n, mn, mx, bad);
}

/* min / max of x[n]; returns the number of non-finite values (0: all finite). */
static int64_t minmax_pass(const float *x, int64_t n, float *pmn, float *pmx) {
    void (*f)(const float *, int64_t, float *, float *, int64_t *) =
        ql_isa_active() >= QL_ISA_AVX2 ? minmax_avx2 : minmax_base;
    float mn = x[0], mx = x[0];
    int64_t bad = 0;
    #pragma omp parallel reduction(min:mn) reduction(max:mx) reduction(+:bad) if (n > PAR_MIN)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t i0 = n * t / nt, i1 = n * (t + 1) / nt;
        if (i1 > i0) {
            float a, b;
            int64_t c;
            f(x + i0, i1 - i0, &a, &b, &c);
            mn = a < mn ? a : mn;
            mx = b > mx ? b : mx;
            bad += c;
        }
    }
    *pmn = mn; *pmx = mx;
    return bad;
}

static ql_status bad_values(const ql_observer *o, const float *x, int64_t n, int64_t nbad) {
    int64_t first = 0;
    while (first < n && fabsf(x[first]) <= FLT_MAX) first++;
    return ql_error(QL_EINVAL, "observer %s: input has %lld NaN/Inf value(s) (first at flat index %lld = %g); "
                    "statistics left unchanged", kind_names[o->opts.kind], (long long)nbad, (long long)first,
                    first < n ? (double)x[first] : 0.0);
}

/* Per-channel min / max over every axis but ax: shape split as (outer, C, inner). */
static void channel_minmax(const float *x, int64_t outer, int C, int64_t inner, float *mn, float *mx) {
    for (int c = 0; c < C; c++) { mn[c] = INFINITY; mx[c] = -INFINITY; }
    for (int64_t a = 0; a < outer; a++)
        for (int c = 0; c < C; c++) {
            const float *p = x + (a * C + c) * inner;
            float lo = mn[c], hi = mx[c];
            for (int64_t i = 0; i < inner; i++) {
                lo = p[i] < lo ? p[i] : lo;
                hi = p[i] > hi ? p[i] : hi;
            }
            mn[c] = lo; mx[c] = hi;
        }
}

/* Per-channel mse: this batch's best range of every channel into lo[C], hi[C]. */
static ql_status channel_mse(const ql_observer *o, const float *x, int64_t outer, int C, int64_t inner,
                             float *lo, float *hi) {
    int64_t m = outer * inner;
    int nt = C > 1 && m * C > 4096 ? omp_get_max_threads() : 1;
    if (nt > C) nt = C;
    float *buf = ql_malloc((size_t)m * nt * sizeof(float));
    if (!buf) return ql_error(QL_ENOMEM, "observer mse: no memory for a channel");
    int32_t qmin, qmax;
    ql_observer_qrange(&o->opts, &qmin, &qmax);
    int failed = 0;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1) reduction(|:failed)
    for (int c = 0; c < C; c++) {
        float *b = buf + (size_t)m * omp_get_thread_num();
        for (int64_t a = 0, j = 0; a < outer; a++)
            for (int64_t i = 0; i < inner; i++) b[j++] = x[(a * C + c) * inner + i];
        failed |= ql_calib_mse_values(b, m, o->opts.bins, qmin, qmax, o->opts.symmetric, o->opts.dtype,
                                      &lo[c], &hi[c]) != QL_OK;
    }
    ql_free(buf);
    return failed ? ql_error(QL_ENOMEM, "observer mse: no memory for a channel's histogram") : QL_OK;
}

static ql_status observe_per_channel(ql_observer *o, const ql_tensor *x, float xmin, float xmax) {
    int ax = o->opts.ch_axis < 0 ? x->ndim + o->opts.ch_axis : o->opts.ch_axis;
    if (ax < 0 || ax >= x->ndim)
        return ql_error(QL_ESHAPE, "observer %s: ch_axis %d out of range for a %d-d tensor",
                        kind_names[o->opts.kind], o->opts.ch_axis, x->ndim);
    int C = (int)x->shape[ax];
    if (o->nch && C != o->nch)
        return ql_error(QL_ESHAPE, "observer %s: tensor has %d channels on axis %d, observer has %d",
                        kind_names[o->opts.kind], C, ax, o->nch);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ax; d++) outer *= x->shape[d];
    for (int d = ax + 1; d < x->ndim; d++) inner *= x->shape[d];
    /* everything that can fail first, into temporaries: state stays clean on error */
    float *tmp = ql_malloc((size_t)C * 4 * sizeof(float));
    if (!tmp) return ql_error(QL_ENOMEM, "observer: no memory for %d channels", C);
    float *cmn = tmp, *cmx = tmp + C, *blo = tmp + 2 * C, *bhi = tmp + 3 * C;
    channel_minmax(ql_f32(x), outer, C, inner, cmn, cmx);
    ql_status s = QL_OK;
    if (o->opts.kind == QL_OBS_MSE) s = channel_mse(o, ql_f32(x), outer, C, inner, blo, bhi);
    if (s == QL_OK) s = ql_hist_observe(&o->hist, ql_f32(x), x->numel, xmin, xmax);
    if (s == QL_OK && !o->nch) s = alloc_channels(o, C);
    if (s != QL_OK) { ql_free(tmp); return s; }
    float c = o->opts.averaging_constant;
    for (int k = 0; k < C; k++) {
        if (!o->nch) { o->mn[k] = cmn[k]; o->mx[k] = cmx[k]; }
        else if (o->opts.kind == QL_OBS_MOVING_AVG) {
            o->mn[k] = o->mn[k] + c * (cmn[k] - o->mn[k]);
            o->mx[k] = o->mx[k] + c * (cmx[k] - o->mx[k]);
        } else {
            o->mn[k] = fminf(cmn[k], o->mn[k]);
            o->mx[k] = fmaxf(cmx[k], o->mx[k]);
        }
        if (o->opts.kind == QL_OBS_MSE) { o->msum_lo[k] += blo[k]; o->msum_hi[k] += bhi[k]; }
    }
    o->nch = C;
    ql_free(tmp);
    return QL_OK;
}

ql_status ql_observer_observe(ql_observer *o, const ql_tensor *x) {
    if (!o || !x) return ql_error(QL_EINVAL, "observer: NULL argument");
    const char *k = kind_names[o->opts.kind];
    if (x->dtype != QL_DTYPE_F32)
        return ql_error(QL_EINVAL, "observer %s: input must be f32, not %s", k, ql_dtype_name(x->dtype));
    if (x->numel <= 0 || !x->data) return ql_error(QL_EINVAL, "observer %s: empty input tensor", k);
    if (o->frozen) return QL_OK;
    const float *p = ql_f32(x);
    float xmin, xmax;
    int64_t nbad = 0;
    int done = -1;      /* the histogram's one-pass route for a batch inside its range */
    if (!o->opts.per_channel) QL_TRY(ql_hist_observe_scan(&o->hist, p, x->numel, &xmin, &xmax, &nbad, &done));
    if (done < 0) nbad = minmax_pass(p, x->numel, &xmin, &xmax);
    if (nbad) return bad_values(o, p, x->numel, nbad);
    float cmin = o->hist.init ? fminf(xmin, o->hist.lo) : xmin, cmax = o->hist.init ? fmaxf(xmax, o->hist.hi) : xmax;
    if (!isfinite(cmax - cmin))
        return ql_error(QL_EINVAL, "observer %s: value range [%g, %g] is too wide for float32", k,
                        (double)cmin, (double)cmax);
    if (o->opts.per_channel) {
        QL_TRY(observe_per_channel(o, x, xmin, xmax));
    } else {
        if (done != 1) QL_TRY(ql_hist_observe(&o->hist, p, x->numel, xmin, xmax));
        if (!o->nch) { o->mn[0] = xmin; o->mx[0] = xmax; }
        else if (o->opts.kind == QL_OBS_MOVING_AVG) {
            float c = o->opts.averaging_constant;
            o->mn[0] = o->mn[0] + c * (xmin - o->mn[0]);
            o->mx[0] = o->mx[0] + c * (xmax - o->mx[0]);
        } else {
            o->mn[0] = fminf(xmin, o->mn[0]);
            o->mx[0] = fmaxf(xmax, o->mx[0]);
        }
        o->nch = 1;
    }
    o->count++;
    o->cache_valid = 0;
    return QL_OK;
}

static ql_status need_data(const ql_observer *o) {
    if (!o->count || !o->nch)
        return ql_error(QL_ESTATE, "observer %s: no data observed yet", kind_names[o->opts.kind]);
    return QL_OK;
}

/* Fills rlo/rhi (the chosen range) if new data arrived since the last call.
 * Logically const: only the cache changes. */
static ql_status compute_ranges(const ql_observer *co) {
    ql_observer *o = (ql_observer *)co;
    QL_TRY(need_data(o));
    if (o->cache_valid) return QL_OK;
    const float *cnt = o->hist.counts;
    int nb = o->hist.bins, bits = o->opts.bits, sym = o->opts.symmetric;
    float hlo = o->hist.lo, hhi = o->hist.hi, lo = o->mn[0], hi = o->mx[0];
    int32_t qmin, qmax;
    ql_observer_qrange(&o->opts, &qmin, &qmax);
    switch (o->opts.kind) {
    case QL_OBS_MINMAX:
    case QL_OBS_MOVING_AVG:
        for (int c = 0; c < o->nch; c++) { o->rlo[c] = o->mn[c]; o->rhi[c] = o->mx[c]; }
        break;
    case QL_OBS_HISTOGRAM:
        QL_TRY(ql_hist_l2_search(&o->hist, 1 << bits, &o->rlo[0], &o->rhi[0]));
        break;
    case QL_OBS_PERCENTILE:
        ql_calib_percentile(cnt, nb, hlo, hhi, o->opts.percentile, sym, &o->rlo[0], &o->rhi[0]);
        break;
    case QL_OBS_ENTROPY:   // the KL search merges into the codes really used: one bit fewer with reduce_range
        QL_TRY(ql_calib_entropy(cnt, nb, hlo, hhi, bits - (o->opts.reduce_range ? 1 : 0), sym, &o->rlo[0], &o->rhi[0]));
        break;
    case QL_OBS_MSE:
        if (o->opts.per_channel) {
            for (int c = 0; c < o->nch; c++) {
                o->rlo[c] = (float)(o->msum_lo[c] / (double)o->count);
                o->rhi[c] = (float)(o->msum_hi[c] / (double)o->count);
            }
        } else {
            QL_TRY(ql_calib_mse_hist(cnt, nb, hlo, hhi, qmin, qmax, sym, o->opts.dtype, &o->rlo[0], &o->rhi[0]));
        }
        break;
    default:
        break;
    }
    if (o->opts.kind >= QL_OBS_PERCENTILE && !o->opts.per_channel) {
        /* the histogram's range may be wider than the data (torch's combine widens hi) */
        if (sym) {
            float a = fmaxf(-lo, hi), t = fminf(o->rhi[0], a);
            if (lo != hi) { o->rlo[0] = -t; o->rhi[0] = t; }
        } else {
            if (o->rlo[0] < lo) o->rlo[0] = lo;
            if (o->rhi[0] > hi) o->rhi[0] = hi;
            if (o->rlo[0] > o->rhi[0]) o->rlo[0] = o->rhi[0];
        }
    }
    o->cache_valid = 1;
    return QL_OK;
}

ql_status ql_observer_minmax(const ql_observer *o, int ch, float *lo, float *hi) {
    QL_TRY(need_data(o));
    if (ch < 0 || ch >= ql_observer_channels(o))
        return ql_error(QL_EINVAL, "observer: channel %d out of range (%d channels)", ch, ql_observer_channels(o));
    *lo = o->mn[ch]; *hi = o->mx[ch];
    return QL_OK;
}

ql_status ql_observer_range(const ql_observer *o, int ch, float *lo, float *hi) {
    QL_TRY(compute_ranges(o));
    if (ch < 0 || ch >= ql_observer_channels(o))
        return ql_error(QL_EINVAL, "observer: channel %d out of range (%d channels)", ch, ql_observer_channels(o));
    *lo = o->rlo[ch]; *hi = o->rhi[ch];
    return QL_OK;
}

ql_status ql_observer_qparams(const ql_observer *o, float *scale, int32_t *zero_point) {
    QL_TRY(compute_ranges(o));
    int32_t qmin, qmax;
    ql_observer_qrange(&o->opts, &qmin, &qmax);
    for (int c = 0; c < ql_observer_channels(o); c++)
        ql_qparams_from_range(o->rlo[c], o->rhi[c], qmin, qmax, o->opts.symmetric, o->opts.dtype,
                              &scale[c], &zero_point[c]);
    return QL_OK;
}

ql_observer *ql_observer_as(const ql_observer *o, ql_observer_kind kind, float pct) {
    if (!o || (unsigned)kind >= QL_OBS_COUNT) { ql_error(QL_EINVAL, "observer: bad kind"); return NULL; }
    if (o->opts.per_channel) {
        ql_error(QL_EUNSUPPORTED, "observer %s: a per-channel observer keeps no shared histogram to re-derive "
                 "ranges from", kind_names[o->opts.kind]);
        return NULL;
    }
    if (need_data(o) != QL_OK) return NULL;
    ql_observer_opts opts = o->opts;
    opts.kind = kind;
    if (pct > 0) opts.percentile = pct;
    if (check_opts(&opts) != QL_OK) return NULL;
    ql_observer *c = ql_observer_clone(o);
    if (!c) return NULL;
    c->opts = opts;
    c->cache_valid = 0;
    return c;
}

ql_status ql_observer_range_error(const ql_observer *o, float lo, float hi, double *mse, double *power) {
    QL_TRY(need_data(o));
    if (o->opts.per_channel || !o->hist.init)
        return ql_error(QL_EUNSUPPORTED, "observer %s: no per-tensor histogram to measure on", kind_names[o->opts.kind]);
    float s;
    int32_t zp, qmin, qmax;
    ql_observer_qrange(&o->opts, &qmin, &qmax);
    ql_qparams_from_range(lo, hi, qmin, qmax, o->opts.symmetric, o->opts.dtype, &s, &zp);
    return ql_calib_hist_error(o->hist.counts, o->hist.bins, o->hist.lo, o->hist.hi, s, zp, qmin, qmax, mse, power);
}

ql_status ql_observer_histogram(const ql_observer *o, const float **counts, int *bins, float *lo, float *hi) {
    if (!o->hist.init) {
        *counts = NULL; *bins = 0; *lo = 0; *hi = 0;
        return QL_OK;
    }
    *counts = o->hist.counts; *bins = o->hist.bins;
    *lo = o->hist.lo; *hi = o->hist.hi;
    return QL_OK;
}
