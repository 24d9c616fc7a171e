/* Measuring primitives: a monotonic clock and forward-pass timing. */
#ifndef QLAB_BENCH_H
#define QLAB_BENCH_H
#include "graph.h"

double ql_clock(void);   /* monotonic seconds */

typedef struct {
    double median, p95, mean, min;   /* milliseconds per batch */
    double images_per_s;             /* batch / median */
    int runs, batch;
} ql_timing;

/* Times `runs` forward passes of g on x (after `warmup` untimed ones). */
ql_status ql_time_forward(ql_graph *g, const ql_tensor *x, int runs, int warmup,
                          const ql_progress *p, ql_timing *out);

#endif
