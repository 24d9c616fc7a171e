/* The one owner of threads: our OpenMP kernels and OpenBLAS (built on the
 * same OpenMP pool with libopenblas-openmp) always use the same count. */
#ifndef QLAB_THREADS_H
#define QLAB_THREADS_H

void ql_threads_set(int n);   /* n <= 0: number of cores */
int  ql_threads_get(void);
int  ql_cores(void);

#endif
