/* AVX2 INT8 GEMM on byte quads (the VNNI layout): _mm256_maddubs_epi16
 * multiplies u8 A by s8 W and adds adjacent products into s16, then
 * _mm256_madd_epi16 by ones sums the pairs of each quad into s32. That is
 * twice the multiply throughput of widening both sides to s16, but the s16
 * pair sum saturates once a*w + a'*w' leaves [-32768, 32767], which only
 * 8-bit A can reach (2*255*128). So each A block is checked while packing:
 *   - every code <= 127 (7-bit activations, reduce_range): one maddubs per
 *     quad, exact (2*127*128 = 32512);
 *   - some code >= 128: a = (a & 127) + (a & 128), two maddubs, each exact
 *     (2*128*-128 = -32768 still fits), summed in s32. Half the speed,
 *     still exact.
 * Micro-tile 4 rows x 16 columns: 8 accumulators, 2 weight vectors and one
 * broadcast A quad per row and step (step = 4 values of K). */
#include <immintrin.h>
#include <string.h>
#include "qops/qgemm_avx2_common.h"

#define MR 4
#define NR 16

static inline uint32_t quad(const uint8_t *row, int64_t k0, int k) {
    uint32_t v = 0;
    for (int j = 0; j < 4; j++) v |= (uint32_t)(k0 + j < k ? row[k0 + j] : 0) << (8 * j);
    return v;
}

// rows x steps [s0, s0+ns) of A -> groups of 4 rows of byte quads; returns
// nonzero when some code is >= 128. Rows past the end repeat the last row:
// kernels never read them (mr < MR).
QL_AVX2 static int pack_a_avx2(const uint8_t *a, int64_t lda, int rows, int k, int64_t s0,
                               int64_t ns, uint8_t *dst) {
    int64_t groups = (rows + MR - 1) / MR;
    __m256i any = _mm256_setzero_si256();
    uint32_t any_tail = 0;
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t *src[MR];
        for (int r = 0; r < MR; r++) src[r] = a + (g * MR + r < rows ? g * MR + r : rows - 1) * lda;
        uint32_t *d = (uint32_t *)(dst + g * ns * MR * 4);
        int64_t s = 0;
        // 8 steps (32 values of K) at a time: a 4 x 8 transpose of quads
        for (; s + 8 <= ns && (s0 + s) * 4 + 32 <= k; s += 8) {
            int64_t k0 = (s0 + s) * 4;
            __m256i v0 = _mm256_loadu_si256((const __m256i *)(src[0] + k0));
            __m256i v1 = _mm256_loadu_si256((const __m256i *)(src[1] + k0));
            __m256i v2 = _mm256_loadu_si256((const __m256i *)(src[2] + k0));
            __m256i v3 = _mm256_loadu_si256((const __m256i *)(src[3] + k0));
            any = _mm256_or_si256(any, _mm256_or_si256(_mm256_or_si256(v0, v1), _mm256_or_si256(v2, v3)));
            ql_avx2_transpose4x8_store(v0, v1, v2, v3, d + s * MR);
        }
        // 4 steps (16 values of K): the same transpose on 128-bit rows
        for (; s + 4 <= ns && (s0 + s) * 4 + 16 <= k; s += 4) {
            int64_t k0 = (s0 + s) * 4;
            __m128i v0 = _mm_loadu_si128((const __m128i *)(src[0] + k0));
            __m128i v1 = _mm_loadu_si128((const __m128i *)(src[1] + k0));
            __m128i v2 = _mm_loadu_si128((const __m128i *)(src[2] + k0));
            __m128i v3 = _mm_loadu_si128((const __m128i *)(src[3] + k0));
            any = _mm256_or_si256(any, _mm256_castsi128_si256(_mm_or_si128(_mm_or_si128(v0, v1), _mm_or_si128(v2, v3))));
            __m128i t0 = _mm_unpacklo_epi32(v0, v1), t1 = _mm_unpackhi_epi32(v0, v1);
            __m128i t2 = _mm_unpacklo_epi32(v2, v3), t3 = _mm_unpackhi_epi32(v2, v3);
            __m128i *o = (__m128i *)(d + s * MR);
            _mm_storeu_si128(o + 0, _mm_unpacklo_epi64(t0, t2));
            _mm_storeu_si128(o + 1, _mm_unpackhi_epi64(t0, t2));
            _mm_storeu_si128(o + 2, _mm_unpacklo_epi64(t1, t3));
            _mm_storeu_si128(o + 3, _mm_unpackhi_epi64(t1, t3));
        }
        for (; s < ns; s++)
            for (int r = 0; r < MR; r++) {
                int64_t k0 = (s0 + s) * 4;
                uint32_t q;
                if (k0 + 4 <= k) memcpy(&q, src[r] + k0, 4);
                else q = quad(src[r], k0, k);
                any_tail |= q;
                d[s * MR + r] = q;
            }
    }
    return (_mm256_movemask_epi8(any) | (int)(any_tail & 0x80808080u)) != 0;
}

// R rows, SPLIT = A has codes >= 128 (both compile-time after inlining: the
// accumulators stay in registers)
QL_AVX2 static inline __attribute__((always_inline)) void
tile(const int R, const int SPLIT, int nr, int64_t ns, const uint8_t *ap, const uint8_t *wp,
     int32_t *part, int flags, const ql_qgemm_ctx *c, int64_t n0, void *y, int64_t ldy) {
    __m256i acc0[MR], acc1[MR];
    const __m256i ones = _mm256_set1_epi16(1), m7f = _mm256_set1_epi8(0x7f);
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
        __m256i w0 = _mm256_loadu_si256((const __m256i *)wp);          // columns 0..7, 4 bytes each
        __m256i w1 = _mm256_loadu_si256((const __m256i *)(wp + 32));   // columns 8..15
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            int32_t q;
            memcpy(&q, ap + r * 4, 4);
            __m256i av = _mm256_set1_epi32(q);
            if (!SPLIT) {
                acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(_mm256_maddubs_epi16(av, w0), ones));
                acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(_mm256_maddubs_epi16(av, w1), ones));
            } else {   // a = (a & 127) + (a & 128): two exact products, summed in s32
                __m256i lo = _mm256_and_si256(av, m7f), hi = _mm256_xor_si256(av, lo);
                acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(_mm256_maddubs_epi16(lo, w0), ones));
                acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(_mm256_maddubs_epi16(lo, w1), ones));
                acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(_mm256_maddubs_epi16(hi, w0), ones));
                acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(_mm256_maddubs_epi16(hi, w1), ones));
            }
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

// mr rows (1..4) as a compile-time count
QL_AVX2 static inline __attribute__((always_inline)) void
tiles(const int SPLIT, int mr, int nr, int64_t ns, const uint8_t *ap, const uint8_t *wp, int32_t *part,
      int flags, const ql_qgemm_ctx *c, int64_t n0, void *y, int64_t ldy) {
    switch (mr) {
    case 1: tile(1, SPLIT, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    case 2: tile(2, SPLIT, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    case 3: tile(3, SPLIT, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    default: tile(4, SPLIT, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    }
}

QL_AVX2 static void kernel_avx2(int mr, int nr, int64_t ns, const uint8_t *ap, const uint8_t *wp,
                                int32_t *part, int flags, const ql_qgemm_ctx *c, int64_t n0, void *y,
                                int64_t ldy) {
    if (flags & QL_AHIGH) tiles(1, mr, nr, ns, ap, wp, part, flags, c, n0, y, ldy);
    else tiles(0, mr, nr, ns, ap, wp, part, flags, c, n0, y, ldy);
    /* explicit: the tile's tail call skips the compiler's vzeroupper, and dirty
     * upper ymm halves make every SSE instruction after us several times slower */
    _mm256_zeroupper();
}

const ql_qgemm_impl ql_qgemm_impl_avx2 = {
    .isa = QL_ISA_AVX2, .mr = MR, .nr = NR, .kstep = 4, .kc_steps = 256, .mc_max = 96,
    .pack_a = pack_a_avx2, .kernel = kernel_avx2,
};
