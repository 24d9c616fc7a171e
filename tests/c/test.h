/* A tiny test harness: TEST(name) { ... } registers itself at start-up;
 * CHECK* record failures and carry on; the runner prints "N passed, N failed". */
#ifndef QLAB_TEST_H
#define QLAB_TEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*ql_test_fn)(void);
void ql_test_register(const char *name, const char *file, ql_test_fn fn);
extern int ql_test_failures;   /* failures in the current test */

#define TEST(name)                                                            \
    static void test_##name(void);                                            \
    __attribute__((constructor)) static void reg_##name(void) {               \
        ql_test_register(#name, __FILE__, test_##name);                       \
    }                                                                         \
    static void test_##name(void)

#define CHECK(c) do { if (!(c)) { ql_test_failures++;                         \
    fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); } } while (0)

#define CHECK_MSG(c, ...) do { if (!(c)) { ql_test_failures++;                \
    fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                         \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)

/* |a-b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol) do { double _a = (a), _b = (b);                 \
    if (!(fabs(_a - _b) <= (tol) * fmax(1.0, fabs(_b)))) { ql_test_failures++; \
    fprintf(stderr, "  %s:%d: %s = %.8g, expected %.8g (tol %g)\n",          \
            __FILE__, __LINE__, #a, _a, _b, (double)(tol)); } } while (0)

#define CHECK_OK(expr) do { ql_status _s = (expr); if (_s != QL_OK) {         \
    ql_test_failures++; fprintf(stderr, "  %s:%d: %s -> %s: %s\n",           \
    __FILE__, __LINE__, #expr, ql_status_name(_s), ql_last_error()); } } while (0)

/* Largest |a[i]-b[i]| / max(1,|b[i]|). */
static inline double ql_test_maxrel(const float *a, const float *b, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i]));
        if (d > m || d != d) m = (d != d) ? INFINITY : d;
    }
    return m;
}

#endif
