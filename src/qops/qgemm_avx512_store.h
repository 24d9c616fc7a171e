/* The AVX-512 epilogue of 16 accumulator columns, shared by the VNNI and AMX
 * GEMM kernels (qgemm_avx512.c, qgemm_amx.c). */
#ifndef QLAB_QGEMM_AVX512_STORE_H
#define QLAB_QGEMM_AVX512_STORE_H
#include <immintrin.h>
#include "qops/qops_internal.h"

// 16 s32 (columns n0 .. n0+15) -> y as s32 / f32 / requantized u8; nr < 16 through a store mask
QL_AVX512 static inline void ql_store16_avx512(const ql_qgemm_ctx *c, __m512i v, int64_t n0, int nr, char *y) {
    if (nr <= 0) return;
    __mmask16 m = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    v = _mm512_add_epi32(v, _mm512_loadu_si512((const void *)(c->off + n0)));
    if (c->out == QL_QOUT_S32) {
        _mm512_mask_storeu_epi32(y, m, v);
        return;
    }
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_loadu_ps(c->mult + n0));
    if (c->out == QL_QOUT_F32) {
        if (c->fbias) f = _mm512_add_ps(f, _mm512_loadu_ps(c->fbias + n0));   // no FMA, as scalar
        _mm512_mask_storeu_ps(y, m, f);
        return;
    }
    f = _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps(c->lo)), _mm512_set1_ps(c->hi));
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), _mm512_set1_epi32(c->y_zero));  // half to even
    _mm512_mask_cvtepi32_storeu_epi8(y, m, q);   // values already in [0, 255]
}

#endif
