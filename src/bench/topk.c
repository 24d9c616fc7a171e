/* The one top-k rule (include/qlab/topk.h). */
#include <math.h>
#include "qlab/topk.h"

// a before b in PyTorch's descending order: NaN first, then larger values; equal -> lower index
static inline int before(float a, int64_t ia, float b, int64_t ib) {
    int na = isnan(a), nb = isnan(b);
    if (na || nb) return na && (!nb || ia < ib);
    return a > b || (a == b && ia < ib);
}

ql_topk ql_topk_row(const float *row, int64_t c, int64_t y) {
    ql_topk r = {0, c, 0};
    if (c < 1) return r;
    for (int64_t j = 1; j < c; j++)
        if (before(row[j], j, row[r.pred], r.pred)) r.pred = j;
    float top = row[r.pred];
    for (int64_t j = 0; j < c && !r.tied; j++)
        r.tied = j != r.pred && (row[j] == top || (isnan(top) && isnan(row[j])));
    if (y < 0 || y >= c || isnan(row[y])) return r;
    r.rank = 0;
    for (int64_t j = 0; j < c; j++) r.rank += before(row[j], j, row[y], y);
    return r;
}

void ql_topk_count(ql_topk_counts *k, const float *logits, const float *ref, int64_t n, int64_t c,
                   const int32_t *labels) {
    for (int64_t i = 0; i < n; i++) {
        int64_t y = labels ? labels[i] : -1;
        ql_topk t = ql_topk_row(logits + i * c, c, y);
        k->n++;
        k->top1 += t.rank < 1;
        k->top5 += t.rank < 5;
        k->ties += t.tied;
        if (!ref) continue;
        ql_topk r = ql_topk_row(ref + i * c, c, y);
        k->ref_rows++;
        k->agree += t.pred == r.pred;
        k->ref_top1 += r.rank < 1;
        k->ref_right_wrong += r.rank < 1 && t.rank >= 1;
        k->ref_wrong_right += r.rank >= 1 && t.rank < 1;
    }
}
