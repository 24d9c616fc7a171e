/* INT8 conv by live-tap regions (ops/conv_regions.h): each region's W on its
 * live taps as its own packed GEMM. Exact integer arithmetic and the same
 * epilogue, so the outputs are bit for bit those of qconv's plain im2col
 * path; qconv takes this one from a batch of a few images where regions
 * save at least a tenth of the MACs. */
#include <omp.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qops/qops_internal.h"
#include "ops/conv_regions.h"

#define WS_BUDGET (1 << 20)   /* gathered rows + their outputs, per chunk */

struct ql_qconv_regions {
    ql_conv2d_shape s;
    ql_conv_regions g;
    ql_qgemm_packed *gemm[QL_CONV_MAX_BANDS * QL_CONV_MAX_BANDS];   /* W on each region's taps: (OC, k) */
    int64_t ks[QL_CONV_MAX_BANDS * QL_CONV_MAX_BANDS];              /* gathered row bytes: k rounded up */
};

void ql_qconv_regions_free(ql_qconv_regions *q) {
    if (!q) return;
    for (int i = 0; i < q->g.n; i++) ql_qgemm_packed_free(q->gemm[i]);
    ql_conv_regions_release(&q->g);
    ql_free(q);
}

ql_qconv_regions *ql_qconv_regions_new(const ql_conv2d_shape *s, const int8_t *w, ql_isa isa, int a_max,
                                       int *failed) {
    *failed = 0;
    ql_qconv_regions *q = ql_calloc(sizeof *q);
    if (!q) { *failed = 1; return NULL; }
    q->s = *s;
    int got = ql_conv_regions_init(s, &q->g);
    if (got <= 0) {
        *failed = got < 0;
        ql_free(q);
        return NULL;
    }
    int8_t *wr = ql_malloc((size_t)s->oc * s->kh * s->kw * s->c);
    if (!wr) goto fail;
    for (int i = 0; i < q->g.n; i++) {
        const ql_conv_region *r = &q->g.r[i];
        ql_conv_region_weights(s, r, w, 1, wr);
        if (!(q->gemm[i] = ql_qgemm_pack(wr, s->oc, (int)r->k, isa, a_max))) goto fail;
        int64_t a = ql_qgemm_packed_isa(q->gemm[i]) == QL_ISA_AMX ? 64 : 4;
        q->ks[i] = (r->k + a - 1) / a * a;
    }
    ql_free(wr);
    return q;
fail:
    *failed = 1;
    ql_free(wr);
    ql_qconv_regions_free(q);
    return NULL;
}

static int64_t chunk_of(const ql_qconv_regions *q, int i, int n, int64_t out_row) {
    int64_t total = (int64_t)n * q->g.r[i].npos, c = WS_BUDGET / (q->ks[i] + out_row);
    if (c < 64) c = 64;
    return c < total ? c : total;
}

static size_t cols_bytes(const ql_qconv_regions *q, int i, int64_t chunk) {
    return ((size_t)(chunk * q->ks[i]) + 63) & ~(size_t)63;
}

// one thread's (or the only) workspace: the largest region's chunk of n images
static size_t slot_bytes(const ql_qconv_regions *q, int n, size_t es) {
    size_t most = 0;
    const int64_t out_row = (int64_t)q->s.oc * (int64_t)es;
    for (int i = 0; i < q->g.n; i++) {
        int64_t c = chunk_of(q, i, n, out_row);
        size_t b = cols_bytes(q, i, c) + (((size_t)(c * out_row) + 63) & ~(size_t)63);
        if (b > most) most = b;
    }
    return most;
}

size_t ql_qconv_regions_workspace(const ql_qconv_regions *q, int n, size_t es) {
    int T = ql_conv_regions_threads(&q->s, n);
    return (size_t)T * slot_bytes(q, (n + T - 1) / T, es);
}

// images [i0, i1) through every region, in ws
static void run_images(const ql_qconv_regions *q, const ql_qgemm_epilogue *e, int f32_out, int i0, int i1,
                       const uint8_t *x, void *y, char *ws, int par) {
    const ql_conv2d_shape *s = &q->s;
    const size_t out_row = (size_t)s->oc * (f32_out ? 4 : 1);
    for (int i = 0; i < q->g.n; i++) {
        const ql_conv_region *r = &q->g.r[i];
        const int64_t first = (int64_t)i0 * r->npos, total = (int64_t)(i1 - i0) * r->npos;
        const int64_t chunk = chunk_of(q, i, i1 - i0, (int64_t)out_row);
        uint8_t *cols = (uint8_t *)ws;
        char *tmp = ws + cols_bytes(q, i, chunk);
        for (int64_t r0 = 0; r0 < total; r0 += chunk) {
            int64_t nr = total - r0 < chunk ? total - r0 : chunk;
            ql_conv_region_gather(s, r, x, 1, first + r0, nr, cols, q->ks[i], par);
            if (f32_out) ql_qgemm_f32(q->gemm[i], nr, cols, q->ks[i], (float *)tmp, s->oc, e);
            else ql_qgemm_u8(q->gemm[i], nr, cols, q->ks[i], (uint8_t *)tmp, s->oc, e);
            ql_conv_region_scatter(s, r, tmp, out_row, first + r0, nr, y, par);
        }
    }
}

void ql_qconv_regions_forward(const ql_qconv_regions *q, const ql_qgemm_epilogue *e0, int f32_out, int n,
                              const uint8_t *x, void *y, void *ws) {
    ql_qgemm_epilogue e = *e0;
    e.a_padded = 1;   /* gathered rows are zero up to ks */
    const int T = ql_conv_regions_threads(&q->s, n);
    if (T <= 1) { run_images(q, &e, f32_out, 0, n, x, y, ws, 1); return; }
    const size_t slot = slot_bytes(q, (n + T - 1) / T, f32_out ? 4 : 1);
    #pragma omp parallel num_threads(T)
    {
        const int t = omp_get_thread_num();
        run_images(q, &e, f32_out, (int)((int64_t)t * n / T), (int)((int64_t)(t + 1) * n / T), x, y,
                   (char *)ws + (size_t)t * slot, 0);
    }
}
