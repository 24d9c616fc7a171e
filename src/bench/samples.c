/* Forward-pass latency samples, one per run, in run order. */
#include "qlab/bench.h"
#include "qlab/samples.h"

ql_status ql_bench_samples(ql_graph *g, const ql_tensor *x, int runs, int warmup, const ql_progress *p,
                           const char *label, double *ms) {
    if (runs < 1 || warmup < 0) return ql_error(QL_EINVAL, "bench: runs must be >= 1 and warmup >= 0");
    const ql_tensor *y;
    for (int i = 0; i < warmup + runs; i++) {
        double t0 = ql_clock();
        QL_TRY(ql_graph_forward(g, x, &y, 0));
        if (i >= warmup) ms[i - warmup] = (ql_clock() - t0) * 1e3;
        if (ql_progress_report(p, i + 1, warmup + runs, label)) return ql_error(QL_ECANCEL, "cancelled");
    }
    return QL_OK;
}
