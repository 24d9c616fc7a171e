/* Output regions of a conv by live taps: geometry, weights, gather and
 * scatter (the why is in conv_regions.h). */
#include <omp.h>
#include <string.h>
#include "qlab/alloc.h"
#include "ops/conv_regions.h"
#include "ops/copy_bytes.h"

#define MIN_SAVING 0.10   /* fraction of the conv's MACs the regions must skip */

typedef struct { int lo, n, o0, no; } band;   /* taps [lo, lo + n) for outputs [o0, o0 + no) */

/* The live taps of each output index along one dimension (dilation 1: a
 * contiguous run), as runs of outputs with the same taps. Returns the number
 * of bands, 0 when some output reads only padding or there are too many. */
static int bands_of(int in, int out, int k, int st, int pad, band *b) {
    int nb = 0;
    for (int o = 0; o < out; o++) {
        int first = o * st - pad, lo = first < 0 ? -first : 0, hi = in - first < k ? in - first : k;
        if (hi <= lo) return 0;
        if (nb && b[nb - 1].lo == lo && b[nb - 1].n == hi - lo) { b[nb - 1].no++; continue; }
        if (nb == QL_CONV_MAX_BANDS) return 0;
        b[nb++] = (band){lo, hi - lo, o, 1};
    }
    return nb;
}

void ql_conv_regions_release(ql_conv_regions *g) {
    for (int i = 0; i < g->n; i++) ql_free(g->r[i].pos);
    g->n = 0;
}

int ql_conv_regions_threads(const ql_conv2d_shape *s, int n) {
    int T = omp_in_parallel() ? 1 : omp_get_max_threads();
    if ((double)n * s->oh * s->ow * s->oc * s->kh * s->kw * s->c < (1 << 20)) T = 1;
    return T > n ? n : T;
}

int ql_conv_regions_init(const ql_conv2d_shape *s, ql_conv_regions *g) {
    g->n = 0;
    /* a stem on 1..7 channels: the regions' K of a few dozen values make
     * GEMMs too small to pay (ResNet-18's 7x7 stem ran 11 % slower in
     * INT8, 29 % in FP32) */
    if (s->groups != 1 || s->dh != 1 || s->dw != 1 || s->c < 8) return 0;
    band bh[QL_CONV_MAX_BANDS], bw[QL_CONV_MAX_BANDS];
    int nh = bands_of(s->h, s->oh, s->kh, s->sh, s->ph, bh), nw = bands_of(s->w, s->ow, s->kw, s->sw, s->pw, bw);
    if (!nh || !nw || nh * nw == 1) return 0;
    double all = (double)s->oh * s->ow * s->kh * s->kw, live = 0;
    for (int i = 0; i < nh; i++)
        for (int j = 0; j < nw; j++) live += (double)bh[i].no * bw[j].no * bh[i].n * bw[j].n;
    if (live > (1 - MIN_SAVING) * all) return 0;
    for (int i = 0; i < nh; i++)
        for (int j = 0; j < nw; j++) {
            ql_conv_region *r = &g->r[g->n++];
            *r = (ql_conv_region){.kh0 = bh[i].lo, .nkh = bh[i].n, .kw0 = bw[j].lo, .nkw = bw[j].n,
                                  .npos = bh[i].no * bw[j].no};
            r->k = (int64_t)r->nkh * r->nkw * s->c;
            if (!(r->pos = ql_malloc(sizeof(int32_t) * r->npos))) { ql_conv_regions_release(g); return -1; }
            int p = 0;
            for (int oh = bh[i].o0; oh < bh[i].o0 + bh[i].no; oh++)
                for (int ow = bw[j].o0; ow < bw[j].o0 + bw[j].no; ow++) r->pos[p++] = oh * s->ow + ow;
        }
    return 1;
}

void ql_conv_region_weights(const ql_conv2d_shape *s, const ql_conv_region *r, const void *w, size_t es, void *dst) {
    const size_t krow = (size_t)s->kw * s->c * es, run = (size_t)r->nkw * s->c * es;   /* OHWI: one run per kernel row */
    const char *src = w;
    char *d = dst;
    for (int o = 0; o < s->oc; o++)
        for (int t = 0; t < r->nkh; t++, d += run)
            memcpy(d, src + ((size_t)o * s->kh + r->kh0 + t) * krow + (size_t)r->kw0 * s->c * es, run);
}

static inline void gather_row(const ql_conv2d_shape *s, const ql_conv_region *r, const char *x, size_t es,
                              int64_t rr, char *dst, size_t row) {
    const size_t run = (size_t)r->nkw * s->c * es, irow = (size_t)s->w * s->c * es, used = (size_t)r->k * es;
    int64_t img = rr / r->npos;
    int p = r->pos[rr % r->npos], oh = p / s->ow, ow = p % s->ow;
    const char *src = x + (((size_t)img * s->h + oh * s->sh - s->ph + r->kh0) * s->w +
                           (size_t)(ow * s->sw - s->pw + r->kw0)) * s->c * es;
    if (row > used) {   /* the pad: defined bytes, one word when short (before the runs overwrite its start) */
        if (row - used <= 8 && row >= 8) { uint64_t z = 0; memcpy(dst + row - 8, &z, 8); }
        else memset(dst + used, 0, row - used);
    }
    for (int t = 0; t < r->nkh; t++, src += irow, dst += run)
        ql_copy_bytes((uint8_t *)dst, (const uint8_t *)src, (int64_t)run);
}

void ql_conv_region_gather(const ql_conv2d_shape *s, const ql_conv_region *r, const void *x, size_t es, int64_t r0,
                           int64_t nr, void *cols, int64_t ks, int par) {
    const size_t row = (size_t)ks * es;
    if (par && nr * r->k > (1 << 16)) {
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < nr; i++) gather_row(s, r, x, es, r0 + i, (char *)cols + (size_t)i * row, row);
    } else {
        for (int64_t i = 0; i < nr; i++) gather_row(s, r, x, es, r0 + i, (char *)cols + (size_t)i * row, row);
    }
}

void ql_conv_region_scatter(const ql_conv2d_shape *s, const ql_conv_region *r, const void *tmp, size_t row_bytes,
                            int64_t r0, int64_t nr, void *y, int par) {
    const int64_t per_img = (int64_t)s->oh * s->ow;
    #pragma omp parallel for schedule(static) if (par && nr * (int64_t)row_bytes > (1 << 17))
    for (int64_t j = 0; j < nr; j++) {
        int64_t rr = r0 + j;
        memcpy((char *)y + (size_t)(rr / r->npos * per_img + r->pos[rr % r->npos]) * row_bytes,
               (const char *)tmp + (size_t)j * row_bytes, row_bytes);
    }
}
