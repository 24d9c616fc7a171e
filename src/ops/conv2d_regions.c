/* FP32 inference conv by live-tap regions (ops/conv_regions.h): each
 * region's W restricted to its taps, then im2col of the live taps only and
 * sgemm, the bias, and the output rows back to their pixels. Not the same
 * bits as a conv over every tap (the sums skip the zero products and run in
 * another order): within float rounding of it, as the tests check. */
#include <omp.h>
#include <string.h>
#include "qlab/alloc.h"
#include "ops/conv_regions.h"
#include "ops/ops_internal.h"

#define WS_BUDGET (1 << 19)     /* floats of gathered rows + outputs per chunk */

struct ql_conv_fregions {
    ql_conv2d_shape s;          /* the geometry's shape (n = 1) */
    int worth;                  /* 0: regions would not save enough here */
    ql_conv_regions g;
    float *w;                   /* every region's W, one after the other: (OC, k) each */
    const float *wsrc;          /* the weight and key it was cut from */
    uint64_t wkey;
};

void ql_conv2d_regions_free(ql_conv_fregions *f) {
    if (!f) return;
    ql_conv_regions_release(&f->g);
    ql_free(f->w);
    ql_free(f);
}

static int same_geometry(const ql_conv2d_shape *a, const ql_conv2d_shape *b) {
    return a->h == b->h && a->w == b->w && a->c == b->c && a->oc == b->oc && a->kh == b->kh && a->kw == b->kw &&
           a->sh == b->sh && a->sw == b->sw && a->ph == b->ph && a->pw == b->pw && a->dh == b->dh &&
           a->dw == b->dw && a->groups == b->groups;
}

static int64_t chunk_of(const ql_conv_region *r, int n, int oc) {
    int64_t total = (int64_t)n * r->npos, c = WS_BUDGET / (r->k + oc);
    if (c < 64) c = 64;
    return c < total ? c : total;
}

// floats of one thread's (or the only) workspace: the largest region's chunk of n images
static size_t slot_floats(const ql_conv_regions *g, int n, int oc) {
    size_t most = 0;
    for (int i = 0; i < g->n; i++) {
        size_t b = (size_t)chunk_of(&g->r[i], n, oc) * (size_t)(g->r[i].k + oc);
        b = (b + 15) & ~(size_t)15;   /* slots a cache line apart */
        if (b > most) most = b;
    }
    return most;
}

/* The regions of s, (re)built when the geometry moved; NULL when they are
 * not worth it (*err set on out of memory). */
static ql_conv_fregions *geometry(ql_conv_fregions **st, const ql_conv2d_shape *s, int *err) {
    ql_conv_fregions *f = *st;
    *err = 0;
    if (f && !same_geometry(&f->s, s)) { ql_conv2d_regions_free(f); f = *st = NULL; }
    if (!f) {
        if (!(f = ql_calloc(sizeof *f))) { *err = 1; return NULL; }
        f->s = *s;
        f->s.n = 1;
        int got = ql_conv_regions_init(s, &f->g);
        if (got < 0) { ql_free(f); *err = 1; return NULL; }
        f->worth = got;
        *st = f;
    }
    return f->worth ? f : NULL;
}

/* ... and the regions' weights cut again when the weight moved */
static ql_conv_fregions *prepare(ql_conv_fregions **st, const ql_conv2d_shape *s, const float *w, uint64_t wkey,
                                 int *err) {
    ql_conv_fregions *f = geometry(st, s, err);
    if (!f) return NULL;
    if (!f->w || f->wsrc != w || f->wkey != wkey) {
        size_t total = 0;
        for (int i = 0; i < f->g.n; i++) total += (size_t)s->oc * f->g.r[i].k;
        if (!f->w && !(f->w = ql_malloc(sizeof(float) * total))) { *err = 1; return NULL; }
        float *d = f->w;
        for (int i = 0; i < f->g.n; i++) {
            ql_conv_region_weights(s, &f->g.r[i], w, sizeof(float), d);
            d += (size_t)s->oc * f->g.r[i].k;
        }
        f->wsrc = w;
        f->wkey = wkey;
    }
    return f;
}

size_t ql_conv2d_regions_workspace(ql_conv_fregions **st, const ql_conv2d_shape *s) {
    int err;
    ql_conv_fregions *f = geometry(st, s, &err);
    if (!f) return 0;   /* out of memory: the caller takes another path */
    const int T = ql_conv_regions_threads(s, s->n);
    return (size_t)T * slot_floats(&f->g, (s->n + T - 1) / T, s->oc);
}

// images [i0, i1) through every region, in ws
static void run_images(const ql_conv_fregions *f, const ql_conv2d_shape *s, int i0, int i1, const float *x,
                       const float *b, float *y, float *ws, int par) {
    const float *wr = f->w;
    for (int i = 0; i < f->g.n; i++) {
        const ql_conv_region *r = &f->g.r[i];
        const int64_t first = (int64_t)i0 * r->npos, total = (int64_t)(i1 - i0) * r->npos;
        const int64_t chunk = chunk_of(r, i1 - i0, s->oc);
        float *cols = ws, *tmp = ws + chunk * r->k;
        for (int64_t r0 = 0; r0 < total; r0 += chunk) {
            int64_t nr = total - r0 < chunk ? total - r0 : chunk;
            ql_conv_region_gather(s, r, x, sizeof(float), first + r0, nr, cols, r->k, par);
            ql_ops_gemm_nt(nr, s->oc, (int)r->k, cols, r->k, wr, r->k, tmp, s->oc);   // (nr,k) W_r^T
            if (b) ql_ops_add_rows(nr, s->oc, b, tmp, s->oc);
            ql_conv_region_scatter(s, r, tmp, sizeof(float) * (size_t)s->oc, first + r0, nr, y, par);
        }
        wr += (size_t)s->oc * r->k;
    }
}

int ql_conv2d_regions_forward(ql_conv_fregions **st, const ql_conv2d_shape *s, const float *x, const float *w,
                              uint64_t wkey, const float *b, float *y, float *ws) {
    int err;
    ql_conv_fregions *f = prepare(st, s, w, wkey, &err);
    if (!f) return err ? -1 : 0;
    const int T = ql_conv_regions_threads(s, s->n);
    if (T <= 1) { run_images(f, s, 0, s->n, x, b, y, ws, 1); return 1; }
    const size_t slot = slot_floats(&f->g, (s->n + T - 1) / T, s->oc);
    #pragma omp parallel num_threads(T)
    {
        const int t = omp_get_thread_num();
        run_images(f, s, (int)((int64_t)t * s->n / T), (int)((int64_t)(t + 1) * s->n / T), x, b, y,
                   ws + (size_t)t * slot, 0);
    }
    return 1;
}
