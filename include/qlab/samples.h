/* Raw latency samples (the benchmark suite keeps every run, computes its
 * own percentiles and interleaves models between calls). */
#ifndef QLAB_SAMPLES_H
#define QLAB_SAMPLES_H
#include "graph.h"

/* Runs `warmup` untimed then `runs` timed forward passes of g on x and
 * writes each pass's milliseconds to ms[runs]. Progress: done/total over
 * warmup + runs, label as given; a cancel returns QL_ECANCEL. */
ql_status ql_bench_samples(ql_graph *g, const ql_tensor *x, int runs, int warmup, const ql_progress *p,
                           const char *label, double *ms);

#endif
