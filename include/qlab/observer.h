/* Observers: watch f32 tensors, keep statistics, choose a quantization range
 * and derive (scale, zero point) as PyTorch's observers do.
 * Per-tensor or per-channel (weights: channel axis 0 of OIHW / [out,in];
 * activations NHWC: the last axis). Any bit width 2..8 on u8 or s8 storage. */
#ifndef QLAB_OBSERVER_H
#define QLAB_OBSERVER_H
#include <stdint.h>
#include "tensor.h"

typedef enum {
    QL_OBS_MINMAX = 0,     /* running min / max */
    QL_OBS_MOVING_AVG,     /* moving-average min / max (averaging_constant) */
    QL_OBS_HISTOGRAM,      /* PyTorch HistogramObserver: L2-norm range search */
    QL_OBS_PERCENTILE,     /* clip at a percentile of |x| (or of both tails) */
    QL_OBS_ENTROPY,        /* KL divergence, as TensorRT calibrates */
    QL_OBS_MSE,            /* range minimising the mean squared quantization error */
    QL_OBS_COUNT
} ql_observer_kind;

typedef struct {
    ql_observer_kind kind;
    ql_dtype dtype;        /* QL_DTYPE_U8 or QL_DTYPE_S8 */
    int bits;              /* 2..8: quant range 2^bits codes */
    int symmetric;         /* symmetric (zero point fixed) or affine */
    int per_channel;       /* only minmax and moving-average (as PyTorch), plus mse */
    int ch_axis;           /* channel axis for per_channel (0 for weights; -1 = last) */
    int reduce_range;      /* one bit less of range (PyTorch's reduce_range) */
    int bins;              /* histogram bins (2048) */
    float averaging_constant;  /* moving average (0.01) */
    float percentile;      /* percentile observer (99.99) */
    int torch113_histc;    /* reproduce torch 1.13's histc(min=int(min), max=int(max)) range
                            * truncation in the histogram (0: count over the true [min, max],
                            * as torch >= 2.0) */
} ql_observer_opts;

void ql_observer_opts_default(ql_observer_opts *o, ql_observer_kind kind);
const char *ql_observer_kind_name(ql_observer_kind k);   /* "minmax", "moving_average", "histogram", "percentile", "entropy", "mse" */
int  ql_observer_kind_from_name(const char *s, ql_observer_kind *out);

typedef struct ql_observer ql_observer;
ql_observer *ql_observer_new(const ql_observer_opts *o);   /* NULL + error on bad options */
ql_observer *ql_observer_clone(const ql_observer *o);
void         ql_observer_free(ql_observer *o);
void         ql_observer_reset(ql_observer *o);
const ql_observer_opts *ql_observer_options(const ql_observer *o);

/* Accumulates statistics from x (f32). Ignored while frozen. */
ql_status ql_observer_observe(ql_observer *o, const ql_tensor *x);
void      ql_observer_freeze(ql_observer *o, int frozen);
int       ql_observer_frozen(const ql_observer *o);
int64_t   ql_observer_count(const ql_observer *o);       /* observe() calls accepted */

/* Number of channels (1 per tensor). */
int       ql_observer_channels(const ql_observer *o);
/* The raw observed min/max of a channel. */
ql_status ql_observer_minmax(const ql_observer *o, int ch, float *lo, float *hi);
/* The chosen range (after search / clipping) of a channel. */
ql_status ql_observer_range(const ql_observer *o, int ch, float *lo, float *hi);
/* Calibrate once, compare every range method: a copy of o (per tensor) that
 * chooses its range by `kind` from the statistics o collected. Every
 * per-tensor observer keeps the same histogram and min / max, so no data is
 * observed again (minmax / moving_average take o's running min / max, which a
 * moving-average o has averaged). pct > 0 sets the percentile's. */
ql_observer *ql_observer_as(const ql_observer *o, ql_observer_kind kind, float pct);
/* What the range [lo, hi] would cost on o's histogram with o's code range:
 * mean squared error per value and the values' mean square (SQNR =
 * 10 log10(power / mse)). */
ql_status ql_observer_range_error(const ql_observer *o, float lo, float hi, double *mse, double *power);
/* scale[ch], zero_point[ch] for every channel; arrays of ql_observer_channels(). */
ql_status ql_observer_qparams(const ql_observer *o, float *scale, int32_t *zero_point);
/* Quantization code range from the options: e.g. u8 8-bit [0,255], reduce_range [0,127], s8 4-bit [-8,7]. */
void      ql_observer_qrange(const ql_observer_opts *o, int32_t *qmin, int32_t *qmax);
/* Histogram of a per-tensor observer (histogram-based kinds, and the others
 * keep one too for display): counts[bins] over [lo, hi]. NULL counts if none.
 * counts stays valid until the next observe, reset or free of the observer. */
ql_status ql_observer_histogram(const ql_observer *o, const float **counts, int *bins, float *lo, float *hi);

/* qparams from a range, as PyTorch's _calculate_qparams. */
void ql_qparams_from_range(float lo, float hi, int32_t qmin, int32_t qmax, int symmetric, ql_dtype dtype,
                           float *scale, int32_t *zero_point);

#endif
