/* Loader: u8 dataset -> normalized f32 (B,H,W,C) batches, with shuffling and
 * crop/flip augmentation. All random numbers of a batch are drawn serially
 * before the (parallel) fill, so results depend only on the seed. */
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/dataset.h"
#include "qlab/rng.h"

struct ql_loader {
    const ql_dataset *d;
    ql_loader_opts o;
    ql_rng rng;
    int64_t *order;     /* (N) sample indices in epoch order */
    int64_t pos;        /* next position in order */
    int64_t done;       /* batches produced this epoch */
    int *aug;           /* (batch, 3): crop dy, crop dx, flip for the current batch */
    float *lut;         /* (C, 256): u8 value -> normalized value, per channel */
};

void ql_loader_opts_default(ql_loader_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 32;
    for (int i = 0; i < 4; i++) o->std[i] = 1.0f;
}

static ql_status check_opts(const ql_dataset *d, const ql_loader_opts *o) {
    if (o->batch < 1) return ql_error(QL_EINVAL, "loader: batch %d must be >= 1", o->batch);
    if (o->max_batches < 0) return ql_error(QL_EINVAL, "loader: max_batches %lld < 0", (long long)o->max_batches);
    if (o->nnorm != 0 && o->nnorm != 1 && o->nnorm != d->c)
        return ql_error(QL_EINVAL, "loader: %d normalization values for %d channels (give 0, 1 or %d)", o->nnorm,
                        d->c, d->c);
    if (o->nnorm > 4) return ql_error(QL_EINVAL, "loader: at most 4 per-channel normalization values");
    for (int i = 0; i < o->nnorm; i++)
        if (!(o->std[i] > 0) && !(o->std[i] < 0)) return ql_error(QL_EINVAL, "loader: std[%d] is zero", i);
    if (o->crop_pad < 0 || o->crop_pad > 4096)
        return ql_error(QL_EINVAL, "loader: crop_pad %d out of range", o->crop_pad);
    return QL_OK;
}

ql_loader *ql_loader_new(const ql_dataset *d, const ql_loader_opts *o) {
    if (!d || !o) { ql_error(QL_EINVAL, "loader: NULL dataset or options"); return NULL; }
    if (check_opts(d, o)) return NULL;
    ql_loader *l = ql_calloc(sizeof *l);
    if (!l) return NULL;
    l->d = d;
    l->o = *o;
    ql_rng_seed(&l->rng, o->seed);
    l->order = ql_malloc(sizeof(int64_t) * (size_t)(d->n ? d->n : 1));
    l->aug = ql_malloc(sizeof(int) * 3 * (size_t)o->batch);
    l->lut = ql_malloc(sizeof(float) * 256 * (size_t)(d->c ? d->c : 1));
    if (!l->order || !l->aug || !l->lut) { ql_loader_free(l); return NULL; }
    for (int c = 0; c < d->c; c++) {
        int k = o->nnorm == 0 ? -1 : o->nnorm == 1 ? 0 : c;
        float mean = k < 0 ? 0.0f : o->mean[k], std = k < 0 ? 1.0f : o->std[k];
        for (int v = 0; v < 256; v++) l->lut[c * 256 + v] = ((float)v / 255.0f - mean) / std;
    }
    ql_loader_reset(l);
    return l;
}

void ql_loader_free(ql_loader *l) {
    if (!l) return;
    ql_free(l->order);
    ql_free(l->aug);
    ql_free(l->lut);
    ql_free(l);
}

void ql_loader_reset(ql_loader *l) {
    for (int64_t i = 0; i < l->d->n; i++) l->order[i] = i;
    if (l->o.shuffle) ql_rng_shuffle_i64(&l->rng, l->order, l->d->n);
    l->pos = 0;
    l->done = 0;
}

int64_t ql_loader_num_batches(const ql_loader *l) {
    int64_t n = l->d->n, b = l->o.batch;
    int64_t nb = n / b + (!l->o.drop_last && n % b ? 1 : 0);
    return l->o.max_batches > 0 && nb > l->o.max_batches ? l->o.max_batches : nb;
}

int64_t ql_loader_num_samples(const ql_loader *l) {
    int64_t s = ql_loader_num_batches(l) * l->o.batch;
    return s < l->d->n ? s : l->d->n;
}

const ql_dataset *ql_loader_dataset(const ql_loader *l) { return l->d; }
const ql_loader_opts *ql_loader_options(const ql_loader *l) { return &l->o; }
ql_rng *ql_loader_rng(ql_loader *l) { return &l->rng; }

/* One sample: crop window offset (dy,dx) into the zero-padded image, then an
 * optional mirror; out (H,W,C) f32. Pixels of the padding are u8 zero. */
static void fill_sample(const ql_loader *l, const uint8_t *src, const int *aug, float *out) {
    const int H = l->d->h, W = l->d->w, C = l->d->c, p = l->o.crop_pad;
    const float *lut = l->lut;
    for (int y = 0; y < H; y++) {
        int sy = y + aug[0] - p;
        for (int x = 0; x < W; x++) {
            int sx = (aug[2] ? W - 1 - x : x) + aug[1] - p;
            float *o = out + ((size_t)y * W + x) * C;
            if (sy < 0 || sy >= H || sx < 0 || sx >= W) {
                for (int c = 0; c < C; c++) o[c] = lut[c * 256];
            } else {
                const uint8_t *s = src + ((size_t)sy * W + sx) * C;
                for (int c = 0; c < C; c++) o[c] = lut[c * 256 + s[c]];
            }
        }
    }
}

int ql_loader_next(ql_loader *l, ql_tensor *x, ql_tensor *labels) {
    const ql_dataset *d = l->d;
    if (l->done >= ql_loader_num_batches(l) || l->pos >= d->n) return 0;
    int64_t b = d->n - l->pos < l->o.batch ? d->n - l->pos : l->o.batch;
    int64_t xs[4] = {b, d->h, d->w, d->c};
    x->dtype = QL_DTYPE_F32;          /* capacity is in bytes, so a dtype change is safe */
    labels->dtype = QL_DTYPE_S32;
    if (ql_tensor_resize(x, 4, xs) || ql_tensor_resize(labels, 1, &b)) return -1;
    const int p = l->o.crop_pad;
    for (int64_t i = 0; i < b; i++) {   /* serial draws: deterministic whatever the threads */
        int *a = l->aug + 3 * i;
        a[0] = a[1] = p;
        a[2] = 0;
        if (p) {
            a[0] = (int)ql_rng_below(&l->rng, 2 * (uint64_t)p + 1);
            a[1] = (int)ql_rng_below(&l->rng, 2 * (uint64_t)p + 1);
        }
        if (l->o.flip) a[2] = (int)ql_rng_below(&l->rng, 2);
    }
    const size_t img = (size_t)d->h * d->w * d->c;
    const int64_t *idx = l->order + l->pos;
    float *xo = ql_f32(x);
    int32_t *lo = labels->data;
    #pragma omp parallel for schedule(static) if (b * (int64_t)img >= 65536)
    for (int64_t i = 0; i < b; i++) {
        fill_sample(l, d->images + (size_t)idx[i] * img, l->aug + 3 * i, xo + (size_t)i * img);
        lo[i] = d->labels[idx[i]];
    }
    l->pos += b;
    l->done++;
    return 1;
}
