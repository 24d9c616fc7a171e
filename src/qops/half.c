/* f32 <-> f16 / bf16 conversions: the scalar definitions (round to nearest
 * even, see include/qlab/half.h), their array loops, and the dispatch to the
 * F16C / AVX2 twins in half_avx2.c, picked from the CPU features and
 * ql_isa_active() (QLAB_ISA=scalar forces the reference). */
#include <string.h>
#include "qops/half_internal.h"

static uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t ql_f32_to_f16_ref(float f) {
    uint32_t x = bits_of(f), ax = x & 0x7fffffffu;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    if (ax > 0x7f800000u) return sign | 0x7e00u | (uint16_t)((ax >> 13) & 0x3ffu);   // NaN, quiet
    if (ax >= 0x477ff000u) return sign | 0x7c00u;    // >= 65520 (and inf): inf
    if (ax >= 0x38800000u) {                         // >= 2^-14: a normal f16
        uint32_t r = ax + 0x0fffu + ((ax >> 13) & 1u) - 0x38000000u;   // round 13 bits, rebias 127 -> 15
        return sign | (uint16_t)(r >> 13);
    }
    if (ax <= 0x33000000u) return sign;              // <= 2^-25: rounds to zero (2^-25 ties to even 0)
    // subnormal: m * 2^(e-150) in units of 2^-24 is m >> (126 - e), rounded to nearest even
    uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, sh = 126 - e;
    uint32_t q = m >> sh, rem = m & ((1u << sh) - 1), half = 1u << (sh - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return sign | (uint16_t)q;   // q = 0x400 is the smallest normal, encoded right
}

float ql_f16_to_f32_ref(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return float_of(sign | 0x7f800000u | (m ? 0x400000u | (m << 13) : 0));   // inf, quiet NaN
    if (e) return float_of(sign | ((e + 112) << 23) | (m << 13));
    if (!m) return float_of(sign);
    int s = 0;   // subnormal m * 2^-24: normalise
    while (!(m & 0x400u)) { m <<= 1; s++; }
    return float_of(sign | ((uint32_t)(113 - s) << 23) | ((m & 0x3ffu) << 13));
}

uint16_t ql_f32_to_bf16_ref(float f) {
    uint32_t x = bits_of(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);   // NaN, quiet
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);   // carries into the exponent: inf
}

float ql_bf16_to_f32_ref(uint16_t h) { return float_of((uint32_t)h << 16); }

void ql_f32_to_f16_scalar(int64_t n, const float *x, uint16_t *y) { for (int64_t i = 0; i < n; i++) y[i] = ql_f32_to_f16_ref(x[i]); }
void ql_f16_to_f32_scalar(int64_t n, const uint16_t *x, float *y) { for (int64_t i = 0; i < n; i++) y[i] = ql_f16_to_f32_ref(x[i]); }
void ql_f32_to_bf16_scalar(int64_t n, const float *x, uint16_t *y) { for (int64_t i = 0; i < n; i++) y[i] = ql_f32_to_bf16_ref(x[i]); }
void ql_bf16_to_f32_scalar(int64_t n, const uint16_t *x, float *y) { for (int64_t i = 0; i < n; i++) y[i] = ql_bf16_to_f32_ref(x[i]); }

static const ql_half_cvt paths[] = {
    {"ref", ql_f32_to_f16_scalar, ql_f16_to_f32_scalar, ql_f32_to_bf16_scalar, ql_bf16_to_f32_scalar},
    {"avx2", ql_f32_to_f16_avx2, ql_f16_to_f32_avx2, ql_f32_to_bf16_avx2, ql_bf16_to_f32_avx2},
};

static int have_avx2(void) {
    const ql_cpu_features *f = ql_cpu();
    return f->avx2 && f->f16c;
}

const ql_half_cvt *ql_half_cvt_path(int i) {
    if (i == 0) return &paths[0];
    if (i == 1 && have_avx2()) return &paths[1];
    return NULL;
}

static const ql_half_cvt *best(void) {
    return (ql_isa_active() >= QL_ISA_AVX2 && have_avx2()) ? &paths[1] : &paths[0];
}

#define PAR_MIN (1 << 18)   /* elements per call before OpenMP is worth it */
#define BLK 16384           /* elements per OpenMP chunk */

typedef void (*narrow_fn)(int64_t n, const float *x, uint16_t *y);
typedef void (*widen_fn)(int64_t n, const uint16_t *x, float *y);

static void run_narrow(narrow_fn fn, int64_t n, const float *x, uint16_t *y) {
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i0 = 0; i0 < n; i0 += BLK) fn(n - i0 < BLK ? n - i0 : BLK, x + i0, y + i0);
}

static void run_widen(widen_fn fn, int64_t n, const uint16_t *x, float *y) {
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i0 = 0; i0 < n; i0 += BLK) fn(n - i0 < BLK ? n - i0 : BLK, x + i0, y + i0);
}

void ql_f32_to_f16(int64_t n, const float *x, uint16_t *y) { run_narrow(best()->f32_to_f16, n, x, y); }
void ql_f16_to_f32(int64_t n, const uint16_t *x, float *y) { run_widen(best()->f16_to_f32, n, x, y); }
void ql_f32_to_bf16(int64_t n, const float *x, uint16_t *y) { run_narrow(best()->f32_to_bf16, n, x, y); }
void ql_bf16_to_f32(int64_t n, const uint16_t *x, float *y) { run_widen(best()->bf16_to_f32, n, x, y); }

void ql_f32_to_half(ql_dtype d, int64_t n, const float *x, uint16_t *y) {
    if (d == QL_DTYPE_BF16) ql_f32_to_bf16(n, x, y);
    else ql_f32_to_f16(n, x, y);
}

void ql_half_to_f32(ql_dtype d, int64_t n, const uint16_t *x, float *y) {
    if (d == QL_DTYPE_BF16) ql_bf16_to_f32(n, x, y);
    else ql_f16_to_f32(n, x, y);
}
