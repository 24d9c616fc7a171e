/* AVX2 twin of the depthwise kernel (qconv_dw.c): 8 channels per vector,
 * s32 products (x - x_zero) * w, the same requantization as the GEMM
 * epilogue. Channels past the last multiple of 8 use the scalar code. */
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

// channels [c0, c0 + 8*NV) of one pixel, NV accumulators
QL_AVX2 static inline __attribute__((always_inline)) void
block(const int NV, const ql_qdw_args *d, const uint8_t *x, int64_t n, int oh, int ow, int c0, void *y) {
    const ql_conv2d_shape *s = d->s;
    const int C = s->c;
    const __m256i xz = _mm256_set1_epi32(d->x_zero);
    __m256i acc[4];
    #pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[v] = _mm256_loadu_si256((const __m256i *)(d->bias + c0 + 8 * v));
    for (int ki = 0; ki < s->kh; ki++) {
        int ih = oh * s->sh - s->ph + ki * s->dh;
        if (ih < 0 || ih >= s->h) continue;
        for (int kj = 0; kj < s->kw; kj++) {
            int iw = ow * s->sw - s->pw + kj * s->dw;
            if (iw < 0 || iw >= s->w) continue;
            const uint8_t *xp = x + ((n * s->h + ih) * s->w + iw) * C + c0;
            const int32_t *wp = d->w + (int64_t)(ki * s->kw + kj) * C + c0;
            #pragma GCC unroll 4
            for (int v = 0; v < NV; v++) {
                __m256i xv = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(xp + 8 * v)));
                __m256i wv = _mm256_loadu_si256((const __m256i *)(wp + 8 * v));
                acc[v] = _mm256_add_epi32(acc[v], _mm256_mullo_epi32(_mm256_sub_epi32(xv, xz), wv));
            }
        }
    }
    #pragma GCC unroll 4
    for (int v = 0; v < NV; v++) epilogue8(d, acc[v], c0 + 8 * v, y);
}

QL_AVX2 void ql_qdw_pixel_avx2(const ql_qdw_args *d, const uint8_t *x, int64_t n, int oh, int ow, void *y) {
    const int C = d->s->c;
    int c = 0;
    for (; c + 32 <= C; c += 32) block(4, d, x, n, oh, ow, c, y);
    for (; c + 8 <= C; c += 8) block(1, d, x, n, oh, ow, c, y);
    if (c < C) ql_qdw_range_scalar(d, x, n, oh, ow, c, C, y);
}
