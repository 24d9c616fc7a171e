/* FP32 inference conv by live-tap regions (ops/conv_regions.h): each
 * region's W restricted to its taps, then im2col of the live taps only and
 * sgemm, the bias, and the output rows back to their pixels. Not the same
 * bits as a conv over every tap (the sums skip the zero products and run in
 * another order): within float rounding of it, as the tests check. */
#include <string.h>
#include "qlab/alloc.h"
#include "ops/conv_regions.h"
#include "ops/ops_internal.h"

#define MIN_SAVING 0.10         /* fraction of the conv's MACs */
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

static int64_t chunk_of(const ql_conv_region *r, const ql_conv2d_shape *s) {
    int64_t total = (int64_t)s->n * r->npos, c = WS_BUDGET / (r->k + s->oc);
    if (c < 64) c = 64;
    return c < total ? c : total;
}

/* The regions of s, (re)built when the geometry or the weight moved;
 * NULL when they are not worth it (*err set on out of memory). */
static ql_conv_fregions *prepare(ql_conv_fregions **st, const ql_conv2d_shape *s, const float *w, uint64_t wkey,
                                 int *err) {
    ql_conv_fregions *f = *st;
    *err = 0;
    if (f && !same_geometry(&f->s, s)) { ql_conv2d_regions_free(f); f = *st = NULL; }
    if (!f) {
        if (!(f = ql_calloc(sizeof *f))) { *err = 1; return NULL; }
        f->s = *s;
        f->s.n = 1;
        int got = ql_conv_regions_init(s, MIN_SAVING, &f->g);
        if (got < 0) { ql_free(f); *err = 1; return NULL; }
        f->worth = got;
        *st = f;
    }
    if (!f->worth) return NULL;
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
    ql_conv_fregions *f = *st;
    if (!f || !f->worth || !same_geometry(&f->s, s)) {   /* sized before prepare: the worst case */
        ql_conv_regions g;
        if (ql_conv_regions_init(s, MIN_SAVING, &g) <= 0) return 0;
        size_t most = 0;
        for (int i = 0; i < g.n; i++) {
            size_t b = (size_t)chunk_of(&g.r[i], s) * (size_t)(g.r[i].k + s->oc);
            if (b > most) most = b;
        }
        ql_conv_regions_release(&g);
        return most;
    }
    size_t most = 0;
    for (int i = 0; i < f->g.n; i++) {
        size_t b = (size_t)chunk_of(&f->g.r[i], s) * (size_t)(f->g.r[i].k + s->oc);
        if (b > most) most = b;
    }
    return most;
}

int ql_conv2d_regions_forward(ql_conv_fregions **st, const ql_conv2d_shape *s, const float *x, const float *w,
                              uint64_t wkey, const float *b, float *y, float *ws) {
    int err;
    ql_conv_fregions *f = prepare(st, s, w, wkey, &err);
    if (!f) return err ? -1 : 0;
    const float *wr = f->w;
    for (int i = 0; i < f->g.n; i++) {
        const ql_conv_region *r = &f->g.r[i];
        const int64_t total = (int64_t)s->n * r->npos, chunk = chunk_of(r, s);
        float *cols = ws, *tmp = ws + chunk * r->k;
        for (int64_t r0 = 0; r0 < total; r0 += chunk) {
            int64_t nr = total - r0 < chunk ? total - r0 : chunk;
            ql_conv_region_gather(s, r, x, sizeof(float), r0, nr, cols, r->k, 1);
            ql_ops_gemm_nt(nr, s->oc, (int)r->k, cols, r->k, wr, r->k, tmp, s->oc);   // (nr,k) W_r^T
            if (b) ql_ops_add_rows(nr, s->oc, b, tmp, s->oc);
            ql_conv_region_scatter(s, r, tmp, sizeof(float) * (size_t)s->oc, r0, nr, y, 1);
        }
        wr += (size_t)s->oc * r->k;
    }
    return 1;
}
