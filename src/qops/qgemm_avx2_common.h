/* Pieces shared by the two AVX2 INT8 GEMM kernels (qgemm_avx2.c: maddubs on
 * byte quads, 4-row tiles; qgemm_avx2_s16.c: madd on s16 pairs, 6-row
 * tiles). Both use 16-column tiles and 4-byte steps, so A packing shares the
 * 4-row transpose and every tile row ends in the same epilogue. */
#ifndef QLAB_QGEMM_AVX2_COMMON_H
#define QLAB_QGEMM_AVX2_COMMON_H
#include <immintrin.h>
#include <string.h>
#include "qops/qops_internal.h"

/* Rows v0..v3 of 8 dwords (steps s..s+7 of 4 A rows) -> d as step-major groups
 * of 4 dwords: d[step * 4 + row]. */
QL_AVX2 static inline __attribute__((always_inline)) void
ql_avx2_transpose4x8_store(__m256i v0, __m256i v1, __m256i v2, __m256i v3, uint32_t *d) {
    __m256i t0 = _mm256_unpacklo_epi32(v0, v1), t1 = _mm256_unpackhi_epi32(v0, v1);
    __m256i t2 = _mm256_unpacklo_epi32(v2, v3), t3 = _mm256_unpackhi_epi32(v2, v3);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);  // steps 0|4, 1|5
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);  // steps 2|6, 3|7
    __m256i *o = (__m256i *)d;
    _mm256_storeu_si256(o + 0, _mm256_permute2x128_si256(u0, u1, 0x20));
    _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
    _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
    _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
}

/* 16 s32 accumulators (two vectors, columns n0..n0+15) -> one y row as s32,
 * f32 or requantized u8; nr < 16 goes through a copy. */
QL_AVX2 static inline __attribute__((always_inline)) void
ql_avx2_store_row(const ql_qgemm_ctx *c, __m256i v0, __m256i v1, int64_t n0, int nr, char *y) {
    v0 = _mm256_add_epi32(v0, _mm256_loadu_si256((const __m256i *)(c->off + n0)));
    v1 = _mm256_add_epi32(v1, _mm256_loadu_si256((const __m256i *)(c->off + n0 + 8)));
    if (c->out == QL_QOUT_S32) {
        int32_t tmp[16];
        int32_t *d = nr == 16 ? (int32_t *)y : tmp;
        _mm256_storeu_si256((__m256i *)d, v0);
        _mm256_storeu_si256((__m256i *)(d + 8), v1);
        if (d == tmp) memcpy(y, tmp, sizeof(int32_t) * nr);
        return;
    }
    __m256 f0 = _mm256_mul_ps(_mm256_cvtepi32_ps(v0), _mm256_loadu_ps(c->mult + n0));
    __m256 f1 = _mm256_mul_ps(_mm256_cvtepi32_ps(v1), _mm256_loadu_ps(c->mult + n0 + 8));
    if (c->out == QL_QOUT_F32) {
        if (c->fbias) {   // separate mul and add (no FMA): as the scalar path rounds
            f0 = _mm256_add_ps(f0, _mm256_loadu_ps(c->fbias + n0));
            f1 = _mm256_add_ps(f1, _mm256_loadu_ps(c->fbias + n0 + 8));
        }
        float tmp[16];
        float *d = nr == 16 ? (float *)y : tmp;
        _mm256_storeu_ps(d, f0);
        _mm256_storeu_ps(d + 8, f1);
        if (d == tmp) memcpy(y, tmp, sizeof(float) * nr);
        return;
    }
    const __m256 lo = _mm256_set1_ps(c->lo), hi = _mm256_set1_ps(c->hi);
    const __m256i yz = _mm256_set1_epi32(c->y_zero);
    f0 = _mm256_min_ps(_mm256_max_ps(f0, lo), hi);
    f1 = _mm256_min_ps(_mm256_max_ps(f1, lo), hi);
    __m256i q0 = _mm256_add_epi32(_mm256_cvtps_epi32(f0), yz);   // round half to even (MXCSR)
    __m256i q1 = _mm256_add_epi32(_mm256_cvtps_epi32(f1), yz);
    __m128i s0 = _mm_packs_epi32(_mm256_castsi256_si128(q0), _mm256_extracti128_si256(q0, 1));
    __m128i s1 = _mm_packs_epi32(_mm256_castsi256_si128(q1), _mm256_extracti128_si256(q1, 1));
    __m128i b = _mm_packus_epi16(s0, s1);   // values already in [0, 255]
    if (nr == 16) { _mm_storeu_si128((__m128i *)y, b); return; }
    uint8_t tmp[16];
    _mm_storeu_si128((__m128i *)tmp, b);
    memcpy(y, tmp, (size_t)nr);
}

#endif
