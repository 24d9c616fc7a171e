/* IDX files, gzip'd or plain: the first byte says which of the pair is the
 * input (0: images, 1: labels); the other is a valid 2-image file. */
#include <stdio.h>
#include <unistd.h>
#include "fuzz.h"
#include "qlab/dataset.h"

static const uint8_t images[16 + 2 * 4] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8};
static const uint8_t labels[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 3, 9};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int which = data[0] & 1;
    const char *ip = fuzz_write_file("images", which ? images : data + 1, which ? sizeof images : size - 1);
    if (!ip) return 0;
    char ipath[256];
    snprintf(ipath, sizeof ipath, "%s", ip);
    const char *lp = fuzz_write_file("labels", which ? data + 1 : labels, which ? size - 1 : sizeof labels);
    if (!lp) return 0;
    ql_dataset *d = NULL;
    if (ql_dataset_idx(ipath, lp, &d) == QL_OK) ql_dataset_free(d);
    unlink(ipath);
    unlink(lp);
    return 0;
}
