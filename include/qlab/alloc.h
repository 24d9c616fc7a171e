/* Allocator with byte accounting: every tensor and workspace goes through it,
 * so qlab.memory() reports what the engine really holds (current and peak). */
#ifndef QLAB_ALLOC_H
#define QLAB_ALLOC_H
#include <stddef.h>
#include <stdint.h>

#define QL_ALIGN 64

void *ql_malloc(size_t n);          /* 64-byte aligned; NULL (and error set) on failure */
void *ql_calloc(size_t n);          /* zeroed */
void *ql_realloc(void *p, size_t n);
void  ql_free(void *p);             /* NULL allowed */
char *ql_strdup(const char *s);

int64_t ql_mem_current(void);
int64_t ql_mem_peak(void);
void    ql_mem_reset_peak(void);    /* peak := current */
int64_t ql_mem_rss_peak(void);      /* process peak RSS in bytes (getrusage) */

/* A cap on what the calling thread may allocate from now on, in bytes (-1:
 * none); returns the previous cap. Readers set one from the size of the
 * file, so a few bytes that claim a huge tensor are an error ("the file
 * asks for more memory than it could hold"), not a huge allocation. */
int64_t ql_mem_set_budget(int64_t bytes);

#endif
