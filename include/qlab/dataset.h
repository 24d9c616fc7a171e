/* Datasets held in memory as u8 images (N,H,W,C) and int32 labels, and
 * loaders that turn them into normalized f32 batches. */
#ifndef QLAB_DATASET_H
#define QLAB_DATASET_H
#include <stdint.h>
#include "tensor.h"
#include "rng.h"

typedef struct ql_dataset {
    char *name;
    int64_t n;
    int h, w, c;
    uint8_t *images;      /* (N,H,W,C) */
    int32_t *labels;      /* (N) */
    int nclasses;
} ql_dataset;

#define QL_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* MNIST-format IDX pair, gzipped or plain (zlib reads both). */
ql_status ql_dataset_idx(const char *images_path, const char *labels_path, ql_dataset **out);
/* split "train" | "test"; dir NULL = QL_FASHION_MNIST_DIR. Tries the .gz
 * names and the plain names. */
ql_status ql_dataset_fashion_mnist(const char *dir, const char *split, ql_dataset **out);
/* CIFAR-10 binary version: data_batch_{1..5}.bin / test_batch.bin in dir. */
ql_status ql_dataset_cifar10(const char *dir, const char *split, ql_dataset **out);
/* Copy of [start, start+count). */
ql_status ql_dataset_subset(const ql_dataset *d, int64_t start, int64_t count, ql_dataset **out);
void      ql_dataset_free(ql_dataset *d);

typedef struct {
    int batch;              /* >= 1 */
    int shuffle;            /* reshuffle at every reset (epoch) */
    int64_t max_batches;    /* 0 = all */
    int drop_last;
    int nnorm;              /* 0 = x/255 only; 1 = same mean/std for all channels; c = per channel */
    float mean[4], std[4];  /* applied to x/255 */
    uint64_t seed;          /* shuffle and augmentation stream */
    int crop_pad;           /* random crop after zero padding by this many pixels (0 = off) */
    int flip;               /* random horizontal flip */
} ql_loader_opts;

void ql_loader_opts_default(ql_loader_opts *o);   /* batch 32, no shuffle, nnorm 0 */

typedef struct ql_loader ql_loader;
/* The dataset must outlive the loader. */
ql_loader *ql_loader_new(const ql_dataset *d, const ql_loader_opts *o);
void       ql_loader_free(ql_loader *l);
void       ql_loader_reset(ql_loader *l);          /* start an epoch (reshuffles) */
/* Next batch: x resized to (B,H,W,C) f32, labels to (B) s32. Returns 1 if a
 * batch was produced, 0 at the end of the epoch, -1 (message set) if a
 * tensor could not be resized. */
int        ql_loader_next(ql_loader *l, ql_tensor *x, ql_tensor *labels);
int64_t    ql_loader_num_batches(const ql_loader *l);
int64_t    ql_loader_num_samples(const ql_loader *l);
const ql_dataset *ql_loader_dataset(const ql_loader *l);
const ql_loader_opts *ql_loader_options(const ql_loader *l);
/* The loader's own generator (shuffle and augmentation): checkpoints save and
 * restore it so a resumed run sees the same batches. */
ql_rng    *ql_loader_rng(ql_loader *l);

#endif
