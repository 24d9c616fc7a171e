/* Error codes and the last error message (thread-local).
 * Engine functions return a ql_status and set a message with ql_error();
 * callers (Lua layer, main) read it with ql_last_error(). */
#ifndef QLAB_ERROR_H
#define QLAB_ERROR_H

typedef enum {
    QL_OK = 0,
    QL_EINVAL,   /* bad argument from the caller */
    QL_ENOMEM,   /* allocation failed */
    QL_EIO,      /* file could not be opened / read / written */
    QL_EFORMAT,  /* file content malformed, truncated or lying */
    QL_ESHAPE,   /* tensor shapes do not match */
    QL_ESTATE,   /* object in the wrong state for this call */
    QL_ECANCEL,  /* cancelled through a progress callback */
    QL_EUNSUPPORTED
} ql_status;

/* Sets the message (printf-style) and returns code, so: return ql_error(QL_EINVAL, "..."). */
ql_status ql_error(ql_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends context to the current message: "loading x.qlm: <old message>". */
ql_status ql_error_prefix(ql_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ql_last_error(void);
const char *ql_status_name(ql_status s);
void ql_error_clear(void);

/* Our own invariants only; never for user input. */
#define QL_ASSERT(c) do { if (!(c)) ql_assert_fail(#c, __FILE__, __LINE__); } while (0)
void ql_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Propagate a status. */
#define QL_TRY(expr) do { ql_status _s = (expr); if (_s != QL_OK) return _s; } while (0)

#endif
