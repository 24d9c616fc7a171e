/* Progress reporting from long engine calls. The callback returns non-zero
 * to ask for cancellation; the engine then stops and returns QL_ECANCEL. */
#ifndef QLAB_PROGRESS_H
#define QLAB_PROGRESS_H
#include <stdint.h>

typedef int (*ql_progress_fn)(void *ud, int64_t done, int64_t total, const char *label);

typedef struct {
    ql_progress_fn fn;
    void *ud;
} ql_progress;

/* Calls p->fn if set; returns non-zero when cancelled. */
int ql_progress_report(const ql_progress *p, int64_t done, int64_t total, const char *label);

/* A ready-made callback drawing a bar on stderr when stderr is a terminal
 * (ud = NULL); silent otherwise. */
int ql_progress_stderr(void *ud, int64_t done, int64_t total, const char *label);

#endif
