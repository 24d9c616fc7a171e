/* AVX2 INT8 GEMM for 8-bit activations: exact arithmetic through s16. A (u8)
 * and W (s8) are both widened to s16 and _mm256_madd_epi16 sums pairs of
 * products into s32: |255*128*2| fits, so nothing saturates. One multiply
 * per 16 products: half the rate of the maddubs kernel (qgemm_avx2.c) on
 * 7-bit activations, but a third faster than its split path on 8-bit ones,
 * so layers whose inputs use all 8 bits are packed for this kernel.
 * Micro-tile 4 rows x 16 columns: 8 accumulators, 2 weight vectors and
 * one broadcast A pair per row and step (step = 2 values of K). */
#include <immintrin.h>
#include <string.h>
#include "qops/qgemm_avx2_common.h"

#define MR 4
#define NR 16

static inline uint32_t pair16(const uint8_t *row, int64_t k0, int k) {
    uint32_t lo = k0 < k ? row[k0] : 0, hi = k0 + 1 < k ? row[k0 + 1] : 0;
    return lo | hi << 16;
}

QL_AVX2 static inline __m256i widen16(const uint8_t *p) {
    return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
}

// rows x steps [s0, s0+ns) of A -> groups of 4 rows of (s16, s16) pairs. Rows
// past the end repeat the last row: kernels never read them (mr < MR).
QL_AVX2 static int pack_a_avx2(const uint8_t *a, int64_t lda, int rows, int k, int64_t s0,
                                int64_t ns, uint8_t *dst) {
    int64_t groups = (rows + MR - 1) / MR;
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t *src[MR];
        for (int r = 0; r < MR; r++) src[r] = a + (g * MR + r < rows ? g * MR + r : rows - 1) * lda;
        uint32_t *d = (uint32_t *)(dst + g * ns * MR * 4);
        int64_t s = 0;
        // 8 steps (16 values of K) at a time: widen, then a 4 x 8 transpose of pairs
        for (; s + 8 <= ns && (s0 + s) * 2 + 16 <= k; s += 8) {
            int64_t k0 = (s0 + s) * 2;
            for (int r = 0; r < MR; r++) _mm_prefetch((const char *)(src[r] + MR * lda + k0), _MM_HINT_T0);
            __m256i v0 = widen16(src[0] + k0), v1 = widen16(src[1] + k0);
            __m256i v2 = widen16(src[2] + k0), v3 = widen16(src[3] + k0);
            ql_avx2_transpose4x8_store(v0, v1, v2, v3, d + s * MR);
        }
        for (; s < ns; s++)
            for (int r = 0; r < MR; r++) d[s * MR + r] = pair16(src[r], (s0 + s) * 2, k);
    }
    return 0;   // s16 products never saturate
}

// R rows (compile-time after inlining: the accumulators stay in registers)
QL_AVX2 static inline __attribute__((always_inline)) void
tile(const int R, int nr, int64_t ns, const uint8_t *ap, const uint8_t *wp, int32_t *part,
     int flags, const ql_qgemm_ctx *c, int64_t n0, void *y, int64_t ldy) {
    __m256i acc0[MR], acc1[MR];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        if (flags & QL_KFIRST) {
            acc0[r] = acc1[r] = _mm256_setzero_si256();
        } else {
            acc0[r] = _mm256_loadu_si256((const __m256i *)(part + r * NR));
            acc1[r] = _mm256_loadu_si256((const __m256i *)(part + r * NR + 8));
        }
    }
    for (int64_t s = 0; s < ns; s++, ap += MR * 4, wp += NR * 4) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)wp);
        __m256i w1 = _mm256_loadu_si256((const __m256i *)(wp + 32));
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            int32_t pr;
            memcpy(&pr, ap + r * 4, 4);
            __m256i av = _mm256_set1_epi32(pr);
            acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(av, w0));
            acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(av, w1));
        }
    }
    if (!(flags & QL_KLAST)) {
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            _mm256_storeu_si256((__m256i *)(part + r * NR), acc0[r]);
            _mm256_storeu_si256((__m256i *)(part + r * NR + 8), acc1[r]);
        }
        return;
    }
    size_t es = c->out == QL_QOUT_U8 ? 1 : 4;
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        ql_avx2_store_row(c, acc0[r], acc1[r], n0, nr, (char *)y + (size_t)(r * ldy) * es);
}

QL_AVX2 static void kernel_avx2(int mr, int nr, int64_t ns, const uint8_t *ap, const uint8_t *wp,
                                int32_t *part, int flags, const ql_qgemm_ctx *c, int64_t n0, void *y,
                                int64_t ldy) {
    switch (mr) {
    case 1: tile(1, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    case 2: tile(2, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    case 3: tile(3, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    default: tile(4, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    }
    /* explicit: the tile's tail call skips the compiler's vzeroupper, and dirty
     * upper ymm halves make every SSE instruction after us several times slower */
    _mm256_zeroupper();
}

const ql_qgemm_impl ql_qgemm_impl_avx2_s16 = {
    .isa = QL_ISA_AVX2, .mr = MR, .nr = NR, .kstep = 2, .kc_steps = 384, .mc_max = 96,
    .pack_a = pack_a_avx2, .kernel = kernel_avx2,
};
