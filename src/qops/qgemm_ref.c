/* The plain definition of the INT8 GEMM (ql_qgemm_s32_ref), and the scalar
 * path: byte-quad packing (the VNNI layout, so the AVX-512 kernel shares a
 * layout that is exercised on every machine) and a loop micro-kernel. */
#include <string.h>
#include "qops/qops_internal.h"

#define MR 8
#define NR 32

// acc[m][n] = sum_k (A[m][k] - a_zero) * W[n][k] + bias[n], wrapped to s32
void ql_qgemm_s32_ref(int64_t m, int n, int k, const uint8_t *a, int64_t lda, const int8_t *w,
                      int32_t *y, int64_t ldy, const ql_qgemm_epilogue *e) {
    int32_t az = e ? e->a_zero : 0;
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            int64_t acc = e && e->bias ? e->bias[j] : 0;
            for (int kk = 0; kk < k; kk++)
                acc += (int64_t)(a[i * lda + kk] - az) * w[(int64_t)j * k + kk];
            y[i * ldy + j] = (int32_t)(uint32_t)(uint64_t)acc;
        }
}

// rows x steps [s0, s0+ns) of A -> groups of mr rows, 4 bytes (k quad) per row and step
void ql_qgemm_pack_a_quads(const uint8_t *a, int64_t lda, int rows, int k, int64_t s0, int64_t ns,
                           uint8_t *dst, int mr) {
    int64_t groups = (rows + mr - 1) / mr;
    for (int64_t g = 0; g < groups; g++)
        for (int r = 0; r < mr; r++) {
            int64_t row = g * mr + r;
            uint8_t *d = dst + (g * ns * mr + r) * 4;
            if (row >= rows) {
                for (int64_t s = 0; s < ns; s++) memset(d + s * mr * 4, 0, 4);
                continue;
            }
            const uint8_t *src = a + row * lda;
            for (int64_t s = 0; s < ns; s++) {
                int64_t k0 = (s0 + s) * 4;
                if (k0 + 4 <= k) {
                    memcpy(d + s * mr * 4, src + k0, 4);
                } else {   // K tail: zero padded
                    for (int j = 0; j < 4; j++) d[s * mr * 4 + j] = k0 + j < k ? src[k0 + j] : 0;
                }
            }
        }
}

static int pack_a_scalar(const uint8_t *a, int64_t lda, int rows, int k, int64_t s0, int64_t ns,
                          uint8_t *dst) {
    ql_qgemm_pack_a_quads(a, lda, rows, k, s0, ns, dst, MR);
    return 0;   // dpbusd / scalar products never saturate
}

// tile acc (mr x nr, row stride lda) + off -> y as s32, u8 (requantized) or f32
void ql_qgemm_store_scalar(const ql_qgemm_ctx *c, int mr, int nr, const int32_t *acc, int64_t lda,
                           int64_t n0, void *y, int64_t ldy) {
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++) {
            int32_t v = ql_wrap_add(acc[r * lda + j], c->off[n0 + j]);
            int64_t o = r * ldy + j;
            if (c->out == QL_QOUT_S32) {
                ((int32_t *)y)[o] = v;
            } else if (c->out == QL_QOUT_U8) {
                ((uint8_t *)y)[o] = (uint8_t)ql_requant(v, c->mult[n0 + j], c->lo, c->hi, c->y_zero);
            } else {
                float f = (float)v * c->mult[n0 + j];
                if (c->fbias) f += c->fbias[n0 + j];
                ((float *)y)[o] = f;
            }
        }
}

// one MR x NR tile over ns steps of byte quads (u8 A x s8 W)
static void kernel_scalar(int mr, int nr, int64_t ns, const uint8_t *ap, const uint8_t *wp,
                          int32_t *part, int flags, const ql_qgemm_ctx *c, int64_t n0, void *y,
                          int64_t ldy) {
    uint32_t acc[MR][NR];   // wrapping sums, as SIMD lanes
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < NR; j++) acc[r][j] = (flags & QL_KFIRST) ? 0 : (uint32_t)part[r * NR + j];
    for (int64_t s = 0; s < ns; s++, ap += MR * 4, wp += NR * 4)
        for (int r = 0; r < mr; r++)
            for (int q = 0; q < 4; q++) {
                int32_t av = ap[r * 4 + q];
                if (!av) continue;
                for (int j = 0; j < NR; j++) acc[r][j] += (uint32_t)(av * (int8_t)wp[j * 4 + q]);
            }
    if (!(flags & QL_KLAST)) {
        for (int r = 0; r < mr; r++)
            for (int j = 0; j < NR; j++) part[r * NR + j] = (int32_t)acc[r][j];
        return;
    }
    int32_t out[MR][NR];
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < NR; j++) out[r][j] = (int32_t)acc[r][j];
    ql_qgemm_store_scalar(c, mr, nr, &out[0][0], NR, n0, y, ldy);
}

const ql_qgemm_impl ql_qgemm_impl_scalar = {
    .isa = QL_ISA_SCALAR, .mr = MR, .nr = NR, .kstep = 4, .kc_steps = 256, .mc_max = 64,
    .pack_a = pack_a_scalar, .kernel = kernel_scalar,
};
