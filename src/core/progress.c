/* Progress callbacks; the stderr bar draws only on a terminal. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "qlab/progress.h"

int ql_progress_report(const ql_progress *p, int64_t done, int64_t total, const char *label) {
    return (p && p->fn) ? p->fn(p->ud, done, total, label) : 0;
}

int ql_progress_stderr(void *ud, int64_t done, int64_t total, const char *label) {
    static double last;
    (void)ud;
    if (!isatty(2)) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = ts.tv_sec + ts.tv_nsec * 1e-9;
    if (done < total && now - last < 0.1) return 0;   /* redraw at most 10x per second */
    last = now;
    int width = 30, fill = total > 0 ? (int)(width * done / total) : 0;
    fprintf(stderr, "\r%-24.24s [", label ? label : "");
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %lld/%lld", (long long)done, (long long)total);
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
    return 0;
}
