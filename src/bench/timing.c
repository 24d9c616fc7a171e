/* Forward-pass timing: median and p95 over many runs, warm-up excluded. */
#include <stdlib.h>
#include <time.h>
#include "qlab/alloc.h"
#include "qlab/bench.h"

double ql_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

ql_status ql_time_forward(ql_graph *g, const ql_tensor *x, int runs, int warmup,
                          const ql_progress *p, ql_timing *out) {
    if (runs < 1 || warmup < 0) return ql_error(QL_EINVAL, "time_forward: runs must be >= 1 and warmup >= 0");
    if (x->ndim < 1 || x->shape[0] < 1) return ql_error(QL_ESHAPE, "time_forward: input needs a batch dimension");
    double *ms = ql_malloc(sizeof(double) * runs);
    if (!ms) return QL_ENOMEM;
    const ql_tensor *y;
    ql_status st = QL_OK;
    for (int i = 0; i < warmup + runs && st == QL_OK; i++) {
        double t0 = ql_clock();
        st = ql_graph_forward(g, x, &y, 0);
        if (i >= warmup) ms[i - warmup] = (ql_clock() - t0) * 1e3;
        if (ql_progress_report(p, i + 1, warmup + runs, "timing")) st = ql_error(QL_ECANCEL, "cancelled");
    }
    if (st == QL_OK) {
        double sum = 0;
        for (int i = 0; i < runs; i++) sum += ms[i];
        qsort(ms, runs, sizeof *ms, cmp_double);
        out->runs = runs;
        out->batch = (int)x->shape[0];
        out->mean = sum / runs;
        out->min = ms[0];
        out->median = runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]);
        int k = (int)(0.95 * (runs - 1) + 0.5);
        out->p95 = ms[k];
        out->images_per_s = out->median > 0 ? out->batch * 1e3 / out->median : 0;
    }
    ql_free(ms);
    return st;
}
