/* f16 / bf16: conversion bit patterns (known values, round to nearest even,
 * inf, NaN, subnormals, overflow), every fast path against the reference
 * (exhaustive for the 65536 half patterns), and the half GEMM paths against
 * float GEMMs on the rounded weights. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include "test.h"
#include "qlab/half.h"
#include "qlab/rng.h"

static float fbits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t ubits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static uint32_t rnd32(void) { return (uint32_t)ql_rng_below(ql_rng_global(), 1ull << 32); }

TEST(half_f16_known_values) {
    static const struct { uint32_t f; uint16_t h; } cases[] = {
        {0x3f800000u, 0x3c00}, {0xc0000000u, 0xc000}, {0x00000000u, 0x0000}, {0x80000000u, 0x8000},
        {0x477fe000u, 0x7bff},               // 65504, the largest f16
        {0x477fefffu, 0x7bff},               // just below 65520: rounds down
        {0x477ff000u, 0x7c00},               // 65520: the tie goes to even, which is inf
        {0x7f7fffffu, 0x7c00},               // FLT_MAX overflows to inf
        {0x7f800000u, 0x7c00}, {0xff800000u, 0xfc00},   // inf
        {0x38800000u, 0x0400},               // 2^-14, smallest normal
        {0x387fc000u, 0x03ff},               // largest subnormal
        {0x33800000u, 0x0001},               // 2^-24, smallest subnormal
        {0x33000000u, 0x0000},               // 2^-25: tie between 0 and 2^-24 -> even 0
        {0x33000001u, 0x0001},               // just above the tie
        {0x33c00000u, 0x0002},               // 1.5 * 2^-24: tie -> even 2
        {0x34200000u, 0x0002},               // 2.5 * 2^-24: tie -> even 2
        {0xb3c00000u, 0x8002},               // negative subnormal tie
        {0x00000001u, 0x0000}, {0x80000001u, 0x8000},   // f32 subnormals vanish, sign kept
        {0x3f801000u, 0x3c00},               // 1 + 2^-11: tie -> even 1.0
        {0x3f803000u, 0x3c02},               // 1 + 3*2^-11: tie -> even 1 + 2^-9
        {0x3f801001u, 0x3c01},               // just above the tie
        {0x45001000u, 0x6800},               // 2049 -> 2048 (tie, even)
        {0x45003000u, 0x6802},               // 2051 -> 2052 (tie, even)
        {0x3dcccccdu, 0x2e66},               // 0.1
        {0x3eaaaaabu, 0x3555},               // 1/3
        {0x7fc00000u, 0x7e00}, {0xffc00000u, 0xfe00},   // quiet NaN
        {0x7f800001u, 0x7e00},               // signalling NaN, payload below f16's: quiet NaN
        {0x7fa00000u, 0x7f00},               // payload bits kept (top ten), quiet bit set
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint16_t h = ql_f32_to_f16_ref(fbits(cases[i].f));
        CHECK_MSG(h == cases[i].h, "f32 0x%08x -> f16 0x%04x, expected 0x%04x", cases[i].f, h, cases[i].h);
    }
    CHECK(ql_f16_to_f32_ref(0x3c00) == 1.0f);
    CHECK(ql_f16_to_f32_ref(0x7bff) == 65504.0f);
    CHECK(ql_f16_to_f32_ref(0x0001) == ldexpf(1.0f, -24));
    CHECK(ql_f16_to_f32_ref(0x03ff) == ldexpf(1023.0f, -24));
    CHECK(ubits(ql_f16_to_f32_ref(0x8000)) == 0x80000000u);
    CHECK(ubits(ql_f16_to_f32_ref(0x7c00)) == 0x7f800000u && ubits(ql_f16_to_f32_ref(0xfc00)) == 0xff800000u);
    CHECK(ubits(ql_f16_to_f32_ref(0x7e00)) == 0x7fc00000u);
    CHECK(ubits(ql_f16_to_f32_ref(0x7c01)) == 0x7fc02000u);   // signalling NaN comes back quiet
}

TEST(half_f16_exhaustive_roundtrip) {
    long bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ql_f16_to_f32_ref((uint16_t)h);
        int e = (h >> 10) & 31, m = h & 1023;
        double want = e == 0 ? ldexp(m, -24) : e < 31 ? ldexp(1024 + m, e - 25) : (m ? NAN : INFINITY);
        if (h & 0x8000) want = -want;
        if (e == 31 && m) {   // NaN: sign kept, quiet, payload kept
            bad += !isnan(f) || (ubits(f) >> 31) != (h >> 15) || (ubits(f) & 0x400000u) == 0 ||
                   ((ubits(f) >> 13) & 0x1ff) != (uint32_t)(m & 0x1ff);
            bad += ql_f32_to_f16_ref(f) != (uint16_t)(h | 0x200);
            continue;
        }
        bad += (double)f != want || (f == 0 && (ubits(f) >> 31) != (h >> 15));
        bad += ql_f32_to_f16_ref(f) != h;   // every f16 value is exact in f32 and comes back
    }
    CHECK_MSG(bad == 0, "%ld f16 patterns wrong", bad);
}

TEST(half_bf16_known_values) {
    static const struct { uint32_t f; uint16_t h; } cases[] = {
        {0x3f800000u, 0x3f80}, {0x80000000u, 0x8000}, {0xc0490fdbu, 0xc049},   // -pi
        {0x3f808000u, 0x3f80},               // 1 + 2^-8: tie -> even
        {0x3f818000u, 0x3f82},               // 1 + 3*2^-8: tie -> even (up)
        {0x3f808001u, 0x3f81},               // above the tie
        {0x7f7fffffu, 0x7f80},               // FLT_MAX rounds to inf
        {0x7f7f7fffu, 0x7f7f},               // largest value that stays finite
        {0x7f800000u, 0x7f80}, {0xff800000u, 0xff80},
        {0x00010000u, 0x0001}, {0x00008000u, 0x0000}, {0x00018000u, 0x0002},   // subnormals, ties to even
        {0x80008001u, 0x8001},
        {0x007fffffu, 0x0080},               // largest f32 subnormal rounds up to FLT_MIN
        {0x7fc00000u, 0x7fc0}, {0xffc00001u, 0xffc0},
        {0x7f800001u, 0x7fc0},               // signalling NaN: quiet, never inf
        {0x7fff0000u, 0x7fff}, {0x7fffffffu, 0x7fff},   // NaN payloads do not carry into the sign
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint16_t h = ql_f32_to_bf16_ref(fbits(cases[i].f));
        CHECK_MSG(h == cases[i].h, "f32 0x%08x -> bf16 0x%04x, expected 0x%04x", cases[i].f, h, cases[i].h);
    }
    long bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ql_bf16_to_f32_ref((uint16_t)h);
        bad += ubits(f) != h << 16;
        int nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        bad += ql_f32_to_bf16_ref(f) != (nan ? (uint16_t)(h | 0x40) : (uint16_t)h);
    }
    CHECK_MSG(bad == 0, "%ld bf16 patterns wrong", bad);
}

/* f32 patterns around every rounding decision: each of the 65536 upper
 * halves with low bits at and around the f16 and bf16 ties, plus random bits. */
static float *edge_floats(long *n) {
    static const uint32_t lows[] = {0, 1, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000,
                                    0x7fff, 0x8000, 0x8001, 0xffff};
    const long nl = sizeof lows / sizeof *lows, nr = 1 << 20;
    float *x = malloc(sizeof(float) * (size_t)(65536 * nl + nr));
    long k = 0;
    for (uint32_t hi = 0; hi < 65536; hi++)
        for (long j = 0; j < nl; j++) x[k++] = fbits(hi << 16 | lows[j]);
    for (long j = 0; j < nr; j++) x[k++] = fbits(rnd32());
    *n = k;
    return x;
}

TEST(half_fast_paths_match_reference) {
    long n;
    float *x = edge_floats(&n);
    uint16_t *a = malloc(2 * (size_t)n), *b = malloc(2 * (size_t)n), all[65536];
    float *fa = malloc(4 * 65536), *fb = malloc(4 * 65536);
    for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    const ql_half_cvt *ref = ql_half_cvt_path(0);
    int npaths = 0;
    for (int p = 1; ql_half_cvt_path(p); p++) {
        const ql_half_cvt *c = ql_half_cvt_path(p);
        npaths++;
        // odd lengths and offsets exercise the scalar tails
        for (int bf = 0; bf < 2; bf++) {
            void (*fast)(int64_t, const float *, uint16_t *) = bf ? c->f32_to_bf16 : c->f32_to_f16;
            void (*slow)(int64_t, const float *, uint16_t *) = bf ? ref->f32_to_bf16 : ref->f32_to_f16;
            slow(n, x, a);
            fast(n - 3, x, b);
            fast(3, x + n - 3, b + n - 3);
            long bad = 0;
            for (long i = 0; i < n; i++) bad += a[i] != b[i];
            CHECK_MSG(bad == 0, "path %s: %ld of %ld f32 -> %s differ", c->name, bad, n, bf ? "bf16" : "f16");
            void (*wfast)(int64_t, const uint16_t *, float *) = bf ? c->bf16_to_f32 : c->f16_to_f32;
            void (*wslow)(int64_t, const uint16_t *, float *) = bf ? ref->bf16_to_f32 : ref->f16_to_f32;
            wslow(65536, all, fa);
            wfast(65531, all, fb);
            wfast(5, all + 65531, fb + 65531);
            bad = 0;
            for (long i = 0; i < 65536; i++) bad += ubits(fa[i]) != ubits(fb[i]);
            CHECK_MSG(bad == 0, "path %s: %ld of 65536 %s -> f32 differ", c->name, bad, bf ? "bf16" : "f16");
        }
    }
    // the dispatching array functions (any path, any length, OpenMP chunks)
    ql_f32_to_f16(n, x, b);
    ref->f32_to_f16(n, x, a);
    CHECK(memcmp(a, b, 2 * (size_t)n) == 0);
    ql_f32_to_half(QL_DTYPE_BF16, n, x, b);
    ref->f32_to_bf16(n, x, a);
    CHECK(memcmp(a, b, 2 * (size_t)n) == 0);
    ql_half_to_f32(QL_DTYPE_F16, 65536, all, fb);
    ref->f16_to_f32(65536, all, fa);
    CHECK(memcmp(fa, fb, 4 * 65536) == 0);
    if (!npaths) fprintf(stderr, "  (no F16C/AVX2 on this CPU: only the reference was checked)\n");
    free(x); free(a); free(b); free(fa); free(fb);
}

/* ---- half GEMM ------------------------------------------------------------ */
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)ql_rng_uniform(ql_rng_global()); }

// y = x . round(W)^T + b in double, with x rounded to bf16 too when xr
static void ref_gemm(int64_t m, int n, int k, const float *x, const float *wr, const float *b, int xr, double *y) {
    for (int64_t i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = b ? b[j] : 0;
            for (int kk = 0; kk < k; kk++) {
                float xv = xr ? ql_bf16_to_f32_ref(ql_f32_to_bf16_ref(x[i * k + kk])) : x[i * k + kk];
                s += (double)xv * wr[(int64_t)j * k + kk];
            }
            y[i * n + j] = s;
        }
}

TEST(half_gemm_paths_match_float) {
    static const int shapes[][3] = {{1, 10, 128}, {3, 37, 29}, {4, 64, 64}, {7, 33, 129}, {9, 16, 8},
                                    {64, 10, 512}, {17, 100, 75}, {2, 1, 1}};
    for (int dt = 0; dt < 2; dt++) {
        ql_dtype d = dt ? QL_DTYPE_BF16 : QL_DTYPE_F16;
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            int64_t m = shapes[si][0];
            int n = shapes[si][1], k = shapes[si][2];
            float *x = malloc(sizeof(float) * (size_t)(m * k) + 4), *wf = malloc(sizeof(float) * (size_t)n * k);
            float *wr = malloc(sizeof(float) * (size_t)n * k), *b = malloc(sizeof(float) * n);
            uint16_t *w = malloc(2 * (size_t)n * k);
            int64_t ldy = n + 3;
            float *y = malloc(sizeof(float) * (size_t)(m * ldy));
            double *r0 = malloc(sizeof(double) * (size_t)(m * n)), *r1 = malloc(sizeof(double) * (size_t)(m * n));
            for (int64_t i = 0; i < m * k; i++) x[i] = rndf(-2, 2);
            for (int64_t i = 0; i < (int64_t)n * k; i++) wf[i] = rndf(-1, 1);
            for (int j = 0; j < n; j++) b[j] = rndf(-1, 1);
            ql_f32_to_half(d, (int64_t)n * k, wf, w);
            ql_half_to_f32(d, (int64_t)n * k, w, wr);
            ref_gemm(m, n, k, x, wr, b, 0, r0);
            ref_gemm(m, n, k, x, wr, b, 1, r1);
            for (int p = QL_HGEMM_AUTO; p < QL_HGEMM_PATHS; p++) {
                if (!ql_hgemm_path_available(d, (ql_hgemm_path)p)) continue;
                ql_hgemm *h = ql_hgemm_new(d, w, n, k, (ql_hgemm_path)p);
                CHECK(h != NULL);
                if (!h) continue;
                ql_hgemm_path run = ql_hgemm_chosen(h, m);
                size_t nws = ql_hgemm_workspace(h, m);
                void *ws = malloc(nws + 1);
                for (int64_t i = 0; i < m * ldy; i++) y[i] = 12345.0f;
                ql_hgemm_forward(h, m, x, k, b, y, ldy, ws);
                // DPBF16 rounds x to bf16: compare with that; K products of |x| <= 2, |w| <= 1
                const double *r = (run == QL_HGEMM_DPBF16 || run == QL_HGEMM_DPBF16_REF) ? r1 : r0;
                double worst = 0;
                long gap = 0;
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < ldy; j++) {
                        if (j >= n) { gap += y[i * ldy + j] != 12345.0f; continue; }
                        double e = fabs(y[i * ldy + j] - r[i * n + j]);
                        if (e > worst) worst = e;
                    }
                CHECK_MSG(worst < 1e-5 * (k + 1) && gap == 0, "%s %s m%lld n%d k%d: max error %.3g, %ld gap writes",
                          ql_dtype_name(d), ql_hgemm_path_name(run), (long long)m, n, k, worst, gap);
                free(ws);
                ql_hgemm_free(h);
            }
            free(x); free(wf); free(wr); free(b); free(w); free(y); free(r0); free(r1);
        }
    }
}

/* vdpbf16ps against its emulation, where the CPU has AVX-512 BF16 (it is not
 * run here otherwise: the emulation alone is checked above). */
TEST(half_dpbf16_avx512_matches_emulation) {
    if (!ql_hgemm_path_available(QL_DTYPE_BF16, QL_HGEMM_DPBF16)) {
        fprintf(stderr, "  (no AVX-512 BF16 on this CPU: the vdpbf16ps kernel was not run)\n");
        return;
    }
    const int64_t m = 19;
    const int n = 41, k = 77;
    float *x = malloc(sizeof(float) * m * k), *wf = malloc(sizeof(float) * n * k), *b = malloc(sizeof(float) * n);
    float *y0 = malloc(sizeof(float) * m * n), *y1 = malloc(sizeof(float) * m * n);
    uint16_t *w = malloc(2 * n * k);
    for (int64_t i = 0; i < m * k; i++) x[i] = rndf(-3, 3);
    for (int i = 0; i < n * k; i++) wf[i] = rndf(-1, 1);
    for (int j = 0; j < n; j++) b[j] = rndf(-1, 1);
    x[5] = 1e-39f;   // a denormal: read as zero by both
    ql_f32_to_bf16(n * k, wf, w);
    ql_hgemm *h0 = ql_hgemm_new(QL_DTYPE_BF16, w, n, k, QL_HGEMM_DPBF16_REF);
    ql_hgemm *h1 = ql_hgemm_new(QL_DTYPE_BF16, w, n, k, QL_HGEMM_DPBF16);
    void *ws = malloc(ql_hgemm_workspace(h0, m) + 1);
    ql_hgemm_forward(h0, m, x, k, b, y0, n, ws);
    ql_hgemm_forward(h1, m, x, k, b, y1, n, ws);
    long exact = 0;
    double worst = 0;
    for (int64_t i = 0; i < m * n; i++) {
        exact += ubits(y0[i]) == ubits(y1[i]);
        worst = fmax(worst, fabs(y0[i] - y1[i]));
    }
    CHECK_MSG(worst < 1e-4, "vdpbf16ps differs from its emulation by %.3g (%ld of %lld bit-exact)", worst, exact,
              (long long)(m * n));
    if (exact != m * n) fprintf(stderr, "  note: %ld of %lld outputs bit-exact with the emulation\n", exact, (long long)(m * n));
    ql_hgemm_free(h0); ql_hgemm_free(h1);
    free(ws); free(x); free(wf); free(b); free(y0); free(y1); free(w);
}
