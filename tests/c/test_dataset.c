/* Datasets (IDX gz and plain, CIFAR-10 binary, the installed Fashion-MNIST)
 * and the loader (batch counts, normalization, shuffling, augmentation). */
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "test.h"
#include "qlab/alloc.h"
#include "qlab/dataset.h"
#include "qlab/threads.h"

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Writes bytes plainly or gzipped. */
static void put_file(const char *path, int gz, const uint8_t *b, size_t n) {
    if (gz) {
        gzFile g = gzopen(path, "wb");
        if (!g) return;
        if (n) gzwrite(g, b, (unsigned)n);
        gzclose(g);
    } else {
        FILE *f = fopen(path, "wb");
        if (!f) return;
        if (n) fwrite(b, 1, n, f);
        fclose(f);
    }
}

/* IDX file: magic, dims, then payload minus `cut` bytes (plus `extra` junk bytes). */
static void put_idx(const char *path, int gz, uint32_t magic, int ndim, const uint32_t *dims, const uint8_t *payload,
                    size_t n, size_t cut, size_t extra) {
    size_t hl = 4 + 4 * (size_t)ndim, tot = hl + n - cut + extra;
    uint8_t *b = calloc(1, hl + n + extra);
    be32(b, magic);
    for (int i = 0; i < ndim; i++) be32(b + 4 + 4 * i, dims[i]);
    memcpy(b + hl, payload, n);
    put_file(path, gz, b, tot);
    free(b);
}

/* 5 images of 3x4, pixel = 10*i + k; labels 0,1,2,3,1. */
static void put_small_pair(const char *dir, int gz, const char *img_name, const char *lab_name) {
    uint8_t px[60], lab[5] = {0, 1, 2, 3, 1};
    for (int i = 0; i < 60; i++) px[i] = (uint8_t)(10 * (i / 12) + i % 12);
    char p[512];
    uint32_t di[3] = {5, 3, 4}, dl[1] = {5};
    snprintf(p, sizeof p, "%s/%s", dir, img_name);
    put_idx(p, gz, 0x803, 3, di, px, sizeof px, 0, 0);
    snprintf(p, sizeof p, "%s/%s", dir, lab_name);
    put_idx(p, gz, 0x801, 1, dl, lab, sizeof lab, 0, 0);
}

static void rm_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", dir);
}

TEST(idx_gz_and_plain) {
    for (int gz = 0; gz < 2; gz++) {
        char dir[64] = "/tmp/qlab_idx_XXXXXX";
        CHECK(mkdtemp(dir) != NULL);
        put_small_pair(dir, gz, "i", "l");
        char ip[128], lp[128];
        snprintf(ip, sizeof ip, "%s/i", dir);
        snprintf(lp, sizeof lp, "%s/l", dir);
        int64_t mem = ql_mem_current();
        ql_dataset *d = NULL;
        CHECK_OK(ql_dataset_idx(ip, lp, &d));
        if (d) {
            CHECK(d->n == 5 && d->h == 3 && d->w == 4 && d->c == 1 && d->nclasses == 4);
            CHECK(d->images[0] == 0 && d->images[13] == 11 && d->images[59] == 51);
            CHECK(d->labels[3] == 3 && d->labels[4] == 1);
            ql_dataset *s = NULL;
            CHECK_OK(ql_dataset_subset(d, 2, 2, &s));
            CHECK(s && s->n == 2 && s->images[0] == 20 && s->labels[1] == 3 && s->nclasses == 4 && s->h == 3);
            CHECK(s && strstr(s->name, "[2:4]"));
            ql_dataset_free(s);
            s = (ql_dataset *)1;
            CHECK(ql_dataset_subset(d, 4, 2, &s) == QL_EINVAL && s == NULL);
            CHECK(ql_dataset_subset(d, -1, 1, &s) == QL_EINVAL);
            CHECK_OK(ql_dataset_subset(d, 5, 0, &s));
            CHECK(s && s->n == 0);
            ql_dataset_free(s);
            ql_dataset_free(d);
        }
        CHECK(ql_mem_current() == mem);
        rm_dir(dir);
    }
}

/* Expects ql_dataset_idx to fail with code and a message containing what. */
static void expect_idx_bad(const char *ip, const char *lp, ql_status code, const char *what) {
    int64_t mem = ql_mem_current();
    ql_dataset *d = (ql_dataset *)1;
    ql_status s = ql_dataset_idx(ip, lp, &d);
    CHECK_MSG(s == code, "status %s, expected %s (%s)", ql_status_name(s), ql_status_name(code), ql_last_error());
    CHECK(d == NULL);
    CHECK_MSG(strstr(ql_last_error(), what), "message lacks '%s': %s", what, ql_last_error());
    CHECK(ql_mem_current() == mem);
    if (s == QL_OK) ql_dataset_free(d);
}

TEST(idx_rejects_bad_files) {
    char dir[64] = "/tmp/qlab_idx_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char ip[128], lp[128], bp[128];
    snprintf(ip, sizeof ip, "%s/i", dir);
    snprintf(lp, sizeof lp, "%s/l", dir);
    snprintf(bp, sizeof bp, "%s/bad", dir);
    uint8_t px[60] = {0}, lab[5] = {0, 1, 2, 3, 1};
    uint32_t di[3] = {5, 3, 4}, dl[1] = {5}, dl4[1] = {4}, dbig[3] = {1000000, 28, 28}, dodd[3] = {5, 0, 4};
    for (int gz = 0; gz < 2; gz++) {
        put_idx(ip, gz, 0x803, 3, di, px, sizeof px, 0, 0);
        put_idx(lp, gz, 0x801, 1, dl, lab, sizeof lab, 0, 0);
        put_idx(bp, gz, 0x803, 3, di, px, sizeof px, 7, 0);      /* truncated pixels */
        expect_idx_bad(bp, lp, QL_EFORMAT, "truncated: the header announces 60 bytes of pixels, only 53 present");
        put_idx(bp, gz, 0x803, 3, dbig, px, sizeof px, 0, 0);    /* header lies about the count */
        expect_idx_bad(bp, lp, QL_EFORMAT, "truncated");
        put_idx(bp, gz, 0x803, 3, di, px, 0, 0, 0);              /* header only */
        expect_idx_bad(bp, lp, QL_EFORMAT, "truncated");
        put_idx(bp, gz, 0x803, 1, di, px, 0, 0, 0);              /* header cut short */
        expect_idx_bad(bp, lp, QL_EFORMAT, "IDX header");
        put_idx(bp, gz, 0x803, 3, dodd, px, sizeof px, 0, 0);
        expect_idx_bad(bp, lp, QL_EFORMAT, "implausible");
        put_idx(bp, gz, 0x803, 3, di, px, sizeof px, 0, 3);      /* trailing bytes */
        expect_idx_bad(bp, lp, QL_EFORMAT, "data after");
        put_idx(bp, gz, 0x801, 3, di, px, sizeof px, 0, 0);      /* label magic for images */
        expect_idx_bad(bp, lp, QL_EFORMAT, "magic 0x00000801, expected 0x00000803");
        put_idx(bp, gz, 0x801, 1, dl4, lab, 4, 0, 0);            /* 4 labels for 5 images */
        expect_idx_bad(ip, bp, QL_EFORMAT, "4 labels, but the image file has 5 images");
        put_idx(bp, gz, 0x801, 1, dl, lab, sizeof lab, 2, 0);
        expect_idx_bad(ip, bp, QL_EFORMAT, "truncated");
    }
    /* a gzip stream cut in the middle */
    uint8_t big[4000];
    for (int i = 0; i < 4000; i++) big[i] = (uint8_t)(i * 31 + i / 7);
    uint32_t d40[3] = {10, 20, 20};
    put_idx(bp, 1, 0x803, 3, d40, big, sizeof big, 0, 0);
    struct stat st;
    CHECK(stat(bp, &st) == 0);
    CHECK(truncate(bp, st.st_size / 2) == 0);
    expect_idx_bad(bp, lp, QL_EFORMAT, bp);
    expect_idx_bad("/tmp/qlab_no_such_file_9f3", lp, QL_EIO, "/tmp/qlab_no_such_file_9f3");
    rm_dir(dir);
}

TEST(fashion_mnist_dirs_and_names) {
    ql_dataset *d = (ql_dataset *)1;
    ql_status s = ql_dataset_fashion_mnist("/tmp/qlab_no_fmnist_here", "train", &d);
    CHECK(s == QL_EIO && d == NULL);
    CHECK(strstr(ql_last_error(), "/tmp/qlab_no_fmnist_here") && strstr(ql_last_error(), "dataset-fashion-mnist"));
    CHECK(ql_dataset_fashion_mnist(NULL, "validation", &d) == QL_EINVAL && strstr(ql_last_error(), "validation"));
    CHECK(ql_dataset_fashion_mnist(NULL, NULL, &d) == QL_EINVAL);
    /* plain names, and .gz names, in a directory of our own */
    char dir[64] = "/tmp/qlab_fm_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    put_small_pair(dir, 0, "train-images-idx3-ubyte", "train-labels-idx1-ubyte");
    put_small_pair(dir, 1, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz");
    for (int i = 0; i < 2; i++) {
        CHECK_OK(ql_dataset_fashion_mnist(dir, i ? "test" : "train", &d));
        CHECK(d && d->n == 5 && d->h == 3 && !strcmp(d->name, i ? "fashion_mnist/test" : "fashion_mnist/train"));
        ql_dataset_free(d);
    }
    char p[128];
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", dir);
    unlink(p);
    CHECK(ql_dataset_fashion_mnist(dir, "test", &d) == QL_EIO && strstr(ql_last_error(), "t10k-labels-idx1-ubyte"));
    rm_dir(dir);
}

TEST(fashion_mnist_real) {
    struct stat st;
    if (stat(QL_FASHION_MNIST_DIR, &st) != 0) {
        fprintf(stderr, "  %s missing: install dataset-fashion-mnist\n", QL_FASHION_MNIST_DIR);
        CHECK(0);
        return;
    }
    ql_dataset *tr = NULL, *te = NULL;
    CHECK_OK(ql_dataset_fashion_mnist(NULL, "train", &tr));
    CHECK_OK(ql_dataset_fashion_mnist(NULL, "test", &te));
    if (tr) {
        CHECK(tr->n == 60000 && tr->h == 28 && tr->w == 28 && tr->c == 1 && tr->nclasses == 10);
        CHECK(!strcmp(tr->name, "fashion_mnist/train"));
    }
    if (te) {
        CHECK(te->n == 10000 && te->h == 28 && te->w == 28 && te->c == 1 && te->nclasses == 10);
        CHECK(te->labels[0] == 9);   /* ankle boot */
        int count[10] = {0};
        for (int64_t i = 0; i < te->n; i++) count[te->labels[i]]++;
        for (int k = 0; k < 10; k++) CHECK(count[k] == 1000);
    }
    ql_dataset_free(tr);
    ql_dataset_free(te);
}

TEST(cifar10_binary) {
    char dir[64] = "/tmp/qlab_cifar_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    enum { REC = 3073 };
    uint8_t recs[3 * REC];
    int labels[3] = {3, 0, 9};
    for (int r = 0; r < 3; r++) {
        recs[r * REC] = (uint8_t)labels[r];
        for (int i = 0; i < 3072; i++) recs[r * REC + 1 + i] = (uint8_t)(i * 13 + r * 5 + i / 1024);
    }
    char p[128];
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    put_file(p, 0, recs, sizeof recs);
    ql_dataset *d = NULL;
    CHECK_OK(ql_dataset_cifar10(dir, "test", &d));
    if (d) {
        CHECK(d->n == 3 && d->h == 32 && d->w == 32 && d->c == 3 && d->nclasses == 10);
        CHECK(!strcmp(d->name, "cifar10/test"));
        int bad = 0;
        for (int r = 0; r < 3; r++) {
            CHECK(d->labels[r] == labels[r]);
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < 32; y++)
                    for (int x = 0; x < 32; x++)
                        bad += d->images[((r * 32 + y) * 32 + x) * 3 + c] != recs[r * REC + 1 + c * 1024 + y * 32 + x];
        }
        CHECK(bad == 0);
        ql_dataset_free(d);
    }
    d = (ql_dataset *)1;
    CHECK(ql_dataset_cifar10(dir, "train", &d) == QL_EIO && d == NULL && strstr(ql_last_error(), "data_batch_1.bin"));
    CHECK(ql_dataset_cifar10(dir, "dev", &d) == QL_EINVAL);
    put_file(p, 0, recs, sizeof recs - 100);
    CHECK(ql_dataset_cifar10(dir, "test", &d) == QL_EFORMAT && strstr(ql_last_error(), "3073"));
    recs[REC] = 10;
    put_file(p, 0, recs, sizeof recs);
    CHECK(ql_dataset_cifar10(dir, "test", &d) == QL_EFORMAT && strstr(ql_last_error(), "record 1 has label 10"));
    for (int i = 1; i <= 5; i++) {
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, i);
        recs[REC] = (uint8_t)i;
        put_file(p, 0, recs, sizeof recs);
    }
    CHECK_OK(ql_dataset_cifar10(dir, "train", &d));
    CHECK(d && d->n == 15 && d->labels[1] == 1 && d->labels[13] == 5 && !strcmp(d->name, "cifar10/train"));
    ql_dataset_free(d);
    CHECK(ql_dataset_cifar10("/tmp/qlab_no_cifar_here", "test", &d) == QL_EIO &&
          strstr(ql_last_error(), "/tmp/qlab_no_cifar_here"));
    rm_dir(dir);
}

/* ---- loader ---- */

/* n images (h,w,c) whose pixel at (i,y,x,ch) is pix(i,y,x,ch); label i. */
static int pix(int64_t i, int y, int x, int ch) { return (int)((i * 37 + y * 11 + x * 3 + ch * 50 + 1) % 256); }

static ql_dataset *synth(int64_t n, int h, int w, int c) {
    ql_dataset *d = ql_calloc(sizeof *d);
    d->name = ql_strdup("synth");
    d->n = n; d->h = h; d->w = w; d->c = c;
    d->nclasses = (int)n;
    d->images = ql_malloc((size_t)(n * h * w * c));
    d->labels = ql_malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        d->labels[i] = (int32_t)i;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int ch = 0; ch < c; ch++) d->images[((i * h + y) * w + x) * c + ch] = (uint8_t)pix(i, y, x, ch);
    }
    return d;
}

/* Runs an epoch; returns the number of batches, sizes summed into *samples. */
static int64_t run_epoch(ql_loader *l, ql_tensor *x, ql_tensor *y, int64_t *samples) {
    int64_t nb = 0;
    *samples = 0;
    while (ql_loader_next(l, x, y) == 1) { nb++; *samples += y->shape[0]; }
    return nb;
}

TEST(loader_batch_counts) {
    ql_dataset *d = synth(10, 2, 3, 1);
    ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 0, NULL), *y = ql_tensor_new(QL_DTYPE_S32, 0, NULL);
    struct { int batch, drop, maxb; int64_t nb, ns, last; } cases[] = {
        {3, 0, 0, 4, 10, 1}, {3, 1, 0, 3, 9, 3}, {3, 0, 2, 2, 6, 3}, {3, 1, 5, 3, 9, 3},
        {10, 0, 0, 1, 10, 10}, {10, 1, 0, 1, 10, 10}, {16, 0, 0, 1, 10, 10}, {16, 1, 0, 0, 0, 0}, {1, 0, 4, 4, 4, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        ql_loader_opts o;
        ql_loader_opts_default(&o);
        o.batch = cases[k].batch; o.drop_last = cases[k].drop; o.max_batches = cases[k].maxb;
        ql_loader *l = ql_loader_new(d, &o);
        CHECK(l != NULL);
        if (!l) continue;
        CHECK_MSG(ql_loader_num_batches(l) == cases[k].nb, "case %zu: %lld batches", k,
                  (long long)ql_loader_num_batches(l));
        CHECK_MSG(ql_loader_num_samples(l) == cases[k].ns, "case %zu: %lld samples", k,
                  (long long)ql_loader_num_samples(l));
        for (int epoch = 0; epoch < 2; epoch++) {
            int64_t ns, nb = run_epoch(l, x, y, &ns);
            CHECK_MSG(nb == cases[k].nb && ns == cases[k].ns, "case %zu: ran %lld batches, %lld samples", k,
                      (long long)nb, (long long)ns);
            if (nb) CHECK(y->shape[0] == cases[k].last && x->shape[0] == cases[k].last);
            CHECK(ql_loader_next(l, x, y) == 0);
            ql_loader_reset(l);
        }
        CHECK(ql_loader_dataset(l) == d && ql_loader_options(l)->batch == cases[k].batch);
        ql_loader_free(l);
    }
    ql_loader_opts o;
    ql_loader_opts_default(&o);
    CHECK(o.batch == 32 && o.shuffle == 0 && o.nnorm == 0 && o.max_batches == 0);
    o.batch = 0;
    CHECK(ql_loader_new(d, &o) == NULL && strstr(ql_last_error(), "batch"));
    ql_loader_opts_default(&o);
    o.nnorm = 2;
    CHECK(ql_loader_new(d, &o) == NULL && strstr(ql_last_error(), "normalization"));
    o.nnorm = 1; o.std[0] = 0;
    CHECK(ql_loader_new(d, &o) == NULL && strstr(ql_last_error(), "std"));
    ql_tensor_free(x);
    ql_tensor_free(y);
    ql_dataset_free(d);
}

TEST(loader_normalization) {
    ql_dataset *d = synth(4, 2, 2, 3);
    ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 0, NULL), *y = ql_tensor_new(QL_DTYPE_S32, 0, NULL);
    for (int mode = 0; mode < 3; mode++) {
        ql_loader_opts o;
        ql_loader_opts_default(&o);
        o.batch = 4;
        float mean[3] = {0.5f, 0.25f, 0.75f}, sd[3] = {0.25f, 2.0f, 0.5f};
        o.nnorm = mode == 2 ? 3 : mode;
        for (int c = 0; c < 3; c++) { o.mean[c] = mean[c]; o.std[c] = sd[c]; }
        ql_loader *l = ql_loader_new(d, &o);
        CHECK(ql_loader_next(l, x, y) == 1);
        CHECK(x->dtype == QL_DTYPE_F32 && x->ndim == 4 && x->shape[0] == 4 && x->shape[1] == 2 && x->shape[2] == 2 &&
              x->shape[3] == 3);
        CHECK(y->dtype == QL_DTYPE_S32 && y->ndim == 1 && y->shape[0] == 4);
        double err = 0;
        for (int i = 0; i < 4; i++)
            for (int yy = 0; yy < 2; yy++)
                for (int xx = 0; xx < 2; xx++)
                    for (int c = 0; c < 3; c++) {
                        int k = mode == 0 ? -1 : mode == 1 ? 0 : c;
                        double v = pix(i, yy, xx, c) / 255.0, want = k < 0 ? v : (v - mean[k]) / sd[k];
                        err = fmax(err, fabs(ql_f32(x)[((i * 2 + yy) * 2 + xx) * 3 + c] - want));
                    }
        CHECK_MSG(err < 1e-5, "mode %d: max error %g", mode, err);
        ql_loader_free(l);
    }
    ql_tensor_free(x);
    ql_tensor_free(y);
    ql_dataset_free(d);
}

/* Labels of one epoch, in order. */
static void epoch_labels(ql_loader *l, ql_tensor *x, ql_tensor *y, int32_t *out) {
    int64_t k = 0;
    while (ql_loader_next(l, x, y) == 1)
        for (int64_t i = 0; i < y->shape[0]; i++) out[k++] = ((int32_t *)y->data)[i];
}

static int is_perm(const int32_t *a, int n) {
    char seen[100] = {0};
    for (int i = 0; i < n; i++) {
        if (a[i] < 0 || a[i] >= n || seen[a[i]]) return 0;
        seen[a[i]] = 1;
    }
    return 1;
}

TEST(loader_shuffle) {
    enum { N = 100 };
    ql_dataset *d = synth(N, 1, 2, 1);
    ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 0, NULL), *y = ql_tensor_new(QL_DTYPE_S32, 0, NULL);
    ql_loader_opts o;
    ql_loader_opts_default(&o);
    o.batch = 7;
    int32_t a1[N], a2[N], b1[N], c1[N], plain[N];
    ql_loader *l = ql_loader_new(d, &o);
    epoch_labels(l, x, y, plain);
    for (int i = 0; i < N; i++) CHECK(plain[i] == i);
    ql_loader_free(l);
    o.shuffle = 1;
    o.seed = 42;
    ql_loader *la = ql_loader_new(d, &o), *lb = ql_loader_new(d, &o);
    o.seed = 43;
    ql_loader *lc = ql_loader_new(d, &o);
    epoch_labels(la, x, y, a1);
    epoch_labels(lb, x, y, b1);
    epoch_labels(lc, x, y, c1);
    CHECK(is_perm(a1, N) && is_perm(c1, N));
    CHECK(!memcmp(a1, b1, sizeof a1));        /* same seed, same order */
    CHECK(memcmp(a1, c1, sizeof a1) != 0);    /* other seed, other order */
    CHECK(memcmp(a1, plain, sizeof a1) != 0);
    ql_loader_reset(la);
    epoch_labels(la, x, y, a2);
    CHECK(is_perm(a2, N));
    CHECK(memcmp(a1, a2, sizeof a1) != 0);    /* next epoch reshuffled */
    ql_loader_reset(lb);
    epoch_labels(lb, x, y, b1);
    CHECK(!memcmp(a2, b1, sizeof a2));
    ql_loader_free(la);
    ql_loader_free(lb);
    ql_loader_free(lc);
    ql_tensor_free(x);
    ql_tensor_free(y);
    ql_dataset_free(d);
}

TEST(loader_flip_rows) {
    enum { H = 4, W = 5, C = 2, N = 40 };
    ql_dataset *d = synth(N, H, W, C);
    ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 0, NULL), *y = ql_tensor_new(QL_DTYPE_S32, 0, NULL);
    ql_loader_opts o;
    ql_loader_opts_default(&o);
    o.batch = N; o.flip = 1; o.seed = 5;
    ql_loader *l = ql_loader_new(d, &o);
    CHECK(ql_loader_next(l, x, y) == 1);
    int flipped = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        int lab = ((int32_t *)y->data)[i], fl = -1;
        for (int yy = 0; yy < H; yy++) {
            int same = 1, mirror = 1;
            for (int xx = 0; xx < W; xx++)
                for (int c = 0; c < C; c++) {
                    float v = ql_f32(x)[((i * H + yy) * W + xx) * C + c] * 255.0f;
                    same &= fabsf(v - (float)pix(lab, yy, xx, c)) < 1e-3f;
                    mirror &= fabsf(v - (float)pix(lab, yy, W - 1 - xx, c)) < 1e-3f;
                }
            if (!same && !mirror) bad++;
            int this_fl = mirror && !same;
            if (fl < 0) fl = this_fl;
            else if (fl != this_fl) bad++;   /* the whole image flips, not single rows */
        }
        flipped += fl;
    }
    CHECK(bad == 0);
    CHECK(flipped > 5 && flipped < N - 5);
    ql_loader_free(l);
    ql_tensor_free(x);
    ql_tensor_free(y);
    ql_dataset_free(d);
}

/* Does out (H,W,C), scaled back to u8, equal the padded crop at (dy,dx), mirrored or not? */
static int matches_crop(const float *out, int64_t lab, int H, int W, int C, int p, int dy, int dx, int fl) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sy = y + dy - p, sx = (fl ? W - 1 - x : x) + dx - p;
            for (int c = 0; c < C; c++) {
                int want = sy < 0 || sy >= H || sx < 0 || sx >= W ? 0 : pix(lab, sy, sx, c);
                if (fabsf(out[(y * W + x) * C + c] * 255.0f - (float)want) > 1e-3f) return 0;
            }
        }
    return 1;
}

TEST(loader_crop_and_threads) {
    enum { H = 32, W = 32, C = 3, N = 70, P = 4 };
    ql_dataset *d = synth(N, H, W, C);
    ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 0, NULL), *y = ql_tensor_new(QL_DTYPE_S32, 0, NULL);
    ql_tensor *x1 = ql_tensor_new(QL_DTYPE_F32, 0, NULL), *y1 = ql_tensor_new(QL_DTYPE_S32, 0, NULL);
    ql_loader_opts o;
    ql_loader_opts_default(&o);
    o.batch = 64; o.flip = 1; o.crop_pad = P; o.shuffle = 1; o.seed = 11;
    ql_loader *l = ql_loader_new(d, &o), *l1 = ql_loader_new(d, &o);
    int unmatched = 0, shifted = 0;
    for (int b = 0; b < 2; b++) {
        CHECK(ql_loader_next(l, x, y) == 1);            /* 2 threads, large enough to go parallel */
        ql_threads_set(1);
        CHECK(ql_loader_next(l1, x1, y1) == 1);
        ql_threads_set(2);
        CHECK(ql_tensor_same_shape(x, x1) && !memcmp(x->data, x1->data, ql_tensor_bytes(x)));
        CHECK(!memcmp(y->data, y1->data, ql_tensor_bytes(y)));
        for (int64_t i = 0; i < x->shape[0]; i++) {
            const float *img = ql_f32(x) + i * H * W * C;
            int64_t lab = ((int32_t *)y->data)[i];
            int found = 0;
            for (int dy = 0; dy <= 2 * P && !found; dy++)
                for (int dx = 0; dx <= 2 * P && !found; dx++)
                    for (int fl = 0; fl < 2 && !found; fl++)
                        if (matches_crop(img, lab, H, W, C, P, dy, dx, fl)) {
                            found = 1;
                            shifted += dy != P || dx != P;
                        }
            unmatched += !found;
        }
    }
    CHECK(x->shape[0] == N - 64);
    CHECK(unmatched == 0);
    CHECK(shifted > 40);
    CHECK(ql_loader_next(l, x, y) == 0);
    ql_loader_free(l);
    ql_loader_free(l1);
    ql_tensor_free(x);
    ql_tensor_free(y);
    ql_tensor_free(x1);
    ql_tensor_free(y1);
    ql_dataset_free(d);
}
