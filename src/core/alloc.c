/* Aligned allocation with byte accounting. A 64-byte header in front of each
 * block records its size, so ql_free knows what to subtract. */
#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "qlab/alloc.h"
#include "qlab/error.h"

static _Atomic int64_t cur_bytes, peak_bytes;
static _Thread_local int64_t budget = -1;   /* bytes this thread may still allocate; -1: no cap */

int64_t ql_mem_set_budget(int64_t bytes) {
    int64_t old = budget;
    budget = bytes < 0 ? -1 : bytes;
    return old;
}

/* Keep freed blocks in the heap instead of handing them back to the kernel:
 * training frees and reallocates the same large buffers every step, and
 * fresh pages cost a page fault and a clear each time. */
__attribute__((constructor)) static void tune_malloc(void) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

static void account(int64_t d) {
    int64_t now = atomic_fetch_add(&cur_bytes, d) + d;
    int64_t p = atomic_load(&peak_bytes);
    while (now > p && !atomic_compare_exchange_weak(&peak_bytes, &p, now)) {}
}

void *ql_malloc(size_t n) {
    void *p = NULL;
    if (budget >= 0) {
        if ((int64_t)n > budget) {
            ql_error(QL_ENOMEM, "the file asks for more memory (%zu bytes at once) than it could hold", n);
            return NULL;
        }
        budget -= (int64_t)n;
    }
    if (n > ((size_t)1 << 46) || posix_memalign(&p, QL_ALIGN, n + QL_ALIGN) != 0) {
        ql_error(QL_ENOMEM, "out of memory allocating %zu bytes", n);
        return NULL;
    }
    *(size_t *)p = n;
    account((int64_t)n);
    return (char *)p + QL_ALIGN;
}

void *ql_calloc(size_t n) {
    void *p = ql_malloc(n);
    if (p) memset(p, 0, n);
    return p;
}

void ql_free(void *p) {
    if (!p) return;
    char *base = (char *)p - QL_ALIGN;
    account(-(int64_t)*(size_t *)base);
    free(base);
}

void *ql_realloc(void *p, size_t n) {
    if (!p) return ql_malloc(n);
    size_t old = *(size_t *)((char *)p - QL_ALIGN);
    void *q = ql_malloc(n);
    if (!q) return NULL;
    memcpy(q, p, old < n ? old : n);
    ql_free(p);
    return q;
}

char *ql_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = ql_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int64_t ql_mem_current(void) { return atomic_load(&cur_bytes); }
int64_t ql_mem_peak(void) { return atomic_load(&peak_bytes); }
void ql_mem_reset_peak(void) { atomic_store(&peak_bytes, atomic_load(&cur_bytes)); }

int64_t ql_mem_rss_peak(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (int64_t)ru.ru_maxrss * 1024;
}
