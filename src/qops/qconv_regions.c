/* Output regions of an im2col conv: the output pixels that read the same
 * rectangle of live taps. On small images most pixels sit on a border, and
 * im2col multiplies their padding taps by W like any other: a 3x3 conv on
 * 2x2 outputs does 9 taps per pixel where 4 are live, on 4x4 outputs 9
 * where 6.25 are. Each region here has W restricted to its rectangle (its
 * own packed GEMM) and gathers only the live taps of its pixels, straight
 * from the unpadded input, so the padding is neither read nor multiplied.
 * Exact integer arithmetic and the same epilogue: the outputs are bit for
 * bit those of the plain im2col path.
 *
 * Worth it only with enough rows per region to reuse each region's W (the
 * regions' W together are larger than the conv's): qconv takes this path
 * from a batch of REGION_MIN_BATCH images, and only when regions save at
 * least a tenth of the MACs. */
#include <omp.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qops/qops_internal.h"

#define MAX_BANDS 6          /* per dimension: more means a large kernel on a tiny image */
#define MIN_SAVING 0.10      /* fraction of the conv's MACs */
#define WS_BUDGET (1 << 20)  /* gathered rows + their outputs, per chunk */

typedef struct {
    int kh0, nkh, kw0, nkw;  /* live taps [kh0, kh0 + nkh) x [kw0, kw0 + nkw) */
    int npos;                /* output pixels of one image in this region */
    int32_t *pos;            /* their indices oh * OW + ow */
    int64_t k, ks;           /* nkh * nkw * C, and the gathered row stride */
    ql_qgemm_packed *gemm;   /* W on the live taps: (OC, k) */
} region;

struct ql_qconv_regions {
    ql_conv2d_shape s;
    int nreg;
    region r[MAX_BANDS * MAX_BANDS];
};

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
        if (nb == MAX_BANDS) return 0;
        b[nb++] = (band){lo, hi - lo, o, 1};
    }
    return nb;
}

void ql_qconv_regions_free(ql_qconv_regions *q) {
    if (!q) return;
    for (int i = 0; i < q->nreg; i++) {
        ql_free(q->r[i].pos);
        ql_qgemm_packed_free(q->r[i].gemm);
    }
    ql_free(q);
}

ql_qconv_regions *ql_qconv_regions_new(const ql_conv2d_shape *s, const int8_t *w, ql_isa isa, int a_max,
                                       int *failed) {
    *failed = 0;
    if (s->groups != 1 || s->dh != 1 || s->dw != 1) return NULL;
    band bh[MAX_BANDS], bw[MAX_BANDS];
    int nh = bands_of(s->h, s->oh, s->kh, s->sh, s->ph, bh), nw = bands_of(s->w, s->ow, s->kw, s->sw, s->pw, bw);
    if (!nh || !nw || nh * nw == 1) return NULL;
    double all = (double)s->oh * s->ow * s->kh * s->kw, live = 0;
    for (int i = 0; i < nh; i++)
        for (int j = 0; j < nw; j++) live += (double)bh[i].no * bw[j].no * bh[i].n * bw[j].n;
    if (live > (1 - MIN_SAVING) * all) return NULL;

    ql_qconv_regions *q = ql_calloc(sizeof *q);
    int8_t *wr = ql_malloc((size_t)s->oc * s->kh * s->kw * s->c);
    if (!q || !wr) goto fail;
    q->s = *s;
    const int64_t krow = (int64_t)s->kw * s->c;
    for (int i = 0; i < nh; i++)
        for (int j = 0; j < nw; j++) {
            region *r = &q->r[q->nreg++];
            r->kh0 = bh[i].lo; r->nkh = bh[i].n; r->kw0 = bw[j].lo; r->nkw = bw[j].n;
            r->npos = bh[i].no * bw[j].no;
            r->k = (int64_t)r->nkh * r->nkw * s->c;
            if (!(r->pos = ql_malloc(sizeof(int32_t) * r->npos))) goto fail;
            int p = 0;
            for (int oh = bh[i].o0; oh < bh[i].o0 + bh[i].no; oh++)
                for (int ow = bw[j].o0; ow < bw[j].o0 + bw[j].no; ow++) r->pos[p++] = oh * s->ow + ow;
            const int64_t run = (int64_t)r->nkw * s->c;   // OHWI: each kernel row's live taps are one run
            for (int o = 0; o < s->oc; o++)
                for (int t = 0; t < r->nkh; t++)
                    memcpy(wr + (o * r->nkh + t) * run,
                           w + ((int64_t)o * s->kh + r->kh0 + t) * krow + (int64_t)r->kw0 * s->c, (size_t)run);
            if (!(r->gemm = ql_qgemm_pack(wr, s->oc, (int)r->k, isa, a_max))) goto fail;
            int64_t a = ql_qgemm_packed_isa(r->gemm) == QL_ISA_AMX ? 64 : 4;
            r->ks = (r->k + a - 1) / a * a;
        }
    ql_free(wr);
    return q;
fail:
    *failed = 1;
    ql_free(wr);
    ql_qconv_regions_free(q);
    return NULL;
}

static int64_t chunk_of(const region *r, int n, int64_t out_row) {
    int64_t total = (int64_t)n * r->npos, c = WS_BUDGET / (r->ks + out_row);
    if (c < 64) c = 64;
    return c < total ? c : total;
}

size_t ql_qconv_regions_workspace(const ql_qconv_regions *q, int n, size_t es) {
    size_t most = 0;
    const int64_t out_row = (int64_t)q->s.oc * (int64_t)es;
    for (int i = 0; i < q->nreg; i++) {
        const region *r = &q->r[i];
        int64_t c = chunk_of(r, n, out_row);
        size_t b = (((size_t)(c * r->ks) + 63) & ~(size_t)63) + (size_t)(c * out_row);
        if (b > most) most = b;
    }
    return most;
}

// rows [r0, r0 + nr) of region r (row = image * npos + pixel) -> cols: their live taps
static void gather(const ql_qconv_regions *q, const region *r, const uint8_t *x, int64_t r0, int64_t nr,
                   uint8_t *cols) {
    const ql_conv2d_shape *s = &q->s;
    const int64_t run = (int64_t)r->nkw * s->c, irow = (int64_t)s->w * s->c;
    #pragma omp parallel for schedule(static) if (nr * r->k > (1 << 16))
    for (int64_t i = 0; i < nr; i++) {
        int64_t row = r0 + i, img = row / r->npos;
        int p = r->pos[row % r->npos], oh = p / s->ow, ow = p % s->ow;
        const uint8_t *src = x + ((img * s->h + oh * s->sh - s->ph + r->kh0) * s->w + ow * s->sw - s->pw + r->kw0) *
                                     (int64_t)s->c;
        uint8_t *dst = cols + i * r->ks;
        for (int t = 0; t < r->nkh; t++, src += irow, dst += run) ql_copy_bytes(dst, src, run);
        for (int64_t j = r->k; j < r->ks; j++) cols[i * r->ks + j] = 0;   /* the pad: defined bytes */
    }
}

void ql_qconv_regions_forward(const ql_qconv_regions *q, const ql_qgemm_epilogue *e0, int f32_out, int n,
                              const uint8_t *x, void *y, void *ws) {
    const ql_conv2d_shape *s = &q->s;
    const size_t es = f32_out ? 4 : 1, out_row = (size_t)s->oc * es;
    const int64_t per_img = (int64_t)s->oh * s->ow;
    ql_qgemm_epilogue e = *e0;
    e.a_padded = 1;
    for (int i = 0; i < q->nreg; i++) {
        const region *r = &q->r[i];
        const int64_t total = (int64_t)n * r->npos, chunk = chunk_of(r, n, (int64_t)out_row);
        uint8_t *cols = ws;
        char *tmp = (char *)ws + (((size_t)(chunk * r->ks) + 63) & ~(size_t)63);
        for (int64_t r0 = 0; r0 < total; r0 += chunk) {
            int64_t nr = total - r0 < chunk ? total - r0 : chunk;
            gather(q, r, x, r0, nr, cols);
            if (f32_out) ql_qgemm_f32(r->gemm, nr, cols, r->ks, (float *)tmp, s->oc, &e);
            else ql_qgemm_u8(r->gemm, nr, cols, r->ks, (uint8_t *)tmp, s->oc, &e);
            #pragma omp parallel for schedule(static) if (nr * (int64_t)out_row > (1 << 17))
            for (int64_t j = 0; j < nr; j++) {   // each output row to its pixel
                int64_t row = r0 + j;
                memcpy((char *)y + (size_t)(row / r->npos * per_img + r->pos[row % r->npos]) * out_row,
                       tmp + (size_t)j * out_row, out_row);
            }
        }
    }
}
