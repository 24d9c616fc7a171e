/* Measured peak per ISA level: independent multiply-add / dot-product chains,
 * enough of them to cover the instruction latency, timed on one core. Each
 * kernel runs `iters` iterations and returns a value that depends on every
 * result (so nothing is optimised away); the caller counts MACs. Empty asm
 * statements make an operand opaque: the scalar chains cannot be vectorised
 * and loop-invariant products cannot be hoisted. */
#include <immintrin.h>
#include <stdint.h>
#include <time.h>
#include "qlab/bench.h"
#include "qlab/peak.h"

#define PEAK_AVX2   __attribute__((target("avx2,fma")))
#define PEAK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define PEAK_AMX    __attribute__((target("amx-tile,amx-int8")))
#define OPAQUE_R(v) __asm__ volatile("" : "+r"(v))
#define OPAQUE_X(v) __asm__ volatile("" : "+x"(v))
#define OPAQUE_V(v) __asm__ volatile("" : "+v"(v))

typedef double (*stream_fn)(int64_t iters);

/* The chains are written out by hand (R8 / R12 repeat a statement for
 * j = 0..n-1) so that every accumulator stays in a register. */
#define R8(S) S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7)
#define R12(S) R8(S) S(8) S(9) S(10) S(11)

// 8 chains x (mul, add) per iteration: 8 MACs
static double fp32_scalar(int64_t iters) {
    float a0 = 1, a1 = 2, a2 = 3, a3 = 4, a4 = 5, a5 = 6, a6 = 7, a7 = 8, m = 0.999999f, c = 1e-3f;
    for (int64_t i = 0; i < iters; i++) {
#define S(j) a##j = a##j * m + c; OPAQUE_X(a##j);
        S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7)
#undef S
    }
    return (double)a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

// 8 chains x (u8 * s8 widened, add to s32) per iteration: 8 MACs; the sums wrap around
// (unsigned: the same imul + add, without signed overflow)
static double int8_scalar(int64_t iters) {
    uint32_t c0 = 0, c1 = 0, c2 = 0, c3 = 0, c4 = 0, c5 = 0, c6 = 0, c7 = 0;
    uint8_t u = 200;
    int8_t w = -77;
    for (int64_t i = 0; i < iters; i++) {
        int32_t x = u, y = w;
        OPAQUE_R(x); OPAQUE_R(y);
#define S(j) c##j += (uint32_t)((x + j) * (y - j)); OPAQUE_R(c##j);
        S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7)
#undef S
    }
    return (double)c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7;
}

#define V_DECL(j) __m256 a##j = _mm256_set1_ps((float)(j));
#define V_FMA(j) a##j = _mm256_fmadd_ps(a##j, m, c);
#define V_SUM(j) s = _mm256_add_ps(s, a##j);
// 8 chains of vfmadd231ps ymm: 64 MACs per iteration
PEAK_AVX2 static double fp32_avx2(int64_t iters) {
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-3f), s = _mm256_setzero_ps();
    R8(V_DECL)
    for (int64_t i = 0; i < iters; i++) { R8(V_FMA) }
    R8(V_SUM)
    float t[8];
    _mm256_storeu_ps(t, s);
    return t[0] + t[7];
}
#undef V_DECL
#undef V_FMA
#undef V_SUM

#define R6(S) S(0) S(1) S(2) S(3) S(4) S(5)
#define V_DECL(j) __m256i c##j = _mm256_setzero_si256(), w##j = _mm256_set1_epi8((char)((j) - 3));
#define V_DOT(j) c##j = _mm256_add_epi32(c##j, _mm256_madd_epi16(_mm256_maddubs_epi16(a, w##j), ones));
#define V_SUM(j) s = _mm256_add_epi32(s, c##j);
// 6 chains of vpmaddubsw + vpmaddwd(ones) + vpaddd ymm, each with its own weights
// (no common subexpression): 6 x 32 MACs per iteration
PEAK_AVX2 static double int8_avx2(int64_t iters) {
    __m256i a = _mm256_set1_epi8(100), ones = _mm256_set1_epi16(1), s = _mm256_setzero_si256();
    R6(V_DECL)
    for (int64_t i = 0; i < iters; i++) { OPAQUE_X(a); R6(V_DOT) }
    R6(V_SUM)
    return (double)_mm256_extract_epi32(s, 0);
}
#undef V_DECL
#undef V_DOT
#undef V_SUM

#define V_DECL(j) __m512 a##j = _mm512_set1_ps((float)(j));
#define V_FMA(j) a##j = _mm512_fmadd_ps(a##j, m, c);
#define V_SUM(j) s = _mm512_add_ps(s, a##j);
// 12 chains of vfmadd231ps zmm: 192 MACs per iteration
PEAK_AVX512 static double fp32_avx512(int64_t iters) {
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-3f), s = _mm512_setzero_ps();
    R12(V_DECL)
    for (int64_t i = 0; i < iters; i++) { R12(V_FMA) }
    R12(V_SUM)
    return _mm512_reduce_add_ps(s);
}
#undef V_DECL
#undef V_FMA
#undef V_SUM

#define V_DECL(j) __m512i c##j = _mm512_setzero_si512();
#define V_DOT(j) c##j = _mm512_dpbusd_epi32(c##j, a, w);
#define V_SUM(j) s = _mm512_add_epi32(s, c##j);
// 12 chains of vpdpbusd zmm: 12 x 64 MACs per iteration
PEAK_AVX512 static double int8_avx512(int64_t iters) {
    __m512i a = _mm512_set1_epi8(100), w = _mm512_set1_epi8(-3), s = _mm512_setzero_si512();
    R12(V_DECL)
    for (int64_t i = 0; i < iters; i++) { OPAQUE_V(a); R12(V_DOT) }
    R12(V_SUM)
    uint32_t t[16], r = 0;   /* summed as u32: the sum only keeps the chains live, and wraps (no signed overflow) */
    _mm512_storeu_si512((void *)t, s);
    for (int k = 0; k < 16; k++) r += t[k];
    return (double)r;
}
#undef V_DECL
#undef V_DOT
#undef V_SUM

/* 4 accumulator tiles of 16 x 16 s32, each += a 16 x 64 u8 tile times a
 * 16 x 16-quad s8 tile per iteration: 4 x 16,384 MACs; the operand tiles
 * stay loaded (as the other streams keep theirs in registers). */
PEAK_AMX static double int8_amx(int64_t iters) {
    /* static: gcc 12 drops stores into a local that only ldtilecfg reads */
    static const struct { uint8_t palette, start, rsv[14]; uint16_t colsb[16]; uint8_t rows[16]; } cfg = {
        .palette = 1, .colsb = {64, 64, 64, 64, 64, 64, 64, 64}, .rows = {16, 16, 16, 16, 16, 16, 16, 16}};
    static uint8_t a[16 * 64], w[16 * 64];
    int32_t out[16 * 16];
    for (int i = 0; i < 16 * 64; i++) { a[i] = (uint8_t)i; w[i] = (uint8_t)(i * 3); }
    _tile_loadconfig(&cfg);
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    _tile_loadd(4, a, 64); _tile_loadd(5, w, 64); _tile_loadd(6, a, 64); _tile_loadd(7, w, 64);
    for (int64_t i = 0; i < iters; i++) {
        _tile_dpbusd(0, 4, 5); _tile_dpbusd(1, 4, 7); _tile_dpbusd(2, 6, 5); _tile_dpbusd(3, 6, 7);
    }
    uint32_t r = 0;
    _tile_stored(0, out, 64); r += (uint32_t)out[0];
    _tile_stored(3, out, 64); r += (uint32_t)out[255];
    _tile_release();
    return (double)r;
}

static volatile double sink;

/* Thread CPU time, not wall time: on a shared machine the scheduler's
 * time slices given to others do not count against the core's rate. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double run(stream_fn f, int64_t iters) {
    double t0 = cpu_now();
    sink = f(iters);
    return cpu_now() - t0;
}

// GMAC/s of f (macs_per_iter MACs per iteration), best of 5 runs of ~target / 3 seconds
static double rate(stream_fn f, double macs_per_iter, double target) {
    int64_t iters = 256;
    double t;
    while ((t = run(f, iters)) < target / 8 && iters < ((int64_t)1 << 40)) iters *= 2;   // calibration
    if (t > 0) iters = (int64_t)(iters * (target / 3 / t)) + 1;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        t = run(f, iters);
        double g = t > 0 ? macs_per_iter * (double)iters / t / 1e9 : 0;
        if (g > best) best = g;
    }
    return best;
}

ql_status ql_peak_measure(ql_isa isa, double target_ms, ql_peak *out) {
    if (isa < QL_ISA_SCALAR || isa > ql_isa_best())
        return ql_error(QL_EUNSUPPORTED, "peak: this CPU has no %s", ql_isa_name(isa));
    double target = (target_ms > 0 ? target_ms : 15.0) * 1e-3;
    double t0 = ql_clock();
    out->isa = isa;
    switch (isa) {
    case QL_ISA_AMX:   /* FP32 stays on the AVX-512 FMA units */
        out->fp32_gmacs = rate(fp32_avx512, 12 * 16, target);
        out->int8_gmacs = rate(int8_amx, 4 * 16384, target);
        break;
    case QL_ISA_AVX512:
        out->fp32_gmacs = rate(fp32_avx512, 12 * 16, target);
        out->int8_gmacs = rate(int8_avx512, 12 * 64, target);
        break;
    case QL_ISA_AVX2:
        out->fp32_gmacs = rate(fp32_avx2, 8 * 8, target);
        out->int8_gmacs = rate(int8_avx2, 6 * 32, target);
        break;
    default:
        out->fp32_gmacs = rate(fp32_scalar, 8, target);
        out->int8_gmacs = rate(int8_scalar, 8, target);
        break;
    }
    out->seconds = ql_clock() - t0;
    return QL_OK;
}

int ql_peak_measure_all(double target_ms, ql_peak out[QL_ISA_COUNT]) {
    int n = 0;
    for (int i = QL_ISA_SCALAR; i <= (int)ql_isa_best(); i++)
        if (ql_peak_measure((ql_isa)i, target_ms, &out[n++]) != QL_OK) return -1;
    return n;
}
