/* Top-k accuracy as PyTorch's argmax / topk count it: classes ordered by
 * logit, a NaN above every number, equal logits by the lower class index.
 * So a tie is never a free hit, and a NaN true-class logit is never right.
 * Every accuracy qlab reports (evaluate, compare, sensitivity, training)
 * goes through ql_topk_row. */
#ifndef QLAB_TOPK_H
#define QLAB_TOPK_H
#include <stdint.h>

typedef struct {
    int64_t pred;   /* top-1 class (argmax, lowest index among equal maxima; the first NaN if any) */
    int64_t rank;   /* classes ordered before the label (0 = top-1 hit); c when the label's logit is NaN
                       or the label is outside 0..c-1 */
    int tied;       /* the top logit occurs more than once in the row */
} ql_topk;

// row (c) logits, label y (or -1 for none) -> prediction, rank of y, tie at the top
ql_topk ql_topk_row(const float *row, int64_t c, int64_t y);

/* Counts over many rows, optionally against a reference model's rows. */
typedef struct {
    int64_t n;               /* rows */
    int64_t top1, top5;      /* label ranked < 1, < 5 */
    int64_t ties;            /* rows whose top logit is tied */
    int64_t ref_rows;        /* rows that had a reference */
    int64_t agree;           /* top-1 equal to the reference's top-1 */
    int64_t ref_right_wrong; /* reference right, this model wrong ("flips" lost) */
    int64_t ref_wrong_right; /* reference wrong, this model right */
    int64_t ref_top1;        /* the reference's own top-1 hits */
} ql_topk_counts;

// logits (n, c), labels (n), ref (n, c) or NULL -> adds to k
void ql_topk_count(ql_topk_counts *k, const float *logits, const float *ref, int64_t n, int64_t c,
                   const int32_t *labels);

#endif
