/* AVX2 twins of the elementwise and pooling loops (qelem.c, qpool.c): the
 * same float operations in the same order (div, no FMA, max/min then
 * cvtps2dq rounding half to even), so the bits match the scalar code.
 * Tails go through a small zero-padded copy instead of a second formula. */
#include <immintrin.h>
#include <string.h>
#include "qops/qops_internal.h"

// 8 s32 in [0, 255] -> 8 bytes
QL_AVX2 static inline void store8_u8(uint8_t *y, __m256i q) {
    __m128i s = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storel_epi64((__m128i *)y, _mm_packus_epi16(s, s));
}

QL_AVX2 static inline __m256 load8_u8_ps(const uint8_t *x, __m256i zp) {
    __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)x));
    return _mm256_cvtepi32_ps(_mm256_sub_epi32(v, zp));
}

QL_AVX2 static inline __m256i round_clamp(__m256 v, __m256 lo, __m256 hi, __m256i zp) {
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    return _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
}

QL_AVX2 void ql_quantize_u8_avx2(int64_t n, const float *x, float scale, int32_t zp, float lo, float hi,
                                 uint8_t *y) {
    const __m256 s = _mm256_set1_ps(scale), l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi);
    const __m256i z = _mm256_set1_epi32(zp);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) store8_u8(y + i, round_clamp(_mm256_div_ps(_mm256_loadu_ps(x + i), s), l, h, z));
    if (i < n) {
        float t[8] = {0};
        uint8_t o[8];
        memcpy(t, x + i, sizeof(float) * (size_t)(n - i));
        store8_u8(o, round_clamp(_mm256_div_ps(_mm256_loadu_ps(t), s), l, h, z));
        memcpy(y + i, o, (size_t)(n - i));
    }
}

QL_AVX2 void ql_dequantize_u8_avx2(int64_t n, const uint8_t *x, float scale, int32_t zp, float *y) {
    const __m256 s = _mm256_set1_ps(scale);
    const __m256i z = _mm256_set1_epi32(zp);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(load8_u8_ps(x + i, z), s));
    if (i < n) {
        uint8_t t[8] = {0};
        float o[8];
        memcpy(t, x + i, (size_t)(n - i));
        _mm256_storeu_ps(o, _mm256_mul_ps(load8_u8_ps(t, z), s));
        memcpy(y + i, o, sizeof(float) * (size_t)(n - i));
    }
}

// (sa*(a-za) + sb*(b-zb)) / sy, rounded and clamped, for 8 values
QL_AVX2 static inline __m256i qadd8(const uint8_t *a, const uint8_t *b, __m256 sa, __m256i za, __m256 sb,
                                    __m256i zb, __m256 sy, __m256 lo, __m256 hi, __m256i zy) {
    __m256 v = _mm256_add_ps(_mm256_mul_ps(sa, load8_u8_ps(a, za)), _mm256_mul_ps(sb, load8_u8_ps(b, zb)));
    return round_clamp(_mm256_div_ps(v, sy), lo, hi, zy);
}

QL_AVX2 void ql_qadd_u8_avx2(int64_t n, const uint8_t *a, float sa, int32_t za, const uint8_t *b, float sb,
                             int32_t zb, uint8_t *y, float sy, int32_t zy, float lo, float hi) {
    const __m256 va = _mm256_set1_ps(sa), vb = _mm256_set1_ps(sb), vy = _mm256_set1_ps(sy);
    const __m256 l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi);
    const __m256i za8 = _mm256_set1_epi32(za), zb8 = _mm256_set1_epi32(zb), zy8 = _mm256_set1_epi32(zy);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) store8_u8(y + i, qadd8(a + i, b + i, va, za8, vb, zb8, vy, l, h, zy8));
    if (i < n) {
        uint8_t ta[8] = {0}, tb[8] = {0}, o[8];
        memcpy(ta, a + i, (size_t)(n - i));
        memcpy(tb, b + i, (size_t)(n - i));
        store8_u8(o, qadd8(ta, tb, va, za8, vb, zb8, vy, l, h, zy8));
        memcpy(y + i, o, (size_t)(n - i));
    }
}

// y[j] = max(init, the kh x kw window's x[ih*ldh + iw*ldw + j]), j < c: the
// window's 32-byte blocks stay in a register, one store per block
QL_AVX2 void ql_qmax_window_avx2(int c, int kh, int kw, const uint8_t *x, int64_t ldh, int64_t ldw, uint8_t init,
                                 uint8_t *y) {
    int j = 0;
    for (; j + 32 <= c; j += 32) {
        __m256i acc = _mm256_set1_epi8((char)init);
        for (int ih = 0; ih < kh; ih++)
            for (int iw = 0; iw < kw; iw++)
                acc = _mm256_max_epu8(acc, _mm256_loadu_si256((const __m256i *)(x + ih * ldh + iw * ldw + j)));
        _mm256_storeu_si256((__m256i *)(y + j), acc);
    }
    for (; j < c; j++) {
        uint8_t m = init;
        for (int ih = 0; ih < kh; ih++)
            for (int iw = 0; iw < kw; iw++) m = x[ih * ldh + iw * ldw + j] > m ? x[ih * ldh + iw * ldw + j] : m;
        y[j] = m;
    }
}

// sum[j] = sum over hw rows of x[p*ldx + j]
QL_AVX2 void ql_qsum_hw_avx2(int hw, int c, int64_t ldx, const uint8_t *x, int32_t *sum) {
    int j = 0;
    for (; j + 8 <= c; j += 8) {
        __m256i acc = _mm256_setzero_si256();
        for (int64_t p = 0; p < hw; p++)
            acc = _mm256_add_epi32(acc, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x + p * ldx + j))));
        _mm256_storeu_si256((__m256i *)(sum + j), acc);
    }
    for (; j < c; j++) {
        int32_t s = 0;
        for (int64_t p = 0; p < hw; p++) s += x[p * ldx + j];
        sum[j] = s;
    }
}

// y[j] = clamp(round((sum[j] / div - zx) * m), lo, hi) + zy, j < c
QL_AVX2 void ql_qmean_requant_avx2(int c, const int32_t *sum, float div, int32_t zx, float m, float lo, float hi,
                                   int32_t zy, uint8_t *y) {
    const __m256 d = _mm256_set1_ps(div), z = _mm256_set1_ps((float)zx), mm = _mm256_set1_ps(m);
    const __m256 l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi);
    const __m256i zy8 = _mm256_set1_epi32(zy);
    int j = 0;
    for (; j + 8 <= c; j += 8) {
        __m256 v = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(sum + j))), d);
        store8_u8(y + j, round_clamp(_mm256_mul_ps(_mm256_sub_ps(v, z), mm), l, h, zy8));
    }
    if (j < c) {
        int32_t t[8] = {0};
        uint8_t o[8];
        memcpy(t, sum + j, sizeof(int32_t) * (size_t)(c - j));
        __m256 v = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)t)), d);
        store8_u8(o, round_clamp(_mm256_mul_ps(_mm256_sub_ps(v, z), mm), l, h, zy8));
        memcpy(y + j, o, (size_t)(c - j));
    }
}
