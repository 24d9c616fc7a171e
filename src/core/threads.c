/* One thread count for OpenMP and OpenBLAS (libopenblas-openmp shares the
 * OpenMP pool, so the two never oversubscribe the cores). */
#include <omp.h>
#include <unistd.h>
#include "qlab/threads.h"

void openblas_set_num_threads(int n);   /* from cblas.h; declared here to keep it out of headers */

static int nthreads = 0;

int ql_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void ql_threads_set(int n) {
    if (n <= 0) n = ql_cores();
    nthreads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int ql_threads_get(void) {
    if (!nthreads) ql_threads_set(0);
    return nthreads;
}
