/* Runs every registered C test (or those whose name contains argv[1]). */
#include <stdlib.h>
#include "test.h"
#include "qlab/rng.h"
#include "qlab/threads.h"

#define MAX_TESTS 1024
static struct { const char *name, *file; ql_test_fn fn; } tests[MAX_TESTS];
static int ntests;
int ql_test_failures;

void ql_test_register(const char *name, const char *file, ql_test_fn fn) {
    if (ntests < MAX_TESTS) {
        tests[ntests].name = name; tests[ntests].file = file; tests[ntests].fn = fn;
        ntests++;
    }
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
    const char *filter = argc > 1 ? argv[1] : NULL;
    ql_threads_set(2);
    for (int i = 0; i < ntests; i++) {
        if (filter && !strstr(tests[i].name, filter) && !strstr(tests[i].file, filter)) continue;
        ql_seed(1234);
        ql_test_failures = 0;
        tests[i].fn();
        if (ql_test_failures) { failed++; printf("FAIL %s (%s)\n", tests[i].name, tests[i].file); }
        else { passed++; printf("ok   %s\n", tests[i].name); }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
