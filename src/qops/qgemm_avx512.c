/* AVX-512 VNNI INT8 GEMM: _mm512_dpbusd_epi32 adds u8 x s8 products of a
 * byte quad into each s32 lane, exactly (no saturation). Same byte-quad
 * layout and packing as the scalar kernel (qgemm_ref.c), which the tests run
 * on every machine; this file only adds the vector micro-kernel.
 * Micro-tile 8 rows x 32 columns: 16 accumulators, 2 weight vectors
 * (columns 0-15, 16-31) and one broadcast A quad per row and step. */
#include <immintrin.h>
#include <string.h>
#include "qops/qgemm_avx512_store.h"

#define MR 8
#define NR 32

static int pack_a_vnni(const uint8_t *a, int64_t lda, int rows, int k, int64_t s0, int64_t ns,
                        uint8_t *dst) {
    ql_qgemm_pack_a_quads(a, lda, rows, k, s0, ns, dst, MR);
    return 0;   // dpbusd / scalar products never saturate
}

// R rows (compile-time after inlining)
QL_AVX512 static inline __attribute__((always_inline)) void
tile(const int R, int nr, int64_t ns, const uint8_t *ap, const int64_t rs, const int64_t ss, const uint8_t *wp,
     int32_t *part, int flags, const ql_qgemm_ctx *c, int64_t n0, void *y, int64_t ldy) {
    __m512i acc0[MR], acc1[MR];
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        if (flags & QL_KFIRST) {
            acc0[r] = acc1[r] = _mm512_setzero_si512();
        } else {
            acc0[r] = _mm512_loadu_si512((const void *)(part + r * NR));
            acc1[r] = _mm512_loadu_si512((const void *)(part + r * NR + 16));
        }
    }
    for (int64_t s = 0; s < ns; s++, ap += ss, wp += NR * 4) {
        __m512i w0 = _mm512_loadu_si512((const void *)wp);          // columns 0..15, 4 bytes each
        __m512i w1 = _mm512_loadu_si512((const void *)(wp + 64));   // columns 16..31
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            int32_t quad;
            memcpy(&quad, ap + r * rs, 4);
            __m512i av = _mm512_set1_epi32(quad);
            acc0[r] = _mm512_dpbusd_epi32(acc0[r], av, w0);   // u8 (av) x s8 (w)
            acc1[r] = _mm512_dpbusd_epi32(acc1[r], av, w1);
        }
    }
    if (!(flags & QL_KLAST)) {
        #pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            _mm512_storeu_si512((void *)(part + r * NR), acc0[r]);
            _mm512_storeu_si512((void *)(part + r * NR + 16), acc1[r]);
        }
        return;
    }
    size_t es = c->out == QL_QOUT_U8 ? 1 : 4;
    #pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        char *yr = (char *)y + (size_t)(r * ldy) * es;
        ql_store16_avx512(c, acc0[r], n0, nr, yr);
        ql_store16_avx512(c, acc1[r], n0 + 16, nr - 16, yr + 16 * es);
    }
}

#define TILES(RS, SS)                                                                     \
    switch (mr) {                                                                         \
    case 1: tile(1, nr, ns, ap, RS, SS, wp, part, flags, c, n0, y, ldy); break;           \
    case 2: tile(2, nr, ns, ap, RS, SS, wp, part, flags, c, n0, y, ldy); break;           \
    case 3: tile(3, nr, ns, ap, RS, SS, wp, part, flags, c, n0, y, ldy); break;           \
    case 4: tile(4, nr, ns, ap, RS, SS, wp, part, flags, c, n0, y, ldy); break;           \
    case 5: tile(5, nr, ns, ap, RS, SS, wp, part, flags, c, n0, y, ldy); break;           \
    case 6: tile(6, nr, ns, ap, RS, SS, wp, part, flags, c, n0, y, ldy); break;           \
    case 7: tile(7, nr, ns, ap, RS, SS, wp, part, flags, c, n0, y, ldy); break;           \
    default: tile(8, nr, ns, ap, RS, SS, wp, part, flags, c, n0, y, ldy); break;          \
    }

/* packed A: row r of step s at ap + s*MR*4 + r*4 */
QL_AVX512 static void kernel_vnni(int mr, int nr, int64_t ns, const uint8_t *ap, const uint8_t *wp,
                                  int32_t *part, int flags, const ql_qgemm_ctx *c, int64_t n0, void *y,
                                  int64_t ldy) {
    TILES(4, MR * 4)
}

/* A in place: row r of step s at ap + r*lda + s*4 */
QL_AVX512 static void kernel_vnni_direct(int mr, int nr, int64_t ns, const uint8_t *ap, int64_t lda,
                                         const uint8_t *wp, int32_t *part, int flags, const ql_qgemm_ctx *c,
                                         int64_t n0, void *y, int64_t ldy, uint8_t *scratch) {
    TILES(lda, 4)
}

const ql_qgemm_impl ql_qgemm_impl_avx512 = {
    .isa = QL_ISA_AVX512, .mr = MR, .nr = NR, .kstep = 4, .kc_steps = 256, .kalign = 1, .mc_max = 96,
    .pack_a = pack_a_vnni, .kernel = kernel_vnni, .kernel_direct = kernel_vnni_direct,
};
