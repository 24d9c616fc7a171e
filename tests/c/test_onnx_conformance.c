/* The ONNX backend node tests qlab passed when tests/onnx/conformance_expected.txt
 * was written must still pass (make onnx-conformance shows them all). */
#include <dirent.h>
#include "test.h"
#include "qlab/onnx.h"

#define TESTDATA "/usr/share/libonnx-testdata/data/node"

TEST(onnx_conformance_no_regression) {
    DIR *d = opendir(TESTDATA);
    if (!d) { printf("SKIP onnx_conformance: %s missing (apt-get install libonnx-testdata)\n", TESTDATA); return; }
    closedir(d);
    FILE *f = fopen("tests/onnx/conformance_expected.txt", "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char dir[512], op[64], msg[512];
        snprintf(dir, sizeof dir, "%s/%s", TESTDATA, line);
        ql_onnx_test_result r = ql_onnx_run_test(dir, op, sizeof op, msg, sizeof msg);
        CHECK_MSG(r == QL_ONNX_TEST_PASS, "%s (%s) no longer passes: %s", line, op, msg);
        n++;
    }
    fclose(f);
    CHECK(n >= 40);
}
