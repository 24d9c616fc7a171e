/* make onnx-conformance: ONNX's own backend node tests (Debian's
 * libonnx-testdata, data/node/) on qlab's importer and kernels.
 *   onnx_conformance DIR [--expected FILE] [--write FILE] [--quiet]
 * prints pass / fail / unsupported per test and counts per op; with
 * --expected, exits 1 when a test listed there does not pass (a regression);
 * --write saves the passing tests as the new list. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qlab/onnx.h"
#include "qlab/threads.h"

#define MAXT 4096
typedef struct { char name[128], op[64]; int res; } row;

static int by_name(const void *a, const void *b) { return strcmp(((const row *)a)->name, ((const row *)b)->name); }

int main(int argc, char **argv) {
    const char *dir = NULL, *expected = NULL, *write = NULL;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--expected") && i + 1 < argc) expected = argv[++i];
        else if (!strcmp(argv[i], "--write") && i + 1 < argc) write = argv[++i];
        else if (!strcmp(argv[i], "--quiet")) quiet = 1;
        else dir = argv[i];
    }
    if (!dir) { fprintf(stderr, "usage: %s DIR [--expected FILE] [--write FILE] [--quiet]\n", argv[0]); return 2; }
    DIR *d = opendir(dir);
    if (!d) { printf("SKIP: no ONNX backend tests in %s (apt-get install libonnx-testdata)\n", dir); return 0; }
    static row rows[MAXT];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAXT)
        if (!strncmp(e->d_name, "test_", 5)) snprintf(rows[n++].name, sizeof rows[0].name, "%.120s", e->d_name);
    closedir(d);
    qsort(rows, (size_t)n, sizeof *rows, by_name);
    ql_threads_set(1);
    static const char *const word[3] = {"pass", "fail", "unsupported"};
    int tot[3] = {0};
    for (int i = 0; i < n; i++) {
        char path[1400], msg[512];
        snprintf(path, sizeof path, "%.1000s/%.127s", dir, rows[i].name);
        rows[i].res = ql_onnx_run_test(path, rows[i].op, sizeof rows[i].op, msg, sizeof msg);
        tot[rows[i].res]++;
        if (!quiet || rows[i].res == QL_ONNX_TEST_FAIL)
            printf("%-12s %s%s%s\n", word[rows[i].res], rows[i].name, msg[0] ? ": " : "", msg);
    }
    /* counts per op, for the ops with at least one pass or fail */
    printf("\nper op (pass / fail / unsupported):\n");
    for (int i = 0; i < n; i++) {
        int seen = 0, c[3] = {0};
        for (int k = 0; k < i && !seen; k++) seen = !strcmp(rows[k].op, rows[i].op);
        if (seen) continue;
        for (int k = i; k < n; k++) if (!strcmp(rows[k].op, rows[i].op)) c[rows[k].res]++;
        if (c[0] || c[1]) printf("  %-28s %3d %3d %3d\n", rows[i].op, c[0], c[1], c[2]);
    }
    printf("\n%d tests: %d pass, %d fail, %d unsupported\n", n, tot[0], tot[1], tot[2]);
    int regressions = 0;
    if (expected) {
        FILE *f = fopen(expected, "r");
        if (!f) { fprintf(stderr, "cannot read %s\n", expected); return 2; }
        char line[256];
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = 0;
            if (!line[0] || line[0] == '#') continue;
            int found = 0;
            for (int i = 0; i < n; i++)
                if (!strcmp(rows[i].name, line)) { found = 1; if (rows[i].res) { printf("REGRESSION %s\n", line); regressions++; } }
            if (!found) { printf("REGRESSION %s (test missing)\n", line); regressions++; }
        }
        fclose(f);
        printf("%d regressions from %s\n", regressions, expected);
    }
    if (write) {
        FILE *f = fopen(write, "w");
        if (!f) { fprintf(stderr, "cannot write %s\n", write); return 2; }
        fprintf(f, "# ONNX backend node tests qlab passes (make onnx-conformance; scripts/onnx_conformance.c)\n");
        for (int i = 0; i < n; i++) if (rows[i].res == QL_ONNX_TEST_PASS) fprintf(f, "%s\n", rows[i].name);
        fclose(f);
    }
    return regressions ? 1 : 0;
}
