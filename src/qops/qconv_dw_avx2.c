/* AVX2 twin of the depthwise kernel (qconv_dw.c): 16 channels at a time,
 * taps in pairs through vpmaddwd, the same requantization as the GEMM
 * epilogue. Channels past the last multiple of 16 use the scalar code. */
#include <immintrin.h>
#include "qops/qops_internal.h"

// 8 channels [c, c+8) of one pixel -> y
QL_AVX2 static inline void epilogue8(const ql_qdw_args *d, __m256i acc, int c, void *y) {
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(d->mult + c));
    if (d->f32_out) {
        if (d->fbias) f = _mm256_add_ps(f, _mm256_loadu_ps(d->fbias + c));   // no FMA, as scalar
        _mm256_storeu_ps((float *)y + c, f);
        return;
    }
    f = _mm256_min_ps(_mm256_max_ps(f, _mm256_set1_ps(d->lo)), _mm256_set1_ps(d->hi));
    __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(f), _mm256_set1_epi32(d->y_zero));
    __m128i s = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storel_epi64((__m128i *)((uint8_t *)y + c), _mm_packus_epi16(s, s));
}

/* lo / hi: the 16 sums of block16's lane order -> requantized (or f32) y[c0..c0+16) */
QL_AVX2 static inline __attribute__((always_inline)) void finish16(const ql_qdw_args *d, __m256i lo, __m256i hi,
                                                                   int c0, void *y) {
    __m256i c07 = _mm256_permute2x128_si256(lo, hi, 0x20), c8f = _mm256_permute2x128_si256(lo, hi, 0x31);
    c07 = _mm256_add_epi32(c07, _mm256_loadu_si256((const __m256i *)(d->off + c0)));
    c8f = _mm256_add_epi32(c8f, _mm256_loadu_si256((const __m256i *)(d->off + c0 + 8)));
    if (d->f32_out) {
        epilogue8(d, c07, c0, y);
        epilogue8(d, c8f, c0 + 8, y);
        return;
    }
    /* u8: both halves requantized as epilogue8 does, then packed into one store */
    const __m256 lo_f = _mm256_set1_ps(d->lo), hi_f = _mm256_set1_ps(d->hi);
    const __m256i yz = _mm256_set1_epi32(d->y_zero);
    __m256 f0 = _mm256_mul_ps(_mm256_cvtepi32_ps(c07), _mm256_loadu_ps(d->mult + c0));
    __m256 f1 = _mm256_mul_ps(_mm256_cvtepi32_ps(c8f), _mm256_loadu_ps(d->mult + c0 + 8));
    f0 = _mm256_min_ps(_mm256_max_ps(f0, lo_f), hi_f);
    f1 = _mm256_min_ps(_mm256_max_ps(f1, lo_f), hi_f);
    __m256i q = _mm256_packs_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(f0), yz), _mm256_add_epi32(_mm256_cvtps_epi32(f1), yz));
    q = _mm256_permute4x64_epi64(q, 0xD8);    /* the packs interleave 128-bit lanes: channels back in order */
    _mm_storeu_si128((__m128i *)((uint8_t *)y + c0),
                     _mm_packus_epi16(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)));
}

/* 16 channels [c0, c0+16) of one pixel. Taps go in pairs: the u8 codes of
 * two taps, widened to s16 and interleaved, meet their s16 weight pairs in
 * vpmaddwd, which adds both products into s32 (exact: |x w| < 2^15). Raw codes
 * are multiplied; off[] takes x_zero * sum(w) back, and taps in the padding
 * read zrow (x_zero), which off cancels too: the same integers as the scalar
 * loop. In-lane unpacks leave channels 0-3, 8-11 in lo and 4-7, 12-15 in hi
 * (the weights were packed in that order); finish16's two lane swaps restore
 * them. npairs is a constant after inlining. */
QL_AVX2 static inline __attribute__((always_inline)) void block16(const ql_qdw_args *d, const uint8_t *const *tap,
                                                                  int c0, const int16_t *wp, int64_t wstep,
                                                                  int npairs, void *y) {
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
    #pragma GCC unroll 8
    for (int p = 0; p < npairs; p++, wp += wstep) {
        __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(tap[2 * p] + c0)));
        __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(tap[2 * p + 1] + c0)));
        lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), _mm256_loadu_si256((const __m256i *)wp)));
        hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), _mm256_loadu_si256((const __m256i *)(wp + 16))));
    }
    finish16(d, lo, hi, c0, y);
}

/* Two neighbouring pixels of a 3x3 kernel whose taps are all inside the
 * image (the second's taps are the first's + step bytes), 16 channels: each
 * weight pair is loaded once for both and the four sums are independent;
 * the ninth tap's partner is zero (its weight is zero too). */
QL_AVX2 static inline __attribute__((always_inline)) void block16x2_3x3(const ql_qdw_args *d, const uint8_t *const *tap,
                                                                        int64_t step, int c0, const int16_t *wp,
                                                                        int64_t wstep, void *y0, void *y1) {
    __m256i lo0 = _mm256_setzero_si256(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
    #pragma GCC unroll 8
    for (int p = 0; p < 5; p++, wp += wstep) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)wp), w1 = _mm256_loadu_si256((const __m256i *)(wp + 16));
        const uint8_t *ta = tap[2 * p] + c0;
        __m256i a0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)ta));
        __m256i a1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(ta + step)));
        __m256i b0 = _mm256_setzero_si256(), b1 = b0;
        if (p < 4) {
            const uint8_t *tb = tap[2 * p + 1] + c0;
            b0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)tb));
            b1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(tb + step)));
        }
        lo0 = _mm256_add_epi32(lo0, _mm256_madd_epi16(_mm256_unpacklo_epi16(a0, b0), w0));
        hi0 = _mm256_add_epi32(hi0, _mm256_madd_epi16(_mm256_unpackhi_epi16(a0, b0), w1));
        lo1 = _mm256_add_epi32(lo1, _mm256_madd_epi16(_mm256_unpacklo_epi16(a1, b1), w0));
        hi1 = _mm256_add_epi32(hi1, _mm256_madd_epi16(_mm256_unpackhi_epi16(a1, b1), w1));
    }
    finish16(d, lo0, hi0, c0, y0);
    finish16(d, lo1, hi1, c0, y1);
}

QL_AVX2 void ql_qdw_block16_avx2(const ql_qdw_args *d, const uint8_t *const *tap, int c0, int blk, int nblk,
                                void *y) {
    block16(d, tap, c0, d->wpair + (int64_t)blk * 32, (int64_t)nblk * 32, d->npairs, y);
}

/* One output row (n, oh), every channel. Tap pointers are set per pixel
 * from the kernel rows' bases: padding rows and columns read zrow. */
QL_AVX2 void ql_qdw_row_avx2(const ql_qdw_args *d, const uint8_t *x, int64_t n, int oh, void *yrow, size_t es) {
    const ql_conv2d_shape *s = d->s;
    const int C = s->c, nblk = C / 16;
    if (!d->wpair) {   /* > 64 taps */
        for (int ow = 0; ow < s->ow; ow++) ql_qdw_range_scalar(d, x, n, oh, ow, 0, C, (char *)yrow + (size_t)ow * C * es);
        return;
    }
    const uint8_t *rows[64], *tap[64], *base[64];
    ql_qdw_rows(d, x, n, oh, rows);
    /* pixels whose taps all fall inside the image: tap t = base[t] + iw0 * C,
     * no per-tap tests; the others (the borders, rows in the padding) go
     * through ql_qdw_taps */
    const int taps = s->kh * s->kw;
    int rows_in = 1;
    for (int ki = 0; ki < s->kh; ki++) rows_in &= rows[ki] != NULL;
    for (int t = 0; t < taps && rows_in; t++) base[t] = rows[t / s->kw] + (int64_t)(t % s->kw) * s->dw * C;
    for (int t = taps; t < 2 * d->npairs; t++) tap[t] = d->zrow;
    const int span = (s->kw - 1) * s->dw;
    for (int ow = 0; ow < s->ow; ow++) {
        const int iw0 = ow * s->sw - s->pw;
        const int inside = rows_in && iw0 >= 0 && iw0 + span < s->w;
        if (inside)
            for (int t = 0; t < taps; t++) tap[t] = base[t] + (int64_t)iw0 * C;
        else
            ql_qdw_taps(d, rows, ow, tap);
        char *y = (char *)yrow + (size_t)ow * C * es;
        if (taps == 9 && inside && ow + 1 < s->ow && iw0 + s->sw + span < s->w) {   /* two pixels at once */
            const int64_t step = (int64_t)s->sw * C;
            for (int b = 0; b < nblk; b++)
                block16x2_3x3(d, tap, step, 16 * b, d->wpair + (int64_t)b * 32, (int64_t)nblk * 32, y,
                              y + (size_t)C * es);
            if (16 * nblk < C) {
                ql_qdw_range_scalar(d, x, n, oh, ow, 16 * nblk, C, y);
                ql_qdw_range_scalar(d, x, n, oh, ow + 1, 16 * nblk, C, y + (size_t)C * es);
            }
            ow++;
            continue;
        }
        if (d->npairs == 5)   /* 3x3: the pair loop unrolled */
            for (int b = 0; b < nblk; b++) block16(d, tap, 16 * b, d->wpair + (int64_t)b * 32, (int64_t)nblk * 32, 5, y);
        else
            for (int b = 0; b < nblk; b++) ql_qdw_block16_avx2(d, tap, 16 * b, b, nblk, y);
        if (16 * nblk < C) ql_qdw_range_scalar(d, x, n, oh, ow, 16 * nblk, C, y);
    }
}
