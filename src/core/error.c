/* Thread-local last error message. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qlab/error.h"

static _Thread_local char msg[1024];

ql_status ql_error(ql_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return code;
}

ql_status ql_error_prefix(ql_status code, const char *fmt, ...) {
    char old[sizeof msg], pre[512];
    memcpy(old, msg, sizeof msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    /* truncation is fine: the prefix matters most */
    size_t k = strlen(pre);
    if (k > sizeof msg - 3) k = sizeof msg - 3;
    memcpy(msg, pre, k);
    msg[k] = ':'; msg[k + 1] = ' ';
    size_t rest = sizeof msg - k - 3, n = strlen(old);
    if (n > rest) n = rest;
    memcpy(msg + k + 2, old, n);
    msg[k + 2 + n] = 0;
    return code;
}

const char *ql_last_error(void) { return msg[0] ? msg : "no error"; }
void ql_error_clear(void) { msg[0] = 0; }

const char *ql_status_name(ql_status s) {
    static const char *names[] = {"ok", "invalid argument", "out of memory", "i/o error",
                                  "bad format", "shape mismatch", "bad state", "cancelled",
                                  "unsupported"};
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "unknown";
}

void ql_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "qlab: internal error: %s (%s:%d)\n", expr, file, line);
    abort();
}
