/* CIFAR-10 binary batches: the input is the test batch of a folder. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fuzz.h"
#include "qlab/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write_file("cifar", data, size);
    if (!p) return 0;
    char dir[256], file[300];
    snprintf(dir, sizeof dir, "%s.d", p);
    mkdir(dir, 0700);
    snprintf(file, sizeof file, "%s/test_batch.bin", dir);
    if (rename(p, file) == 0) {
        ql_dataset *d = NULL;
        if (ql_dataset_cifar10(dir, "test", &d) == QL_OK) ql_dataset_free(d);
        unlink(file);
    }
    unlink(p);
    rmdir(dir);
    return 0;
}
