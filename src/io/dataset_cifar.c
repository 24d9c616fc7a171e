/* CIFAR-10, binary version: records of 1 label byte + 3072 pixel bytes
 * (R, G, B planes of 32x32), turned into HWC u8 as every dataset here. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "qlab/alloc.h"
#include "qlab/dataset.h"

#define SIDE 32
#define PLANE (SIDE * SIDE)
#define RECORD (1 + 3 * PLANE)
#define NCLASSES 10

/* Size of a regular file in records. */
static ql_status count_records(const char *path, int64_t *n) {
    struct stat st;
    if (stat(path, &st) != 0) return ql_error(QL_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode) || st.st_size == 0 || st.st_size % RECORD)
        return ql_error(QL_EFORMAT, "%s: size %lld is not a positive multiple of the %d-byte CIFAR-10 record "
                        "(1 label + 3x32x32 pixels)", path, (long long)st.st_size, RECORD);
    *n = st.st_size / RECORD;
    return QL_OK;
}

/* Appends nrec records of path at record index at. */
static ql_status read_batch(const char *path, int64_t nrec, ql_dataset *d, int64_t at) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return ql_error(QL_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t rec[RECORD];
    ql_status s = QL_OK;
    for (int64_t r = 0; r < nrec && !s; r++) {
        if (fread(rec, 1, RECORD, fp) != RECORD) {
            s = ql_error(QL_EFORMAT, "%s: truncated at record %lld", path, (long long)r);
            break;
        }
        if (rec[0] >= NCLASSES) {
            s = ql_error(QL_EFORMAT, "%s: record %lld has label %d, CIFAR-10 labels are 0..9", path, (long long)r,
                         rec[0]);
            break;
        }
        d->labels[at + r] = rec[0];
        uint8_t *img = d->images + (size_t)(at + r) * 3 * PLANE;
        for (int p = 0; p < PLANE; p++)
            for (int c = 0; c < 3; c++) img[3 * p + c] = rec[1 + c * PLANE + p];   /* CHW -> HWC */
    }
    fclose(fp);
    return s;
}

ql_status ql_dataset_cifar10(const char *dir, const char *split, ql_dataset **out) {
    *out = NULL;
    if (!dir) return ql_error(QL_EINVAL, "cifar10: no directory given");
    int nfiles;
    if (split && !strcmp(split, "train")) nfiles = 5;
    else if (split && !strcmp(split, "test")) nfiles = 1;
    else return ql_error(QL_EINVAL, "cifar10: split '%s' is not \"train\" or \"test\"", split ? split : "(null)");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ql_error(QL_EIO, "cifar10: directory %s not found (it should hold the binary version: "
                        "data_batch_1.bin .. data_batch_5.bin and test_batch.bin)", dir);
    char paths[5][4096];
    int64_t counts[5], total = 0;
    for (int i = 0; i < nfiles; i++) {
        if (nfiles == 1) snprintf(paths[i], sizeof paths[i], "%s/test_batch.bin", dir);
        else snprintf(paths[i], sizeof paths[i], "%s/data_batch_%d.bin", dir, i + 1);
        QL_TRY(count_records(paths[i], &counts[i]));
        total += counts[i];
    }
    ql_dataset *d = ql_calloc(sizeof *d);
    if (!d) return QL_ENOMEM;
    d->n = total;
    d->h = d->w = SIDE;
    d->c = 3;
    d->nclasses = NCLASSES;
    d->name = ql_strdup(nfiles == 1 ? "cifar10/test" : "cifar10/train");
    d->images = ql_malloc((size_t)total * 3 * PLANE);
    d->labels = ql_malloc(sizeof(int32_t) * (size_t)total);
    ql_status s = (!d->name || !d->images || !d->labels) ? QL_ENOMEM : QL_OK;
    int64_t at = 0;
    for (int i = 0; i < nfiles && !s; at += counts[i], i++) s = read_batch(paths[i], counts[i], d, at);
    if (s) { ql_dataset_free(d); return s; }
    *out = d;
    return QL_OK;
}
