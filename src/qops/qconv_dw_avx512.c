/* AVX-512 twin of the paired-tap depthwise kernel (qconv_dw_avx2.c): 32
 * channels per step, so the widening and interleaving shuffles, which bound
 * the AVX2 kernel, are spent on twice the channels. Same integers (taps in
 * pairs through vpmaddwd, zrow for padding, off for x_zero), same epilogue
 * as the GEMM's AVX-512 store; a 16-channel block left over goes through the
 * AVX2 block's weights, the rest through the scalar code. */
#include <immintrin.h>
#include "qops/qops_internal.h"

// 16 s32 (channels c..c+15) -> y, as the scalar requantization
QL_AVX512 static inline void epilogue16(const ql_qdw_args *d, __m512i acc, int c, void *y) {
    acc = _mm512_add_epi32(acc, _mm512_loadu_si512((const void *)(d->off + c)));
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(d->mult + c));
    if (d->f32_out) {
        if (d->fbias) f = _mm512_add_ps(f, _mm512_loadu_ps(d->fbias + c));   // no FMA, as scalar
        _mm512_storeu_ps((float *)y + c, f);
        return;
    }
    f = _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps(d->lo)), _mm512_set1_ps(d->hi));
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), _mm512_set1_epi32(d->y_zero));   // half to even
    _mm_storeu_si128((__m128i *)((uint8_t *)y + c), _mm512_cvtepi32_epi8(q));   // already in [0, 255]
}

/* 32 channels [c0, c0+32): lo holds, per 128-bit lane L, channels 8L..8L+3
 * and hi 8L+4..8L+7 (as ql_qdw_pack_pairs laid the weights out); two
 * cross-lane permutes put them back in order. */
QL_AVX512 static inline void block32(const ql_qdw_args *d, const uint8_t *const *tap, int c0, int blk, int nblk,
                                     void *y) {
    __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
    const int16_t *wp = d->wpair32 + (int64_t)blk * 64;
    for (int p = 0; p < d->npairs; p++, wp += (int64_t)nblk * 64) {
        __m512i a = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(tap[2 * p] + c0)));
        __m512i b = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(tap[2 * p + 1] + c0)));
        lo = _mm512_add_epi32(lo, _mm512_madd_epi16(_mm512_unpacklo_epi16(a, b), _mm512_loadu_si512((const void *)wp)));
        hi = _mm512_add_epi32(hi, _mm512_madd_epi16(_mm512_unpackhi_epi16(a, b), _mm512_loadu_si512((const void *)(wp + 32))));
    }
    const __m512i i0 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), i1 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    epilogue16(d, _mm512_permutex2var_epi64(lo, i0, hi), c0, y);
    epilogue16(d, _mm512_permutex2var_epi64(lo, i1, hi), c0 + 16, y);
}

/* 3x3 (five tap pairs), u8 out: one 32-channel block across the whole row,
 * its weights and epilogue constants held in registers (19 of 32) and the
 * taps of every pixel computed once per row; the same integers as block32. */
#define NP 5
#define ROW_MAX 256
QL_AVX512 static void row3x3(const ql_qdw_args *d, const uint8_t *const *taps, int ow_n, int C, int c0, int blk,
                             int nblk, uint8_t *yrow) {
    __m512i w0[NP], w1[NP];
    const int16_t *wp = d->wpair32 + (int64_t)blk * 64;
    for (int p = 0; p < NP; p++, wp += (int64_t)nblk * 64) {
        w0[p] = _mm512_loadu_si512((const void *)wp);
        w1[p] = _mm512_loadu_si512((const void *)(wp + 32));
    }
    const __m512i i0 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), i1 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    const __m512i off0 = _mm512_loadu_si512((const void *)(d->off + c0)), off1 = _mm512_loadu_si512((const void *)(d->off + c0 + 16));
    const __m512 m0 = _mm512_loadu_ps(d->mult + c0), m1 = _mm512_loadu_ps(d->mult + c0 + 16);
    const __m512 lo = _mm512_set1_ps(d->lo), hi = _mm512_set1_ps(d->hi);
    const __m512i yz = _mm512_set1_epi32(d->y_zero);
    for (int ow = 0; ow < ow_n; ow++) {
        const uint8_t *const *tap = taps + ow * 2 * NP;
        __m512i al = _mm512_setzero_si512(), ah = _mm512_setzero_si512();
        #pragma GCC unroll 5
        for (int p = 0; p < NP; p++) {
            __m512i a = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(tap[2 * p] + c0)));
            __m512i b = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(tap[2 * p + 1] + c0)));
            al = _mm512_add_epi32(al, _mm512_madd_epi16(_mm512_unpacklo_epi16(a, b), w0[p]));
            ah = _mm512_add_epi32(ah, _mm512_madd_epi16(_mm512_unpackhi_epi16(a, b), w1[p]));
        }
        __m512i v0 = _mm512_add_epi32(_mm512_permutex2var_epi64(al, i0, ah), off0);
        __m512i v1 = _mm512_add_epi32(_mm512_permutex2var_epi64(al, i1, ah), off1);
        __m512 f0 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v0), m0), lo), hi);
        __m512 f1 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v1), m1), lo), hi);
        uint8_t *y = yrow + (size_t)ow * C + c0;
        _mm_storeu_si128((__m128i *)y, _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(f0), yz)));
        _mm_storeu_si128((__m128i *)(y + 16), _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(f1), yz)));
    }
}

QL_AVX512 void ql_qdw_row_avx512(const ql_qdw_args *d, const uint8_t *x, int64_t n, int oh, void *yrow, size_t es) {
    const ql_conv2d_shape *s = d->s;
    const int C = s->c, nb32 = C / 32;
    if (!d->wpair || !d->wpair32) { ql_qdw_row_avx2(d, x, n, oh, yrow, es); return; }
    if (d->npairs == NP && !d->f32_out && s->ow <= ROW_MAX) {
        const uint8_t *rows[64], *taps[ROW_MAX * 2 * NP];
        ql_qdw_rows(d, x, n, oh, rows);
        for (int ow = 0; ow < s->ow; ow++) ql_qdw_taps(d, rows, ow, taps + ow * 2 * NP);
        for (int b = 0; b < nb32; b++) row3x3(d, taps, s->ow, C, 32 * b, b, nb32, yrow);
        int c = 32 * nb32;
        if (c == C) return;
        for (int ow = 0; ow < s->ow; ow++) {   /* the channels past the last 32-block */
            const uint8_t *const *tap = taps + ow * 2 * NP;
            char *y = (char *)yrow + (size_t)ow * C;
            int cc = c;
            if (cc + 16 <= C) { ql_qdw_block16_avx2(d, tap, cc, cc / 16, C / 16, y); cc += 16; }
            if (cc < C) ql_qdw_range_scalar(d, x, n, oh, ow, cc, C, y);
        }
        return;
    }
    const uint8_t *rows[64], *tap[64];
    ql_qdw_rows(d, x, n, oh, rows);
    for (int ow = 0; ow < s->ow; ow++) {
        ql_qdw_taps(d, rows, ow, tap);
        char *y = (char *)yrow + (size_t)ow * C * es;
        for (int b = 0; b < nb32; b++) block32(d, tap, 32 * b, b, nb32, y);
        int c = 32 * nb32;
        if (c + 16 <= C) { ql_qdw_block16_avx2(d, tap, c, c / 16, C / 16, y); c += 16; }
        if (c < C) ql_qdw_range_scalar(d, x, n, oh, ow, c, C, y);
    }
}
