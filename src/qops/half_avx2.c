/* F16C / AVX2 twins of the conversions in half.c (same bits), and the
 * small-M dot kernel of the half GEMM: weights widened in registers. */
#include <immintrin.h>
#include "qops/half_internal.h"

// 8 floats -> 8 f16, round to nearest even (vcvtps2ph quiets NaNs as the reference does)
QL_F16C_AVX2 void ql_f32_to_f16_avx2(int64_t n, const float *x, uint16_t *y) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    ql_f32_to_f16_scalar(n - i, x + i, y + i);
}

QL_F16C_AVX2 void ql_f16_to_f32_avx2(int64_t n, const uint16_t *x, float *y) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    ql_f16_to_f32_scalar(n - i, x + i, y + i);
}

// 8 floats -> 8 bf16 in the low halves of 32-bit lanes: the reference's integer rounding
QL_F16C_AVX2 static __m256i bf16_round8(__m256i x) {
    const __m256i lsb_mask = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    __m256i hi = _mm256_srli_epi32(x, 16);
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, bias), _mm256_and_si256(hi, lsb_mask)), 16);
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs_mask), inf);   // |x| > inf as integers: NaN
    __m256i q = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
    return _mm256_blendv_epi8(r, q, nan);
}

QL_F16C_AVX2 void ql_f32_to_bf16_avx2(int64_t n, const float *x, uint16_t *y) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i a = bf16_round8(_mm256_loadu_si256((const __m256i *)(x + i)));
        __m256i b = bf16_round8(_mm256_loadu_si256((const __m256i *)(x + i + 8)));
        // packus works per 128-bit lane: a0-3 b0-3 a4-7 b4-7, then put the quads in order
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
        _mm256_storeu_si256((__m256i *)(y + i), p);
    }
    ql_f32_to_bf16_scalar(n - i, x + i, y + i);
}

QL_F16C_AVX2 static __m256 bf16_widen8(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

QL_F16C_AVX2 void ql_bf16_to_f32_avx2(int64_t n, const uint16_t *x, float *y) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, bf16_widen8(x + i));
    ql_bf16_to_f32_scalar(n - i, x + i, y + i);
}

QL_F16C_AVX2 static __m256 widen8(int bf16, const uint16_t *p) {
    return bf16 ? bf16_widen8(p) : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

QL_F16C_AVX2 static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float widen1(int bf16, uint16_t h) { return bf16 ? ql_bf16_to_f32_ref(h) : ql_f16_to_f32_ref(h); }

// rows r < mr (<= 4) of x . column j of W, two columns at a time (8 accumulators);
// inlined twice with bf16 a constant, so the widening is chosen at compile time
QL_F16C_AVX2 static inline __attribute__((always_inline)) void
dot_rows(const int bf16, int mr, int k, const float *x, int64_t ldx, const uint16_t *w, int n0, int n1,
         const float *b, float *y, int64_t ldy) {
    const int k8 = k & ~7;
    int j = n0;
    for (; j + 2 <= n1; j += 2) {
        const uint16_t *w0 = w + (int64_t)j * k, *w1 = w0 + k;
        __m256 a0[4], a1[4];
        for (int r = 0; r < 4; r++) { a0[r] = _mm256_setzero_ps(); a1[r] = _mm256_setzero_ps(); }
        for (int kk = 0; kk < k8; kk += 8) {
            __m256 v0 = widen8(bf16, w0 + kk), v1 = widen8(bf16, w1 + kk);
            for (int r = 0; r < 4; r++) {
                if (r >= mr) break;
                __m256 xv = _mm256_loadu_ps(x + r * ldx + kk);
                a0[r] = _mm256_fmadd_ps(xv, v0, a0[r]);
                a1[r] = _mm256_fmadd_ps(xv, v1, a1[r]);
            }
        }
        for (int r = 0; r < mr; r++) {
            float s0 = hsum8(a0[r]), s1 = hsum8(a1[r]);
            for (int kk = k8; kk < k; kk++) {
                s0 += x[r * ldx + kk] * widen1(bf16, w0[kk]);
                s1 += x[r * ldx + kk] * widen1(bf16, w1[kk]);
            }
            y[r * ldy + j] = s0 + (b ? b[j] : 0.0f);
            y[r * ldy + j + 1] = s1 + (b ? b[j + 1] : 0.0f);
        }
    }
    for (; j < n1; j++) {
        const uint16_t *w0 = w + (int64_t)j * k;
        __m256 a0[4];
        for (int r = 0; r < 4; r++) a0[r] = _mm256_setzero_ps();
        for (int kk = 0; kk < k8; kk += 8) {
            __m256 v0 = widen8(bf16, w0 + kk);
            for (int r = 0; r < 4; r++) {
                if (r >= mr) break;
                a0[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * ldx + kk), v0, a0[r]);
            }
        }
        for (int r = 0; r < mr; r++) {
            float s0 = hsum8(a0[r]);
            for (int kk = k8; kk < k; kk++) s0 += x[r * ldx + kk] * widen1(bf16, w0[kk]);
            y[r * ldy + j] = s0 + (b ? b[j] : 0.0f);
        }
    }
}

QL_F16C_AVX2 void ql_hdot_rows_avx2(int bf16, int mr, int k, const float *x, int64_t ldx, const uint16_t *w,
                                    int n0, int n1, const float *b, float *y, int64_t ldy) {
    if (bf16) dot_rows(1, mr, k, x, ldx, w, n0, n1, b, y, ldy);
    else dot_rows(0, mr, k, x, ldx, w, n0, n1, b, y, ldy);
}
