/* MNIST-format IDX files (Fashion-MNIST), gzipped or plain: zlib's gzread
 * reads both. Headers are big-endian; nothing in them is trusted: buffers
 * grow only as bytes really arrive, so a lying count ends as "truncated". */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include "qlab/alloc.h"
#include "qlab/dataset.h"

#define IDX_IMAGES 0x00000803u
#define IDX_LABELS 0x00000801u
#define MAX_SIDE 4096
#define MAX_COUNT 0x7fffffffu
#define CHUNK ((size_t)1 << 24)

/* Reads up to n bytes; returns the count, or -1 with the error set. */
static int64_t gz_read(gzFile g, const char *path, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t ask = n - got > CHUNK ? CHUNK : n - got;
        int r = gzread(g, (char *)buf + got, (unsigned)ask);
        if (r < 0 || (r == 0 && !gzeof(g))) {
            int err;
            const char *m = gzerror(g, &err);
            ql_error(QL_EFORMAT, "%s: %s", path, err == Z_ERRNO ? strerror(errno) : m);
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (int64_t)got;
}

/* magic, then ndim big-endian u32 dimensions. */
static ql_status read_header(gzFile g, const char *path, uint32_t magic, int ndim, uint32_t *dims) {
    uint8_t b[16];
    size_t n = 4 + 4 * (size_t)ndim;
    int64_t r = gz_read(g, path, b, n);
    if (r < 0) return QL_EFORMAT;
    if ((size_t)r < n)
        return ql_error(QL_EFORMAT, "%s: truncated: %lld bytes, the IDX header needs %zu", path, (long long)r, n);
    for (int i = 0; i <= ndim; i++)
        dims[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    if (dims[0] != magic)
        return ql_error(QL_EFORMAT, "%s: magic 0x%08x, expected 0x%08x (IDX %s)", path, dims[0], magic,
                        magic == IDX_IMAGES ? "u8 images, 3 dimensions" : "u8 labels, 1 dimension");
    return QL_OK;
}

/* Reads exactly n payload bytes into a new buffer, then insists on end of file. */
static ql_status read_payload(gzFile g, const char *path, size_t n, const char *what, uint8_t **out) {
    size_t cap = n < CHUNK ? n : CHUNK, got = 0;
    uint8_t *buf = ql_malloc(cap ? cap : 1);
    if (!buf) return QL_ENOMEM;
    while (got < n) {
        if (got == cap) {
            cap = n - cap < cap ? n : cap * 2;
            uint8_t *nb = ql_realloc(buf, cap);
            if (!nb) { ql_free(buf); return QL_ENOMEM; }
            buf = nb;
        }
        int64_t r = gz_read(g, path, buf + got, cap - got);
        if (r < 0) { ql_free(buf); return QL_EFORMAT; }
        got += (size_t)r;
        if (got < cap) {
            ql_free(buf);
            return ql_error(QL_EFORMAT, "%s: truncated: the header announces %zu bytes of %s, only %zu present", path,
                            n, what, got);
        }
    }
    uint8_t extra;
    int64_t r = gz_read(g, path, &extra, 1);
    if (r != 0) {
        ql_free(buf);
        return r < 0 ? QL_EFORMAT : ql_error(QL_EFORMAT, "%s: data after the %zu bytes of %s the header announces",
                                             path, n, what);
    }
    *out = buf;
    return QL_OK;
}

static gzFile open_gz(const char *path, ql_status *s) {
    errno = 0;
    gzFile g = gzopen(path, "rb");
    if (!g) *s = ql_error(QL_EIO, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    else gzbuffer(g, 1 << 17);
    return g;
}

static ql_status read_images(const char *path, ql_dataset *d) {
    ql_status s = QL_OK;
    gzFile g = open_gz(path, &s);
    if (!g) return s;
    uint32_t h[4];
    if (!(s = read_header(g, path, IDX_IMAGES, 3, h))) {
        if (h[1] > MAX_COUNT || h[2] < 1 || h[3] < 1 || h[2] > MAX_SIDE || h[3] > MAX_SIDE)
            s = ql_error(QL_EFORMAT, "%s: implausible image header: %u images of %ux%u", path, h[1], h[2], h[3]);
        else {
            d->n = h[1];
            d->h = (int)h[2];
            d->w = (int)h[3];
            d->c = 1;
            s = read_payload(g, path, (size_t)d->n * h[2] * h[3], "pixels", &d->images);
        }
    }
    gzclose(g);
    return s;
}

static ql_status read_labels(const char *path, ql_dataset *d) {
    ql_status s = QL_OK;
    gzFile g = open_gz(path, &s);
    if (!g) return s;
    uint32_t h[2];
    uint8_t *raw = NULL;
    if (!(s = read_header(g, path, IDX_LABELS, 1, h))) {
        if (h[1] != (uint64_t)d->n)
            s = ql_error(QL_EFORMAT, "%s: %u labels, but the image file has %lld images", path, h[1], (long long)d->n);
        else
            s = read_payload(g, path, h[1], "labels", &raw);
    }
    gzclose(g);
    if (s) return s;
    if (!(d->labels = ql_malloc(sizeof(int32_t) * (size_t)(d->n ? d->n : 1)))) { ql_free(raw); return QL_ENOMEM; }
    int mx = -1;
    for (int64_t i = 0; i < d->n; i++) {
        d->labels[i] = raw[i];
        if (raw[i] > mx) mx = raw[i];
    }
    d->nclasses = mx + 1;
    ql_free(raw);
    return QL_OK;
}

static ql_status idx_named(const char *images, const char *labels, const char *name, ql_dataset **out) {
    *out = NULL;
    ql_dataset *d = ql_calloc(sizeof *d);
    if (!d) return QL_ENOMEM;
    ql_status s = read_images(images, d);
    if (!s) s = read_labels(labels, d);
    if (!s && !(d->name = ql_strdup(name))) s = QL_ENOMEM;
    if (s) { ql_dataset_free(d); return s; }
    *out = d;
    return QL_OK;
}

ql_status ql_dataset_idx(const char *images_path, const char *labels_path, ql_dataset **out) {
    *out = NULL;
    if (!images_path || !labels_path) return ql_error(QL_EINVAL, "idx dataset: NULL path");
    return idx_named(images_path, labels_path, images_path, out);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir/base.gz, else dir/base; buf receives the one that exists. */
static ql_status find_file(const char *dir, const char *base, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s.gz", dir, base);
    if (is_file(buf)) return QL_OK;
    snprintf(buf, n, "%s/%s", dir, base);
    if (is_file(buf)) return QL_OK;
    return ql_error(QL_EIO, "fashion_mnist: neither %s.gz nor %s found in %s", base, base, dir);
}

ql_status ql_dataset_fashion_mnist(const char *dir, const char *split, ql_dataset **out) {
    *out = NULL;
    if (!dir) dir = QL_FASHION_MNIST_DIR;
    const char *pre;
    if (split && !strcmp(split, "train")) pre = "train";
    else if (split && !strcmp(split, "test")) pre = "t10k";
    else return ql_error(QL_EINVAL, "fashion_mnist: split '%s' is not \"train\" or \"test\"", split ? split : "(null)");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ql_error(QL_EIO, "fashion_mnist: directory %s not found (install the Debian package "
                        "dataset-fashion-mnist, or pass the directory holding the IDX files)", dir);
    char img[4096], lab[4096], base[64], name[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", pre);
    QL_TRY(find_file(dir, base, img, sizeof img));
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", pre);
    QL_TRY(find_file(dir, base, lab, sizeof lab));
    snprintf(name, sizeof name, "fashion_mnist/%s", split);
    return idx_named(img, lab, name, out);
}

ql_status ql_dataset_subset(const ql_dataset *d, int64_t start, int64_t count, ql_dataset **out) {
    *out = NULL;
    if (start < 0 || count < 0 || start > d->n || count > d->n - start)
        return ql_error(QL_EINVAL, "%s: subset [%lld, %lld) outside [0, %lld)", d->name ? d->name : "dataset",
                        (long long)start, (long long)(start + count), (long long)d->n);
    size_t img = (size_t)d->h * (size_t)d->w * (size_t)d->c;
    ql_dataset *s = ql_calloc(sizeof *s);
    if (!s) return QL_ENOMEM;
    *s = *d;   /* every pointer is replaced below, before any can be freed */
    s->n = count;
    const char *base = d->name ? d->name : "dataset";
    size_t nn = strlen(base) + 64;
    s->name = ql_malloc(nn);
    s->images = ql_malloc(img * (size_t)count + 1);
    s->labels = ql_malloc(sizeof(int32_t) * (size_t)count + 1);
    if (!s->name || !s->images || !s->labels) { ql_dataset_free(s); return QL_ENOMEM; }
    snprintf(s->name, nn, "%s[%lld:%lld]", base, (long long)start, (long long)(start + count));
    if (count) {
        memcpy(s->images, d->images + img * (size_t)start, img * (size_t)count);
        memcpy(s->labels, d->labels + start, sizeof(int32_t) * (size_t)count);
    }
    *out = s;
    return QL_OK;
}

void ql_dataset_free(ql_dataset *d) {
    if (!d) return;
    ql_free(d->name);
    ql_free(d->images);
    ql_free(d->labels);
    ql_free(d);
}
