/* Numeric comparison of a quantized model's values with the FP32 ones:
 * running sums for SQNR / MSE / max error over any number of batches, and
 * for logits the KL divergence of the softmax outputs and top-1 agreement. */
#ifndef QLAB_COMPARE_H
#define QLAB_COMPARE_H
#include "tensor.h"

typedef struct {
    double sum_ref2;   /* sum x^2 over the reference values */
    double sum_err2;   /* sum (x - xq)^2 */
    double max_abs;    /* max |x - xq| */
    int64_t n;         /* values compared */
} ql_compare_sums;

void ql_compare_init(ql_compare_sums *s);
/* ref: f32; approx: f32, f16, bf16, or u8 read as scale * (q - zero_point)
 * with the tensor's own qparams. Same element count (layouts are NHWC for
 * both). Adds the batch to s. */
ql_status ql_compare_accumulate(ql_compare_sums *s, const ql_tensor *ref, const ql_tensor *approx);
/* 10 log10(sum_ref2 / sum_err2): +inf when the values are identical. */
double ql_compare_sqnr_db(const ql_compare_sums *s);
double ql_compare_mse(const ql_compare_sums *s);

typedef struct {
    double kl;                /* sum over rows of KL(softmax(ref) || softmax(approx)), nats */
    int64_t rows;
    int64_t agree;            /* rows whose top-1 class is the same */
    int64_t ties;             /* rows whose approx top logit is tied */
    int64_t correct_ref;      /* top-1 hits (labels given; ql_topk_row's rule: a tie is no free hit) */
    int64_t correct_approx;
} ql_logit_sums;

void ql_logit_sums_init(ql_logit_sums *s);
/* ref, approx: (N, C) logits (f32 or as above; rows are the last axis);
 * labels: (N) s32, or NULL. Adds the batch to s. */
ql_status ql_compare_logits(ql_logit_sums *s, const ql_tensor *ref, const ql_tensor *approx,
                            const ql_tensor *labels);

#endif
