/* Quantized conv2d, NHWC u8 in, u8 (or f32) out. Three ways through:
 *   - depthwise (groups == C == OC): direct kernel (qconv_dw*.c);
 *   - 1x1, stride 1, no padding: x itself is the GEMM's A matrix;
 *   - otherwise u8 im2col (x_zero as padding, so padding contributes
 *     (x_zero - x_zero) * w = 0) into the workspace, in chunks of output rows
 *     so the workspace stays bounded whatever the batch, then the packed GEMM.
 * Weights are packed once here, per group; biases become s32 in accumulator
 * units and the requantization multipliers are computed once. */
#include <immintrin.h>
#include <omp.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qops/qops_internal.h"

#define WS_BUDGET (2 << 20)   /* im2col bytes per chunk */
#define MIN_CHUNK_ROWS 64

typedef enum { QCONV_IM2COL, QCONV_POINTWISE, QCONV_DW } qconv_kind;

struct ql_qconv {
    ql_conv2d_shape s;
    qconv_kind kind;
    int relu, f32_out;
    int32_t x_zero, y_zero, qmin, qmax;
    ql_isa isa;
    ql_qgemm_packed **gemm;   /* (groups) unless depthwise */
    int32_t *bias_q;          /* (OC) */
    float *mult;              /* (OC) */
    float *fbias;             /* (OC) float bias, f32 output only */
    int32_t *dw_w;            /* (KH*KW, C) depthwise weights */
    int16_t *dw_pair;         /* the AVX2 kernel's weight pairs (ql_qdw_pack_pairs), or NULL */
    int16_t *dw_pair32;       /* the AVX-512 kernel's, or NULL */
    ql_qdw3 *dw3;             /* 3x3 stride 1 or 2, u8 out, AVX-512 VNNI: flat rows (qconv_dw3_avx512.c), or NULL */
    int32_t *dw_off;
    uint8_t *dw_zrow;
    int64_t kstride;          /* im2col row bytes (kstride_for) */
    /* im2col by live-tap regions (qconv_regions.c): built on the first batch
     * that takes them (a model run only at batch 1 never holds their
     * weights: 14 MB for ResNet-18 on AVX2), from the conv's packed W */
    ql_qconv_regions *regions;
    int regions_state;        /* 0: not yet looked at, 1: built, -1: none (not worth it, or no memory) */
    int a_max;                /* the packing's activation range */
};

static int64_t kgroup(const ql_conv2d_shape *s) {
    return (int64_t)s->kh * s->kw * (s->c / s->groups);
}

/* im2col row stride: K rounded up to 4 bytes (64 for AMX, which reads rows
 * a tile of 64 bytes at a time), so the GEMM can read the rows in place
 * whatever K (the pad bytes meet zero weights). Kernel rows of at most 8
 * bytes (a stem on one channel) get 8 more: im2col then writes each of them
 * and the pad as whole 8-byte words (im2col_row) instead of byte by byte. */
static int64_t kstride_for(const ql_conv2d_shape *s, ql_isa gemm_isa) {
    int64_t a = gemm_isa == QL_ISA_AMX ? 64 : 4, k = kgroup(s);
    if ((int64_t)s->kw * (s->c / s->groups) <= 8) k += 8;
    return (k + a - 1) / a * a;
}

static int finite_pos(float v) { return v > 0 && v < INFINITY; }

void ql_qconv_free(ql_qconv *c) {
    if (!c) return;
    if (c->gemm)
        for (int g = 0; g < c->s.groups; g++) ql_qgemm_packed_free(c->gemm[g]);
    ql_free(c->gemm);
    ql_free(c->bias_q);
    ql_free(c->mult);
    ql_free(c->fbias);
    ql_free(c->dw_w);
    ql_free(c->dw_pair);
    ql_free(c->dw_pair32);
    ql_qdw3_free(c->dw3);
    ql_free(c->dw_off);
    ql_free(c->dw_zrow);
    ql_qconv_regions_free(c->regions);
    ql_free(c);
}

ql_qconv *ql_qconv_new(const ql_conv2d_shape *s, const ql_qconv_params *p, ql_isa isa) {
    if (!s || !p || !p->w || !p->w_scale) {
        ql_error(QL_EINVAL, "qconv: missing shape, weights or weight scales");
        return NULL;
    }
    ql_conv2d_shape sh = *s;
    sh.n = 1;
    if (ql_conv2d_shape_init(&sh) != QL_OK) return NULL;
    if (!finite_pos(p->x_scale) || (!p->f32_out && !finite_pos(p->y_scale))) {
        ql_error(QL_EINVAL, "qconv: scales must be positive and finite (x %g, y %g)",
                 (double)p->x_scale, (double)p->y_scale);
        return NULL;
    }
    if (p->x_zero < 0 || p->x_zero > 255 || p->y_zero < 0 || p->y_zero > 255 || p->relu < 0 || p->relu > 2) {
        ql_error(QL_EINVAL, "qconv: zero points must be in [0,255] (x %d, y %d), relu 0..2 (%d)",
                 p->x_zero, p->y_zero, p->relu);
        return NULL;
    }
    for (int o = 0; o < sh.oc; o++)
        if (!(p->w_scale[o] >= 0 && p->w_scale[o] < INFINITY)) {
            ql_error(QL_EINVAL, "qconv: weight scale %d is %g", o, (double)p->w_scale[o]);
            return NULL;
        }
    ql_qconv *c = ql_calloc(sizeof *c);
    if (!c) return NULL;
    c->s = sh;
    c->relu = p->relu; c->f32_out = p->f32_out;
    c->x_zero = p->x_zero; c->y_zero = p->y_zero;
    c->isa = isa > ql_isa_best() ? ql_isa_best() : isa;
    ql_qout_bounds(p->relu, p->y_scale, p->y_zero, p->y_qmin, p->y_qmax, &c->qmin, &c->qmax);
    const int oc = sh.oc, groups = sh.groups, ocg = oc / groups;
    const int64_t kg = kgroup(&sh);
    if (sh.groups == sh.c && sh.oc == sh.c) c->kind = QCONV_DW;
    else if (sh.kh == 1 && sh.kw == 1 && sh.sh == 1 && sh.sw == 1 && sh.ph == 0 && sh.pw == 0)
        c->kind = QCONV_POINTWISE;
    else c->kind = QCONV_IM2COL;

    c->bias_q = ql_malloc(sizeof(int32_t) * oc);
    c->mult = ql_malloc(sizeof(float) * oc);
    if (!c->bias_q || !c->mult) goto fail;
    if (p->f32_out && p->bias) {
        if (!(c->fbias = ql_malloc(sizeof(float) * oc))) goto fail;
        memcpy(c->fbias, p->bias, sizeof(float) * oc);
    }
    for (int o = 0; o < oc; o++) {
        // f32 output: y = acc * sx*sw + bias (exact float bias); u8: bias in s32
        c->mult[o] = p->f32_out ? p->x_scale * p->w_scale[o] : p->x_scale * p->w_scale[o] / p->y_scale;
        c->bias_q[o] = p->bias && !p->f32_out ? ql_quantize_bias(p->bias[o], p->x_scale, p->w_scale[o]) : 0;
    }
    if (c->kind == QCONV_DW) {
        int taps = sh.kh * sh.kw;
        if (!(c->dw_w = ql_malloc(sizeof(int32_t) * (size_t)taps * sh.c))) goto fail;
        for (int ch = 0; ch < sh.c; ch++)   // (C, KH, KW, 1) -> (KH*KW, C)
            for (int t = 0; t < taps; t++) c->dw_w[(int64_t)t * sh.c + ch] = p->w[(int64_t)ch * taps + t];
        if (c->isa >= QL_ISA_AVX2 &&
            ql_qdw_pack_pairs(&sh, c->dw_w, c->bias_q, c->x_zero, &c->dw_pair, &c->dw_off, &c->dw_zrow) < 0)
            goto fail;
        if (c->isa >= QL_ISA_AVX512) c->dw_pair32 = ql_qdw_pack_pairs32(&sh, c->dw_w);   /* NULL: the AVX2 kernel */
        if (c->isa >= QL_ISA_AVX512 && !c->f32_out && ql_qdw3_supported(&sh) &&
            !(c->dw3 = ql_qdw3_pack(&sh, c->dw_w, c->dw_off, c->mult))) goto fail;
        return c;
    }
    if (!(c->gemm = ql_calloc(sizeof(*c->gemm) * groups))) goto fail;
    for (int g = 0; g < groups; g++)   // group g: rows [g*ocg, +ocg) of OHWI = (ocg, KH*KW*Cg)
        if (!(c->gemm[g] = ql_qgemm_pack(p->w + (int64_t)g * ocg * kg, ocg, (int)kg, c->isa,
                                           p->x_qmax > 0 ? p->x_qmax : 255))) goto fail;
    c->kstride = kstride_for(&sh, ql_qgemm_packed_isa(c->gemm[0]));
    c->a_max = p->x_qmax > 0 ? p->x_qmax : 255;
    return c;
fail:
    ql_qconv_free(c);
    return NULL;
}

static int64_t chunk_rows(const ql_qconv *c, int n) {
    int64_t total = (int64_t)n * c->s.oh * c->s.ow, r = WS_BUDGET / c->kstride;
    if (r < MIN_CHUNK_ROWS) r = MIN_CHUNK_ROWS;
    return r < total ? r : total;
}

/* The input with its padding written out (x_zero), so that every kernel row
 * of every output pixel is one run of x: im2col becomes plain copies. Only
 * for one group without dilation, and while the copy stays small. */
static size_t pad_budget = 8 << 20;
void ql_qconv_set_pad_budget(size_t bytes) { pad_budget = bytes; }

static size_t padded_bytes(const ql_qconv *c, int n) {
    const ql_conv2d_shape *s = &c->s;
    if (s->groups != 1 || s->dh != 1 || s->dw != 1) return 0;
    size_t b = (size_t)n * (s->h + 2 * s->ph) * (s->w + 2 * s->pw) * s->c;
    return b <= pad_budget ? (b + 64 + 63) & ~(size_t)63 : 0;   /* + slack for 8-byte reads */
}

/* The threads that take whole images each through the im2col path, in
 * their own slots of the workspace; 0: the shared way, every thread on one
 * chunk of rows at a time (batch 1 on two threads, groups, tiny convs). */
static int image_threads(const ql_qconv *c, int n) {
    const ql_conv2d_shape *s = &c->s;
    const int64_t total = (int64_t)n * s->oh * s->ow;
    int T = omp_in_parallel() ? 1 : omp_get_max_threads();
    if ((double)total * s->oc * (kgroup(s) + 16) < (1 << 18)) T = 1;
    /* fewer rows than channels: the GEMM's column split gives each thread a share of W */
    if (s->groups != 1 || T > n || (T > 1 && (total / T < 32 || total < s->oc))) return 0;
    return T;
}

/* One thread's slot: its im2col chunk (trows rows), then its images padded.
 * The chunk is its share of the workspace budget and no more than half its
 * L2, so that the GEMM reads what im2col wrote from L2 (layer1's 3x3 conv
 * at b64, one thread: 780 GMAC/s in one 1.8 MB chunk, 1,010 in 1 MB ones),
 * in whole AMX row pairs (32) from 64 rows on. */
typedef struct { int64_t trows; size_t cols, pad, slot; } image_slot;

static image_slot slot_for(const ql_qconv *c, int n, int T) {
    const ql_conv2d_shape *s = &c->s;
    const int64_t imax = (n + T - 1) / T, mine = imax * s->oh * s->ow;
    int64_t r = chunk_rows(c, n) / T, l2 = ql_cpu_l2_bytes() / 2 / c->kstride;
    if (r > l2) r = l2;
    if (r >= 64) r = r / 32 * 32;
    if (r > mine) r = mine;
    image_slot o = {.trows = r > 0 ? r : 1};
    o.cols = ((size_t)(o.trows * c->kstride) + 63) & ~(size_t)63;
    o.pad = padded_bytes(c, n) ? padded_bytes(c, (int)imax) : 0;
    o.slot = o.cols + o.pad;
    return o;
}

/* Regions pay once each region's W serves enough rows: at batch 1 the
 * extra W they read costs more than the padding taps they skip. */
static int region_min_batch = 8;
void ql_qconv_set_region_min_batch(int n) { region_min_batch = n; }
/* The regions, built on first use. The conv is const to its callers, but a
 * graph runs one node at a time: only that thread gets here. Out of memory
 * leaves the plain path, with the same results. */
static ql_qconv_regions *regions_of(const ql_qconv *cc) {
    ql_qconv *c = (ql_qconv *)cc;
    if (c->regions_state) return c->regions;
    c->regions_state = -1;
    int8_t *w = ql_malloc((size_t)c->s.oc * kgroup(&c->s));
    if (!w) { ql_error_clear(); return NULL; }
    ql_qgemm_unpack(c->gemm[0], w);
    int failed;
    c->regions = ql_qconv_regions_new(&c->s, w, c->isa, c->a_max, &failed);
    ql_free(w);
    if (failed) ql_error_clear();
    if (c->regions) c->regions_state = 1;
    return c->regions;
}

static int use_regions(const ql_qconv *c, int n) {
    return region_min_batch > 0 && n >= region_min_batch && c->kind == QCONV_IM2COL && regions_of(c);
}
int ql_qconv_uses_regions(const ql_qconv *c, int n) { return c && use_regions(c, n); }

size_t ql_qconv_workspace(const ql_qconv *c, int n) {
    if (!c || n <= 0 || c->kind != QCONV_IM2COL) return 0;
    if (use_regions(c, n)) return ql_qconv_regions_workspace(c->regions, n, c->f32_out ? 4 : 1);
    int T = image_threads(c, n);
    if (T) return (size_t)T * slot_for(c, n, T).slot;
    return (size_t)(chunk_rows(c, n) * c->kstride) + padded_bytes(c, n);
}

/* Narrow sides (a stem on one channel pads 1-3 bytes a side): one memset of
 * the whole padded input, then the rows (gcc turns short byte loops into
 * calls to memset anyway, and 3 calls per row cost more than the bytes). */
static void pad_input(const ql_qconv *c, int n, const uint8_t *x, uint8_t *xp) {
    const ql_conv2d_shape *s = &c->s;
    const int hp = s->h + 2 * s->ph, wp = s->w + 2 * s->pw;
    const size_t row = (size_t)s->w * s->c, prow = (size_t)wp * s->c, side = (size_t)s->pw * s->c;
    if (side < 16) {
        memset(xp, c->x_zero, (size_t)n * hp * prow);
        for (int64_t i = 0; i < (int64_t)n * s->h; i++)
            memcpy(xp + ((size_t)(i / s->h * hp + i % s->h + s->ph)) * prow + side, x + (size_t)i * row, row);
        return;
    }
    for (int64_t i = 0; i < (int64_t)n * hp; i++) {
        int ih = (int)(i % hp) - s->ph;
        uint8_t *d = xp + (size_t)i * prow;
        if (ih < 0 || ih >= s->h) { memset(d, c->x_zero, prow); continue; }
        memset(d, c->x_zero, side);
        memcpy(d + side, x + ((size_t)(i / hp) * s->h + ih) * row, row);
        memset(d + side + row, c->x_zero, side);
    }
}

/* AVX-512: whole 64-byte chunks and one masked tail (rows of 192-768 bytes
 * take 3-12 stores instead of 12-48) */
QL_AVX512 static inline void copy_avx512(uint8_t *d, const uint8_t *s, int64_t n) {
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512((void *)(d + i), _mm512_loadu_si512((const void *)(s + i)));
    if (i < n) {
        __mmask64 m = ((__mmask64)1 << (n - i)) - 1;
        _mm512_mask_storeu_epi8(d + i, m, _mm512_maskz_loadu_epi8(m, s + i));
    }
}

/* The geometry im2col_row reads, as values: its byte stores may alias
 * anything, so fields read through c would be reloaded on every row. */
typedef struct { int64_t kg, ks, krow, prow, step; int kh; } im2col_geom;

// one im2col row from the padded input at src (the pixel's first tap): every kernel row one copy
static inline __attribute__((always_inline)) void im2col_row(const im2col_geom g, const uint8_t *src,
                                                             uint8_t *dst, int wide) {
    const int64_t kg = g.kg, ks = g.ks, krow = g.krow, prow = g.prow;
    int64_t j = kg;
    if (krow <= 8 && kg + 8 - krow <= ks) {
        /* 8-byte words in kernel-row order, each overwriting the last one's
         * spill; the final spill stays within the row's pad (zeroed below),
         * and the input buffer has slack for the 8-byte reads */
        for (int ki = 0; ki < g.kh; ki++) {
            uint64_t v;
            memcpy(&v, src + ki * prow, 8);
            memcpy(dst + ki * krow, &v, 8);
        }
    } else if (wide) {
        for (int ki = 0; ki < g.kh; ki++) copy_avx512(dst + ki * krow, src + ki * prow, krow);
    } else if (krow >= 4) {
        for (int ki = 0; ki < g.kh; ki++) ql_copy_bytes(dst + ki * krow, src + ki * prow, krow);
    } else {
        for (int ki = 0; ki < g.kh; ki++)
            for (int64_t t = 0; t < krow; t++) dst[ki * krow + t] = src[ki * prow + t];
    }
    /* the pad [kg, ks): defined bytes, words ending exactly at ks */
    const uint64_t zero = 0;
    if (ks - j >= 8) {
        for (; j + 8 < ks; j += 8) memcpy(dst + j, &zero, 8);
        memcpy(dst + ks - 8, &zero, 8);
    } else {
        for (; j < ks; j++) dst[j] = 0;
    }
}

/* Output rows [r0, r0+nr) -> cols, one output image row (n, oh) per task:
 * the pixels of a row are sw*C bytes apart in the padded input. */
#define IM2COL_PADDED(WIDE)                                                                       \
    const ql_conv2d_shape *s = &c->s;                                                           \
    const int64_t hp = s->h + 2 * s->ph, wp = s->w + 2 * s->pw, OW = s->ow, OH = s->oh;         \
    const im2col_geom g = {.kg = kgroup(s), .ks = c->kstride, .krow = (int64_t)s->kw * s->c,    \
                           .prow = wp * s->c, .step = (int64_t)s->sw * s->c, .kh = s->kh};      \
    const int64_t q0 = r0 / OW, q1 = (r0 + nr - 1) / OW;                                        \
    _Pragma("omp parallel for schedule(static) if (nr * g.kg > (1 << 16))")                     \
    for (int64_t q = q0; q <= q1; q++) {                                                        \
        int64_t a = q * OW > r0 ? q * OW : r0, b = (q + 1) * OW < r0 + nr ? (q + 1) * OW : r0 + nr; \
        int64_t n = q / OH, oh = q % OH;                                                        \
        const uint8_t *src = xp + ((n * hp + oh * s->sh) * wp) * s->c + (a - q * OW) * g.step;  \
        uint8_t *dst = cols + (a - r0) * g.ks;                                                  \
        for (int64_t r = a; r < b; r++, src += g.step, dst += g.ks) im2col_row(g, src, dst, WIDE); \
    }

QL_AVX512 static void im2col_padded_avx512(const ql_qconv *c, const uint8_t *xp, int64_t r0, int64_t nr,
                                           uint8_t *cols) {
    IM2COL_PADDED(1)
}

static void im2col_padded_base(const ql_qconv *c, const uint8_t *xp, int64_t r0, int64_t nr, uint8_t *cols) {
    IM2COL_PADDED(0)
}

static void im2col_padded(const ql_qconv *c, const uint8_t *xp, int64_t r0, int64_t nr, uint8_t *cols) {
    if (c->isa >= QL_ISA_AVX512) im2col_padded_avx512(c, xp, r0, nr, cols);
    else im2col_padded_base(c, xp, r0, nr, cols);
}

// Short runs (a 7x7 stem on one channel copies 7 bytes at a time): a call to
// memcpy/memset per run would cost more than the bytes.
static inline void copy_run(uint8_t *d, const uint8_t *s, int64_t n) {
    if (n >= 32) { memcpy(d, s, (size_t)n); return; }
    for (int64_t i = 0; i < n; i++) d[i] = s[i];
}
static inline void fill_run(uint8_t *d, uint8_t v, int64_t n) {
    if (n >= 32) { memset(d, v, (size_t)n); return; }
    for (int64_t i = 0; i < n; i++) d[i] = v;
}

// x (N,H,W,C) u8, group g, output rows [r0, r0+nr) -> cols (nr, KH*KW*Cg), x_zero outside
static void im2col_u8(const ql_qconv *c, const uint8_t *x, int g, int64_t r0, int64_t nr, uint8_t *cols) {
    const ql_conv2d_shape *s = &c->s;
    const int cg = s->c / s->groups;
    const int64_t kg = kgroup(s), ks = c->kstride, krow = (int64_t)s->kw * cg;
    const uint8_t pad = (uint8_t)c->x_zero;
    // one group, no dilation: the taps of a kernel row are one contiguous run of x
    const int contiguous = s->groups == 1 && s->dw == 1;
    #pragma omp parallel for schedule(static) if (nr * kg > (1 << 16))
    for (int64_t i = 0; i < nr; i++) {
        int64_t r = r0 + i;
        int ow = (int)(r % s->ow), oh = (int)(r / s->ow % s->oh);
        int64_t n = r / ((int64_t)s->ow * s->oh);
        uint8_t *dst = cols + i * ks;
        for (int64_t j = kg; j < ks; j++) dst[j] = 0;   /* the pad: defined bytes */
        const int iw0 = ow * s->sw - s->pw;
        const int inside = iw0 >= 0 && iw0 + (s->kw - 1) * s->dw < s->w;
        for (int ki = 0; ki < s->kh; ki++, dst += krow) {
            int ih = oh * s->sh - s->ph + ki * s->dh;
            if (ih < 0 || ih >= s->h) { fill_run(dst, pad, krow); continue; }
            const uint8_t *xrow = x + ((n * s->h + ih) * s->w) * s->c + (int64_t)g * cg;
            if (contiguous && inside) { copy_run(dst, xrow + (int64_t)iw0 * s->c, krow); continue; }
            for (int kj = 0; kj < s->kw; kj++) {
                int iw = iw0 + kj * s->dw;
                if (iw < 0 || iw >= s->w) fill_run(dst + kj * cg, pad, cg);
                else copy_run(dst + kj * cg, xrow + (int64_t)iw * s->c, cg);
            }
        }
    }
}

static ql_qgemm_epilogue group_epilogue(const ql_qconv *c, int g) {
    int64_t o = (int64_t)g * (c->s.oc / c->s.groups);
    ql_qgemm_epilogue e = {.a_zero = c->x_zero, .bias = c->bias_q + o, .mult = c->mult + o,
                           .y_zero = c->y_zero, .qmin = c->qmin, .qmax = c->qmax,
                           .fbias = c->fbias ? c->fbias + o : NULL};
    return e;
}

static void gemm(const ql_qconv *c, int g, int64_t m, const uint8_t *a, int64_t lda, char *y, int padded) {
    ql_qgemm_epilogue e = group_epilogue(c, g);
    e.a_padded = padded;
    if (c->f32_out) ql_qgemm_f32(c->gemm[g], m, a, lda, (float *)y, c->s.oc, &e);
    else ql_qgemm_u8(c->gemm[g], m, a, lda, (uint8_t *)y, c->s.oc, &e);
}

static void forward_dw(const ql_qconv *c, int n, const uint8_t *x, void *y) {
    const ql_conv2d_shape *s = &c->s;
    float lo, hi;
    ql_qclamp_bounds(c->qmin, c->qmax, c->y_zero, &lo, &hi);
    ql_qdw_args d = {.s = s, .w = c->dw_w, .bias = c->bias_q, .mult = c->mult, .fbias = c->fbias,
                     .wpair = c->dw_pair, .wpair32 = c->dw_pair32, .off = c->dw_off, .zrow = c->dw_zrow,
                     .npairs = (s->kh * s->kw + 1) / 2,
                     .x_zero = c->x_zero, .y_zero = c->y_zero, .lo = lo, .hi = hi, .f32_out = c->f32_out};
    const int avx = c->isa >= QL_ISA_AVX2;
    const size_t es = c->f32_out ? 4 : 1;
    const int64_t tasks = (int64_t)n * s->oh;
    if (c->dw3) {   /* contiguous rows per thread: each pads every input row once */
        #pragma omp parallel if (tasks * s->ow * s->c * s->kh * s->kw > (1 << 16))
        {
            const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
            ql_qdw3_rows_avx512(c->dw3, &d, x, tasks * t / T, tasks * (t + 1) / T, y);
        }
        return;
    }
    #pragma omp parallel for schedule(static) if (tasks * s->ow * s->c * s->kh * s->kw > (1 << 16))
    for (int64_t t = 0; t < tasks; t++) {
        int64_t img = t / s->oh;
        int oh = (int)(t % s->oh);
        char *yrow = (char *)y + (size_t)((img * s->oh + oh) * s->ow * s->c) * es;
        if (c->dw_pair32) { ql_qdw_row_avx512(&d, x, img, oh, yrow, es); continue; }
        if (avx) { ql_qdw_row_avx2(&d, x, img, oh, yrow, es); continue; }
        for (int ow = 0; ow < s->ow; ow++)
            ql_qdw_range_scalar(&d, x, img, oh, ow, 0, s->c, yrow + (size_t)ow * s->c * es);
    }
}

// f32 output has no clamp: a fused relu / relu6 is applied on the floats
static void relu_f32(int relu, int64_t n, float *y) {
    #pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++) {
        float v = y[i] > 0.0f ? y[i] : 0.0f;
        y[i] = relu == 2 && v > 6.0f ? 6.0f : v;
    }
}

/* Whole images per thread, each padding, gathering and multiplying its own
 * rows in its own slot of the workspace: one fork per conv instead of
 * three, and every byte stays in the cache of the core that wrote it (the
 * previous layer's rows were split the same way). The slots sit at a
 * stride of the caller's whole buffer over T, which is the same for every
 * layer once the graph's scratch has grown: a thread meets its own cache
 * lines again in the next conv, not its neighbour's (with slots packed
 * per layer, ResNet-18 INT8 b64 on two threads ran 8 % slower). */
static void forward_images(const ql_qconv *c, int n, const uint8_t *x, char *y, uint8_t *ws, size_t ws_bytes,
                           int T) {
    const ql_conv2d_shape *s = &c->s;
    const image_slot sl = slot_for(c, n, T);
    const size_t stride = (ws_bytes / (size_t)T) & ~(size_t)63;
    const int64_t per_img = (int64_t)s->oh * s->ow, ks = c->kstride, trows = sl.trows;
    const size_t es = c->f32_out ? 4 : 1, img_in = (size_t)s->h * s->w * s->c;
    #pragma omp parallel num_threads(T) if (T > 1)
    {
        const int t = omp_get_thread_num(), i0 = (int)((int64_t)t * n / T), i1 = (int)((int64_t)(t + 1) * n / T);
        const int64_t a = i0 * per_img, b = i1 * per_img;
        uint8_t *cols = ws + (size_t)t * stride, *xp = sl.pad ? cols + sl.cols : NULL;
        // even chunks (a 29-row tail would leave AMX for the VNNI kernel)
        const int64_t nch = (b - a + trows - 1) / trows;
        int64_t cr = nch ? (b - a + nch - 1) / nch : 1;
        if (trows >= 64) cr = (cr + 31) / 32 * 32 < trows ? (cr + 31) / 32 * 32 : trows;
        if (xp) pad_input(c, i1 - i0, x + i0 * img_in, xp);
        for (int64_t r0 = a; r0 < b; r0 += cr) {
            int64_t nr = b - r0 < cr ? b - r0 : cr;
            if (xp) im2col_padded(c, xp, r0 - a, nr, cols);   /* rows of this thread's images */
            else im2col_u8(c, x, 0, r0, nr, cols);
            gemm(c, 0, nr, cols, ks, y + (size_t)(r0 * s->oc) * es, 1);
        }
    }
}

ql_status ql_qconv_forward(const ql_qconv *c, int n, const uint8_t *x, void *y, void *ws, size_t ws_bytes) {
    if (!c || n <= 0) return QL_OK;
    size_t need = ql_qconv_workspace(c, n);
    if (ws_bytes < need || (need && !ws))
        return ql_error(QL_EINVAL, "qconv_forward: a workspace of %zu bytes where %zu are needed", ws ? ws_bytes : 0,
                        need);
    const ql_conv2d_shape *s = &c->s;
    const int cg = s->c / s->groups, ocg = s->oc / s->groups;
    const int64_t total = (int64_t)n * s->oh * s->ow;
    const size_t es = c->f32_out ? 4 : 1;
    char *yb = y;
    int T;
    if (c->kind == QCONV_DW) {
        forward_dw(c, n, x, y);
    } else if (c->kind == QCONV_POINTWISE) {   // y_g (M,OCg) = x_g (M,Cg) w_g^T
        for (int g = 0; g < s->groups; g++)
            gemm(c, g, total, x + (int64_t)g * cg, s->c, yb + (size_t)g * ocg * es, 0);
    } else if (use_regions(c, n)) {
        ql_qgemm_epilogue e = group_epilogue(c, 0);
        ql_qconv_regions_forward(c->regions, &e, c->f32_out, n, x, yb, ws);
    } else if ((T = image_threads(c, n))) {
        forward_images(c, n, x, yb, ws, ws_bytes, T);
    } else {
        const int64_t rows = chunk_rows(c, n);
        uint8_t *xp = padded_bytes(c, n) ? (uint8_t *)ws + rows * c->kstride : NULL;
        if (xp) pad_input(c, n, x, xp);
        for (int64_t r0 = 0; r0 < total; r0 += rows) {
            int64_t nr = total - r0 < rows ? total - r0 : rows;
            for (int g = 0; g < s->groups; g++) {
                if (xp) im2col_padded(c, xp, r0, nr, ws);
                else im2col_u8(c, x, g, r0, nr, ws);
                gemm(c, g, nr, ws, c->kstride, yb + (size_t)(r0 * s->oc + (int64_t)g * ocg) * es, 1);
            }
        }
    }
    if (c->f32_out && c->relu) relu_f32(c->relu, total * s->oc, y);
    return QL_OK;
}
