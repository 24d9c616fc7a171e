/* Observer internals shared by observer.c, observer_hist.c and observer_calib.c.
 * Not a public header: the Lua layer and the rest of the engine use
 * include/qlab/observer.h only. */
#ifndef QLAB_OBSERVER_IMPL_H
#define QLAB_OBSERVER_IMPL_H
#include <stdint.h>
#include "qlab/observer.h"

/* A running histogram, PyTorch 1.13 HistogramObserver's state and update rule:
 * counts[bins] (float, as torch keeps it) attributed to [lo, hi]; a batch that
 * widens the range is merged with the upsample (128) / downsample scheme of
 * _combine_histograms. compat113 reproduces torch 1.13's histc(min=int(lo),
 * max=int(hi)) truncation of the counting range. */
typedef struct {
    int bins;
    int compat113;
    int init;              /* has data */
    float lo, hi;          /* torch's min_val / max_val (hi may carry the combine's extension) */
    float *counts;         /* (bins,) */
    float *scratch;        /* (bins,) the new batch's counts */
} ql_hist;

ql_status ql_hist_init(ql_hist *h, int bins, int compat113);
void      ql_hist_free(ql_hist *h);
void      ql_hist_reset(ql_hist *h);
ql_status ql_hist_copy(ql_hist *dst, const ql_hist *src);   /* dst initialised or zeroed */
/* Adds x[n] (finite, xmin/xmax its extrema) as torch's HistogramObserver.forward. */
ql_status ql_hist_observe(ql_hist *h, const float *x, int64_t n, float xmin, float xmax);
/* One pass over x[n] that finds its extrema and non-finite count and, when x
 * lies inside the histogram's range (most batches after the first few), adds
 * its counts as ql_hist_observe would: *done = 1. *done = 0: extrema found but
 * nothing changed (x widens the range or is not finite: the caller checks and
 * calls ql_hist_observe); *done = -1: nothing scanned (no range yet). */
ql_status ql_hist_observe_scan(ql_hist *h, const float *x, int64_t n, float *xmin, float *xmax, int64_t *nbad,
                               int *done);
/* torch's _non_linear_param_search: L2-optimal [lo, hi] over the histogram. */
ql_status ql_hist_l2_search(const ql_hist *h, int dst_nbins, float *lo, float *hi);

/* Spreads count c uniformly over [a, b] into out[nb] covering [lo, hi]
 * (a == b: a point mass). Used to fold and rebin histograms. */
void ql_hist_add_interval(double *out, int nb, double lo, double hi, double a, double b, double c);

/* Range choices on a histogram (observer_calib.c). counts over [lo, hi]. */
void ql_calib_percentile(const float *counts, int bins, float lo, float hi, double pct, int symmetric,
                         float *rlo, float *rhi);
ql_status ql_calib_entropy(const float *counts, int bins, float lo, float hi, int bits, int symmetric,
                           float *rlo, float *rhi);
/* MSE over weighted "bins": [a_i, b_i] with weight w_i, uniform inside (a == b: a point;
 * a == b as pointers and w NULL: raw values of weight 1).
 * Searches shrunk ranges of [lo, hi]; qmin/qmax/dtype as for the qparams. */
void ql_calib_mse(const float *a, const float *b, const float *w, int64_t n, float lo, float hi,
                  int32_t qmin, int32_t qmax, int symmetric, ql_dtype dtype, float *rlo, float *rhi);
/* Expected squared error of quantizing that data with (scale, zp) in [qmin, qmax]. */
double ql_calib_sq_error(const float *a, const float *b, const float *w, int64_t n,
                         float scale, int32_t zp, int32_t qmin, int32_t qmax);
/* Of a histogram (counts over [lo, hi]), quantized with (scale, zp) in
 * [qmin, qmax]: the mean squared error per value and the mean square of the
 * values (bins uniform inside). */
ql_status ql_calib_hist_error(const float *counts, int bins, float lo, float hi, float scale, int32_t zp,
                              int32_t qmin, int32_t qmax, double *mse, double *power);
/* MSE range of one histogram (counts over [lo, hi]). */
ql_status ql_calib_mse_hist(const float *counts, int bins, float lo, float hi, int32_t qmin, int32_t qmax,
                            int symmetric, ql_dtype dtype, float *rlo, float *rhi);
/* MSE range of raw values x[n] (per-channel weights): raw points when n <= bins,
 * else a bins-bin histogram of them. */
ql_status ql_calib_mse_values(const float *x, int64_t n, int bins, int32_t qmin, int32_t qmax,
                              int symmetric, ql_dtype dtype, float *rlo, float *rhi);

#endif
