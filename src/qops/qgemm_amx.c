/* AMX INT8 GEMM: TDPBUSD multiplies a tile of 16 rows x 64 u8 (A: 16 rows,
 * 16 K steps) by a tile of 16 K steps x 16 s8 quads (W: 16 columns) into
 * 16 x 16 s32, exactly (no saturation), 16,384 MACs per instruction.
 * Micro-tile 32 rows x 32 columns: accumulator tiles 0-3 (2 x 2), A in
 * tiles 4-5, W in tiles 6-7. W keeps the VNNI packing (qgemm_avx512.c: a
 * step of a 32-column panel is 128 bytes, columns 0-15 then 16-31), read
 * with a 128-byte stride, with ksteps a multiple of 16 (zero steps past K).
 *
 * A rows are read 64 bytes at a time, so up to 60 bytes past K: in place
 * those bytes belong to the next row (the driver only reads in place when
 * lda + K >= ksteps*4) and meet zero weights; the tile holding A's last
 * row (ALAST) copies its rows into scratch first, so nothing is read past
 * the matrix. Accumulators go through a 4 KB buffer to the AVX-512 epilogue. */
#include <immintrin.h>
#include <string.h>
#include "qops/qgemm_avx512_store.h"

#define MR 32
#define NR 32
#define KT 16   /* K steps per tile */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Eight tiles of 16 rows x 64 bytes; tile configuration is per thread.
 * A static object: gcc 12 does not see ldtilecfg read its operand, and
 * drops the stores that fill a local one. */
static const tile_config config = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

QL_AMX static void amx_begin(void) { _tile_loadconfig(&config); }

QL_AMX static void amx_end(void) { _tile_release(); }

/* rows x [s0, s0+ns) steps of A -> groups of MR rows, row r of group g at
 * dst + (g*MR + r)*ns*4, zero past K and past the last row */
static int pack_a_rows(const uint8_t *a, int64_t lda, int rows, int k, int64_t s0, int64_t ns, uint8_t *dst) {
    int64_t groups = (rows + MR - 1) / MR, kb = s0 * 4, rb = ns * 4;
    int64_t have = k - kb < rb ? k - kb : rb;
    if (have < 0) have = 0;
    for (int64_t r = 0; r < groups * MR; r++) {
        uint8_t *d = dst + r * rb;
        if (r < rows) {
            memcpy(d, a + r * lda + kb, (size_t)have);
            memset(d + have, 0, (size_t)(rb - have));
        } else {
            memset(d, 0, (size_t)rb);
        }
    }
    return 0;
}

/* A (row stride lda) x the W panel: all ns steps, then the epilogue or part */
QL_AMX static void tile(int mr, int nr, int64_t ns, const uint8_t *ap, int64_t lda, const uint8_t *wp,
                        int32_t *part, int flags, const ql_qgemm_ctx *c, int64_t n0, void *y, int64_t ldy) {
    const int two = mr > 16;   /* rows 16-31 hold data */
    if (flags & QL_KFIRST) {
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    } else {
        _tile_loadd(0, part, NR * 4); _tile_loadd(1, part + 16, NR * 4);
        _tile_loadd(2, part + 16 * NR, NR * 4); _tile_loadd(3, part + 16 * NR + 16, NR * 4);
    }
    if (two) {
        for (int64_t s = 0; s < ns; s += KT) {
            _tile_loadd(4, ap + s * 4, lda);
            _tile_loadd(5, ap + 16 * lda + s * 4, lda);
            _tile_loadd(6, wp + s * NR * 4, NR * 4);
            _tile_loadd(7, wp + s * NR * 4 + 64, NR * 4);
            _tile_dpbusd(0, 4, 6);
            _tile_dpbusd(1, 4, 7);
            _tile_dpbusd(2, 5, 6);
            _tile_dpbusd(3, 5, 7);
        }
    } else {
        for (int64_t s = 0; s < ns; s += KT) {
            _tile_loadd(4, ap + s * 4, lda);
            _tile_loadd(6, wp + s * NR * 4, NR * 4);
            _tile_loadd(7, wp + s * NR * 4 + 64, NR * 4);
            _tile_dpbusd(0, 4, 6);
            _tile_dpbusd(1, 4, 7);
        }
    }
    if (!(flags & QL_KLAST)) {
        _tile_stored(0, part, NR * 4); _tile_stored(1, part + 16, NR * 4);
        _tile_stored(2, part + 16 * NR, NR * 4); _tile_stored(3, part + 16 * NR + 16, NR * 4);
        return;
    }
    int32_t acc[MR * NR] __attribute__((aligned(64)));
    _tile_stored(0, acc, NR * 4);
    _tile_stored(1, acc + 16, NR * 4);
    if (two) {
        _tile_stored(2, acc + 16 * NR, NR * 4);
        _tile_stored(3, acc + 16 * NR + 16, NR * 4);
    }
    size_t es = c->out == QL_QOUT_U8 ? 1 : 4;
    for (int r = 0; r < mr; r++) {
        char *yr = (char *)y + (size_t)(r * ldy) * es;
        ql_store16_avx512(c, _mm512_load_si512((const void *)(acc + r * NR)), n0, nr, yr);
        ql_store16_avx512(c, _mm512_load_si512((const void *)(acc + r * NR + 16)), n0 + 16, nr - 16, yr + 16 * es);
    }
}

/* packed A: group rows at ap + r*ns*4 */
QL_AMX static void kernel_amx(int mr, int nr, int64_t ns, const uint8_t *ap, const uint8_t *wp, int32_t *part,
                              int flags, const ql_qgemm_ctx *c, int64_t n0, void *y, int64_t ldy) {
    tile(mr, nr, ns, ap, ns * 4, wp, part, flags, c, n0, y, ldy);
}

/* A in place; the last rows through scratch (zero past K and past mr) */
QL_AMX static void kernel_amx_direct(int mr, int nr, int64_t ns, const uint8_t *ap, int64_t lda, const uint8_t *wp,
                                     int32_t *part, int flags, const ql_qgemm_ctx *c, int64_t n0, void *y,
                                     int64_t ldy, uint8_t *scratch) {
    if (flags & QL_ALAST) {
        pack_a_rows(ap, lda, mr, c->k, 0, ns, scratch);
        ap = scratch;
        lda = ns * 4;
    }
    tile(mr, nr, ns, ap, lda, wp, part, flags, c, n0, y, ldy);
}

/* The K block covers all of K (accumulators live in tiles, not registers,
 * so one pass needs no partial sums); W panel slices then come from L2. */
const ql_qgemm_impl ql_qgemm_impl_amx = {
    .isa = QL_ISA_AMX, .mr = MR, .nr = NR, .kstep = 4, .kc_steps = 1 << 16, .kalign = KT, .mc_max = 96,
    .pack_a = pack_a_rows, .kernel = kernel_amx, .kernel_direct = kernel_amx_direct,
    .begin = amx_begin, .end = amx_end,
};
