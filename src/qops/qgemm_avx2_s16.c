/* AVX2 INT8 GEMM for 8-bit activations: exact arithmetic through s16. A (u8)
 * and W (s8) are both widened to s16 and _mm256_madd_epi16 sums pairs of
 * products into s32: |255*128*2| fits, so nothing saturates. One multiply
 * per 16 products: half the rate of the maddubs kernel (qgemm_avx2.c) on
 * 7-bit activations, but a third faster than its split path on 8-bit ones,
 * so layers whose inputs use all 8 bits are packed for this kernel.
 * Micro-tile 6 rows x 16 columns: 12 accumulators, 2 weight vectors and
 * one broadcast A pair per row and step (step = 2 values of K). */
#include <immintrin.h>
#include <string.h>
#include "qops/qgemm_avx2_common.h"

#define MR 6
#define NR 16

/* n (0..16) bytes of s, zeros after them, built in registers from at most
 * two overlapping words (bytes stored to a buffer and read back as one
 * vector stall on store forwarding) */
QL_AVX2 static inline __m128i load_upto16(const uint8_t *s, int n) {
    uint64_t lo = 0, hi = 0;
    if (n >= 8) {
        memcpy(&lo, s, 8);
        if (n > 8) { memcpy(&hi, s + n - 8, 8); hi >>= 8 * (16 - n); }
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4); memcpy(&b, s + n - 4, 4);
        lo = n > 4 ? a | (uint64_t)(b >> 8 * (8 - n)) << 32 : a;
    } else {
        for (int i = 0; i < n; i++) lo |= (uint64_t)s[i] << 8 * i;
    }
    return _mm_set_epi64x((long long)hi, (long long)lo);
}

QL_AVX2 static inline __m256i widen16(const uint8_t *p) {
    return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
}

// rows x steps [s0, s0+ns) of A -> groups of 6 rows of (s16, s16) pairs:
// rows 0..3 step-major (ns * 4 dwords), then rows 4..5 (ns * 2 dwords).
// Rows past the end repeat the last row: their sums are never stored.
QL_AVX2 static int pack_a_avx2(const uint8_t *a, int64_t lda, int rows, int k, int64_t s0,
                                int64_t ns, uint8_t *dst) {
    int64_t groups = (rows + MR - 1) / MR;
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t *src[MR];
        for (int r = 0; r < MR; r++) src[r] = a + (g * MR + r < rows ? g * MR + r : rows - 1) * lda;
        uint32_t *d4 = (uint32_t *)(dst + g * ns * MR * 4), *d2 = d4 + ns * 4;
        int64_t s = 0;
        // 8 steps (16 values of K) at a time: widen, a 4 x 8 transpose and a 2 x 8 interleave
        for (; s + 8 <= ns && (s0 + s) * 2 + 16 <= k; s += 8) {
            int64_t k0 = (s0 + s) * 2;
            for (int r = 0; r < MR; r++) _mm_prefetch((const char *)(src[r] + MR * lda + k0), _MM_HINT_T0);
            __m256i v0 = widen16(src[0] + k0), v1 = widen16(src[1] + k0);
            __m256i v2 = widen16(src[2] + k0), v3 = widen16(src[3] + k0);
            ql_avx2_transpose4x8_store(v0, v1, v2, v3, d4 + s * 4);
            __m256i v4 = widen16(src[4] + k0), v5 = widen16(src[5] + k0);
            __m256i lo = _mm256_unpacklo_epi32(v4, v5), hi = _mm256_unpackhi_epi32(v4, v5);  // steps 0,1|4,5 and 2,3|6,7
            _mm256_storeu_si256((__m256i *)(d2 + s * 2), _mm256_permute2x128_si256(lo, hi, 0x20));
            _mm256_storeu_si256((__m256i *)(d2 + s * 2 + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
        }
        // the last steps (K = 9 of a stem takes only these): each row's last
        // values with zeros after them, then the same transposes
        for (; s < ns; s += 8) {
            int64_t k0 = (s0 + s) * 2, nb = k - k0, cnt = ns - s < 8 ? ns - s : 8;
            nb = nb < 0 ? 0 : nb > 16 ? 16 : nb;
            __m256i v[MR];
            for (int r = 0; r < MR; r++) v[r] = _mm256_cvtepu8_epi16(load_upto16(src[r] + k0, (int)nb));
            uint32_t t4[32], t2[16];
            ql_avx2_transpose4x8_store(v[0], v[1], v[2], v[3], t4);
            __m256i lo = _mm256_unpacklo_epi32(v[4], v[5]), hi = _mm256_unpackhi_epi32(v[4], v[5]);
            _mm256_storeu_si256((__m256i *)t2, _mm256_permute2x128_si256(lo, hi, 0x20));
            _mm256_storeu_si256((__m256i *)(t2 + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
            for (int64_t i = 0; i < cnt * 4; i++) d4[s * 4 + i] = t4[i];
            for (int64_t i = 0; i < cnt * 2; i++) d2[s * 2 + i] = t2[i];
        }
    }
    return 0;   // s16 products never saturate
}

/* One step of one row: broadcast its pair, two madds into the row's two
 * accumulators (through ymm3). */
#define ROW(off, base, a0, a1)                                                        \
    "vpbroadcastd " #off "(%[" #base "]), %%ymm2\n\t"                               \
    "vpmaddwd %%ymm0, %%ymm2, %%ymm3\n\tvpaddd %%ymm3, %%" #a0 ", %%" #a0 "\n\t" \
    "vpmaddwd %%ymm1, %%ymm2, %%ymm3\n\tvpaddd %%ymm3, %%" #a1 ", %%" #a1 "\n\t"

#define ZERO(r) "vpxor %%" #r ", %%" #r ", %%" #r "\n\t"

/* acc (12 vectors: row r's columns 0..7 and 8..15 at 2r, 2r+1) = the tile's
 * ns steps, plus acc's own values unless first (then acc is only written).
 * In assembly because the 12 accumulators, 2 weight vectors, the broadcast
 * and the product take all 16 ymm registers, and gcc spills some of them
 * when it writes this loop from intrinsics. 6 x 16 rather than 4 x 16: 6
 * broadcasts and 2 loads per 12 madds instead of 4 and 2 per 8 (in L1, on
 * Zen 3, 73-75 against 67-68 GMAC/s). */
QL_AVX2 static void steps6x16(int64_t ns, const uint8_t *a4, const uint8_t *a2, const uint8_t *wp, __m256i *acc,
                              int first) {
    __asm__ volatile(
        "test %[first], %[first]\n\tjz 3f\n\t"
        ZERO(ymm4) ZERO(ymm5) ZERO(ymm6) ZERO(ymm7) ZERO(ymm8) ZERO(ymm9)
        ZERO(ymm10) ZERO(ymm11) ZERO(ymm12) ZERO(ymm13) ZERO(ymm14) ZERO(ymm15)
        "jmp 4f\n\t"
        "3:\n\t"
        "vmovdqu 0(%[acc]), %%ymm4\n\tvmovdqu 32(%[acc]), %%ymm5\n\t"
        "vmovdqu 64(%[acc]), %%ymm6\n\tvmovdqu 96(%[acc]), %%ymm7\n\t"
        "vmovdqu 128(%[acc]), %%ymm8\n\tvmovdqu 160(%[acc]), %%ymm9\n\t"
        "vmovdqu 192(%[acc]), %%ymm10\n\tvmovdqu 224(%[acc]), %%ymm11\n\t"
        "vmovdqu 256(%[acc]), %%ymm12\n\tvmovdqu 288(%[acc]), %%ymm13\n\t"
        "vmovdqu 320(%[acc]), %%ymm14\n\tvmovdqu 352(%[acc]), %%ymm15\n\t"
        "4:\n\t"
        "test %[n], %[n]\n\tjle 2f\n\t"
        "1:\n\t"
        "vmovdqu (%[w]), %%ymm0\n\tvmovdqu 32(%[w]), %%ymm1\n\t"
        ROW(0, a4, ymm4, ymm5) ROW(4, a4, ymm6, ymm7) ROW(8, a4, ymm8, ymm9) ROW(12, a4, ymm10, ymm11)
        ROW(0, a2, ymm12, ymm13) ROW(4, a2, ymm14, ymm15)
        "add $16, %[a4]\n\tadd $8, %[a2]\n\tadd $64, %[w]\n\tdec %[n]\n\tjnz 1b\n\t"
        "2:\n\t"
        "vmovdqu %%ymm4, 0(%[acc])\n\tvmovdqu %%ymm5, 32(%[acc])\n\t"
        "vmovdqu %%ymm6, 64(%[acc])\n\tvmovdqu %%ymm7, 96(%[acc])\n\t"
        "vmovdqu %%ymm8, 128(%[acc])\n\tvmovdqu %%ymm9, 160(%[acc])\n\t"
        "vmovdqu %%ymm10, 192(%[acc])\n\tvmovdqu %%ymm11, 224(%[acc])\n\t"
        "vmovdqu %%ymm12, 256(%[acc])\n\tvmovdqu %%ymm13, 288(%[acc])\n\t"
        "vmovdqu %%ymm14, 320(%[acc])\n\tvmovdqu %%ymm15, 352(%[acc])\n\t"
        : [a4] "+r"(a4), [a2] "+r"(a2), [w] "+r"(wp), [n] "+r"(ns)
        : [acc] "r"(acc), [first] "r"(first)
        : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}
#undef ROW
#undef ZERO

/* Requantized u8, 16 columns, rows [0, mr): the column constants loaded
 * once for all rows (ql_avx2_store_row reloads them per row, and at K = 16
 * the epilogue costs as much as the multiplies). The same arithmetic. */
QL_AVX2 static inline void store_u8_rows(const ql_qgemm_ctx *c, const __m256i *acc, int mr, int64_t n0, uint8_t *y,
                                         int64_t ldy) {
    const __m256i o0 = _mm256_loadu_si256((const __m256i *)(c->off + n0));
    const __m256i o1 = _mm256_loadu_si256((const __m256i *)(c->off + n0 + 8));
    const __m256 m0 = _mm256_loadu_ps(c->mult + n0), m1 = _mm256_loadu_ps(c->mult + n0 + 8);
    const __m256 lo = _mm256_set1_ps(c->lo), hi = _mm256_set1_ps(c->hi);
    const __m256i yz = _mm256_set1_epi32(c->y_zero);
    for (int r = 0; r < mr; r++) {
        __m256 f0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc[2 * r], o0)), m0);
        __m256 f1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc[2 * r + 1], o1)), m1);
        f0 = _mm256_min_ps(_mm256_max_ps(f0, lo), hi);
        f1 = _mm256_min_ps(_mm256_max_ps(f1, lo), hi);
        __m256i q0 = _mm256_add_epi32(_mm256_cvtps_epi32(f0), yz);   // round half to even (MXCSR)
        __m256i q1 = _mm256_add_epi32(_mm256_cvtps_epi32(f1), yz);
        __m256i s = _mm256_packs_epi32(q0, q1);                       // 0-3 8-11 | 4-7 12-15
        __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        b = _mm_shuffle_epi32(b, _MM_SHUFFLE(3, 1, 2, 0));            // 0-3 4-7 8-11 12-15
        _mm_storeu_si128((__m128i *)(y + r * ldy), b);
    }
}

/* R = 1..4 rows (compile-time after inlining: the accumulators stay in
 * registers), from the 4-row part of the packed group: batch 1 meets GEMMs
 * of 1-4 rows (ResNet-18's last stages), which the 6-row loop would do 6
 * rows of. */
QL_AVX2 static inline __attribute__((always_inline)) void
tile_small(const int R, int nr, int64_t ns, const uint8_t *ap, const uint8_t *wp, int32_t *part, int flags,
           const ql_qgemm_ctx *c, int64_t n0, void *y, int64_t ldy) {
    __m256i acc0[4], acc1[4];
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        if (flags & QL_KFIRST) {
            acc0[r] = acc1[r] = _mm256_setzero_si256();
        } else {
            acc0[r] = _mm256_loadu_si256((const __m256i *)(part + r * NR));
            acc1[r] = _mm256_loadu_si256((const __m256i *)(part + r * NR + 8));
        }
    }
    for (int64_t s = 0; s < ns; s++, ap += 16, wp += NR * 4) {
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

// 5 or 6 rows: all 6 computed (the packed rows past mr repeat the last one), mr kept
QL_AVX2 static void tile6(int mr, int nr, int64_t ns, const uint8_t *ap, const uint8_t *wp, int32_t *part,
                          int flags, const ql_qgemm_ctx *c, int64_t n0, void *y, int64_t ldy) {
    __m256i acc[2 * MR];
    const int first = flags & QL_KFIRST;
    if (!first)
        for (int r = 0; r < MR; r++) {   /* rows past mr: whatever they add up to is never stored */
            const int32_t *pr = part + (r < mr ? r : 0) * NR;
            acc[2 * r] = _mm256_loadu_si256((const __m256i *)pr);
            acc[2 * r + 1] = _mm256_loadu_si256((const __m256i *)(pr + 8));
        }
    steps6x16(ns, ap, ap + ns * 16, wp, acc, first);
    if (!(flags & QL_KLAST)) {
        for (int r = 0; r < mr; r++) {
            _mm256_storeu_si256((__m256i *)(part + r * NR), acc[2 * r]);
            _mm256_storeu_si256((__m256i *)(part + r * NR + 8), acc[2 * r + 1]);
        }
    } else if (c->out == QL_QOUT_U8 && nr == NR) {
        store_u8_rows(c, acc, mr, n0, y, ldy);
    } else {
        size_t es = c->out == QL_QOUT_U8 ? 1 : 4;
        for (int r = 0; r < mr; r++)
            ql_avx2_store_row(c, acc[2 * r], acc[2 * r + 1], n0, nr, (char *)y + (size_t)(r * ldy) * es);
    }
}

QL_AVX2 static void kernel_avx2(int mr, int nr, int64_t ns, const uint8_t *ap, const uint8_t *wp,
                                int32_t *part, int flags, const ql_qgemm_ctx *c, int64_t n0, void *y,
                                int64_t ldy) {
    switch (mr) {
    case 1: tile_small(1, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    case 2: tile_small(2, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    case 3: tile_small(3, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    case 4: tile_small(4, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    default: tile6(mr, nr, ns, ap, wp, part, flags, c, n0, y, ldy); break;
    }
    /* explicit: dirty upper ymm halves make every SSE instruction after us
     * several times slower */
    _mm256_zeroupper();
}

const ql_qgemm_impl ql_qgemm_impl_avx2_s16 = {
    .isa = QL_ISA_AVX2, .mr = MR, .nr = NR, .kstep = 2, .kc_steps = 384, .mc_max = 96,
    .pack_a = pack_a_avx2, .kernel = kernel_avx2,
};
