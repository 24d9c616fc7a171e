/* The AVX-512 BF16 micro-kernel of the half GEMM: up to 8 rows x one panel
 * of 16 columns, vdpbf16ps over K pairs (x pairs broadcast, W pairs packed).
 * Same arithmetic as ql_dpbf16_kernel_ref; only built into the dispatch when
 * the CPU reports avx512_bf16. */
#include <immintrin.h>
#include "qops/half_internal.h"

QL_AVX512BF16 void ql_dpbf16_kernel_avx512(int mr, int nr, int64_t k2, const uint32_t *a, int64_t lda,
                                           const uint16_t *wp, const float *b, float *y, int64_t ldy) {
    __m512 acc[QL_DPBF16_MR];
    for (int r = 0; r < QL_DPBF16_MR; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t s = 0; s < k2; s++) {
        __m512bh wv = (__m512bh)_mm512_loadu_si512((const void *)(wp + s * QL_DPBF16_NR * 2));
        for (int r = 0; r < QL_DPBF16_MR; r++) {
            if (r >= mr) break;
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r * lda + s]);
            acc[r] = _mm512_dpbf16_ps(acc[r], av, wv);
        }
    }
    __mmask16 mk = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    __m512 bv = b ? _mm512_maskz_loadu_ps(mk, b) : _mm512_setzero_ps();
    for (int r = 0; r < mr; r++) _mm512_mask_storeu_ps(y + r * ldy, mk, _mm512_add_ps(acc[r], bv));
}
