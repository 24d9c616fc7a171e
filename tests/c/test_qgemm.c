/* INT8 GEMM: every ISA path available on this CPU (scalar .. ql_isa_best())
 * against ql_qgemm_s32_ref, bit-exact, for s32, requantized u8 and f32
 * outputs; the u8/f32 expectations are computed here from the header's
 * formula, independently of the library's epilogue code. */
#include <stdint.h>
#include <stdlib.h>
#include "test.h"
#include "qops/qops_internal.h"
#include "qlab/qops.h"
#include "qlab/rng.h"

static uint32_t rnd(uint32_t n) { return (uint32_t)ql_rng_below(ql_rng_global(), n); }
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)ql_rng_uniform(ql_rng_global()); }

// y = clamp(nearbyint((float)acc * mult) + y_zero, qmin, qmax), qmin/qmax within [0,255]
static uint8_t expect_u8(int32_t acc, float mult, int32_t yz, int32_t qmin, int32_t qmax) {
    double v = (double)nearbyintf((float)acc * mult) + yz;
    double lo = qmin < 0 ? 0 : qmin, hi = qmax > 255 ? 255 : qmax;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (uint8_t)v;
}

typedef struct {
    int64_t m; int n, k;
    int64_t lda, ldy;
    int32_t a_zero, y_zero, qmin, qmax;
    int bias, fbias;
    float mult_lo, mult_hi;
    int amax;       /* A codes in [0, amax] (0: 255); 127 = 7-bit activations */
    int hot_row;    /* >= 0: that one row also holds codes up to 255 */
} gemm_case;

// runs one case on one ISA; returns the number of mismatching elements
static long run_case(const gemm_case *g, ql_isa isa) {
    int64_t m = g->m, lda = g->lda, ldy = g->ldy;
    int n = g->n, k = g->k;
    uint8_t *a = malloc((size_t)(m * lda) + 1);
    int8_t *w = malloc((size_t)n * k + 1);
    int32_t *bias = malloc(sizeof(int32_t) * n), *ref = malloc(sizeof(int32_t) * (size_t)(m * n));
    float *mult = malloc(sizeof(float) * n), *fb = malloc(sizeof(float) * n);
    uint32_t amax = g->amax ? (uint32_t)g->amax : 255;
    for (int64_t i = 0; i < m * lda; i++) a[i] = (uint8_t)rnd(amax + 1);
    if (g->hot_row >= 0 && g->hot_row < m)
        for (int64_t i = 0; i < g->k; i++) a[g->hot_row * lda + i] = (uint8_t)(128 + rnd(128));
    for (int64_t i = 0; i < (int64_t)n * k; i++) w[i] = (int8_t)(rnd(256) - 128);
    for (int j = 0; j < n; j++) {
        bias[j] = (int32_t)rnd(200001) - 100000;
        mult[j] = rndf(g->mult_lo, g->mult_hi) * (rnd(8) ? 1.0f : -1.0f);
        fb[j] = rndf(-3, 3);
    }
    ql_qgemm_epilogue e = {.a_zero = g->a_zero, .bias = g->bias ? bias : NULL, .mult = mult,
                           .y_zero = g->y_zero, .qmin = g->qmin, .qmax = g->qmax,
                           .fbias = g->fbias ? fb : NULL};
    ql_qgemm_s32_ref(m, n, k, a, lda, w, ref, n, &e);
    long bad = 0;
    size_t ny = (size_t)(m * ldy);
    int32_t *ys = malloc(sizeof(int32_t) * ny);
    uint8_t *yu = malloc(ny);
    float *yf = malloc(sizeof(float) * ny);
    // packed for 7-bit activations (AVX2: maddubs) and for 8-bit ones (AVX2: s16 madd),
    // whatever the data: both must be exact on any codes
    for (int a_max = 127; a_max <= 255; a_max += 128) {
        ql_qgemm_packed *p = ql_qgemm_pack(w, n, k, isa, a_max);
        if (!p) { bad += 1 << 30; break; }
        if (ql_qgemm_packed_isa(p) != isa) bad++;
        memset(ys, 0x5a, sizeof(int32_t) * ny);
        memset(yu, 0x5a, ny);
        memset(yf, 0x5a, sizeof(float) * ny);
        ql_qgemm_s32(p, m, a, lda, ys, ldy, &e);
        ql_qgemm_u8(p, m, a, lda, yu, ldy, &e);
        ql_qgemm_f32(p, m, a, lda, yf, ldy, &e);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < ldy; j++) {
                int64_t o = i * ldy + j;
                if (j >= n) {   // the gap between rows is never written
                    int32_t s5 = 0x5a5a5a5a; float f5; memcpy(&f5, &s5, 4);
                    bad += ys[o] != s5 || yu[o] != 0x5a || memcmp(&yf[o], &f5, 4) != 0;
                    continue;
                }
                int32_t acc = ref[i * n + j];
                float ef = (float)acc * mult[j];
                if (g->fbias) ef += fb[j];
                long b = (ys[o] != acc) + (yu[o] != expect_u8(acc, mult[j], g->y_zero, g->qmin, g->qmax)) +
                         (memcmp(&yf[o], &ef, sizeof ef) != 0);
                if (b && bad < 3)
                    fprintf(stderr, "  isa %s m%lld n%d k%d [%lld,%lld]: s32 %d/%d u8 %d/%d f32 %.9g/%.9g\n",
                            ql_isa_name(isa), (long long)m, n, k, (long long)i, (long long)j, ys[o], acc,
                            yu[o], expect_u8(acc, mult[j], g->y_zero, g->qmin, g->qmax), yf[o], ef);
                bad += b;
            }
        ql_qgemm_packed_free(p);
    }
    free(a); free(w); free(bias); free(ref); free(mult); free(fb); free(ys); free(yu); free(yf);
    return bad;
}

static const int sizes[] = {1, 3, 7, 15, 16, 17, 31, 33, 63, 65, 127, 129};
#define NSIZES ((int)(sizeof sizes / sizeof *sizes))
static const int32_t zeros[] = {0, 128, 255};

static gemm_case random_case(void) {
    gemm_case g;
    g.m = sizes[rnd(NSIZES)];
    g.n = sizes[rnd(NSIZES)];
    g.k = rnd(4) ? sizes[rnd(NSIZES)] : (int)(200 + rnd(900));
    g.lda = g.k + (rnd(2) ? 0 : rnd(9));
    g.ldy = g.n + (rnd(2) ? 0 : rnd(5));
    g.a_zero = rnd(4) ? zeros[rnd(3)] : (int32_t)rnd(256);
    g.y_zero = zeros[rnd(3)];
    // 7-bit activations (the fast AVX2 path), 8-bit, or 7-bit with one 8-bit row
    g.amax = rnd(2) ? 127 : 255;
    g.hot_row = g.amax == 127 && rnd(3) == 0 ? (int)rnd((uint32_t)g.m) : -1;
    if (g.amax == 127 && g.a_zero > 127) g.a_zero = (int32_t)rnd(128);
    g.qmin = 0; g.qmax = 255;
    if (rnd(3) == 0) { g.qmin = g.y_zero; g.qmax = 255 - (int32_t)rnd(100); }   // fused relu(6)
    g.bias = rnd(2);
    g.fbias = rnd(2);
    // scale so the requantized values span the clamp range: acc ~ 128*64*sqrt(K)
    float s = 40.0f / (8192.0f * sqrtf((float)g.k));
    g.mult_lo = 0.2f * s; g.mult_hi = 3.0f * s;
    return g;
}

static void paths_match_reference(int isa) {
    long bad = 0;
    int cases = isa == QL_ISA_SCALAR ? 120 : 300;
    for (int t = 0; t < cases; t++) {
        gemm_case g = random_case();
        long b = run_case(&g, (ql_isa)isa);
        CHECK_MSG(b == 0, "%s: M=%lld N=%d K=%d lda=%lld ldy=%lld az=%d yz=%d [%d,%d] bias=%d fbias=%d: %ld bad",
                  ql_isa_name((ql_isa)isa), (long long)g.m, g.n, g.k, (long long)g.lda,
                  (long long)g.ldy, g.a_zero, g.y_zero, g.qmin, g.qmax, g.bias, g.fbias, b);
        bad += b;
        if (bad > 20) break;
    }
}

TEST(qgemm_paths_match_reference) {
    for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best(); isa++) paths_match_reference(isa);
    /* again with A packed instead of read in place */
    for (int isa = QL_ISA_AVX512; isa <= (int)ql_isa_best(); isa++) {
        ql_qgemm_set_direct(0);
        paths_match_reference(isa);
        ql_qgemm_set_direct(1);
    }
}

TEST(qgemm_odd_shapes_every_size) {
    // every (M, N) pair from the odd sizes with K around multiples of 2/4/8/16
    static const int ks[] = {1, 2, 3, 5, 9, 17, 31, 33, 66, 129};
    for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best(); isa++)
        for (int i = 0; i < NSIZES; i += isa == QL_ISA_SCALAR ? 3 : 1)
            for (int j = 0; j < NSIZES; j++) {
                gemm_case g = {.m = sizes[i], .n = sizes[j], .k = ks[(i + j) % 10], .a_zero = zeros[j % 3],
                               .y_zero = zeros[i % 3], .qmin = 0, .qmax = 255, .bias = j & 1,
                               .fbias = i & 1, .mult_lo = 0.001f, .mult_hi = 0.02f,
                               .amax = (i + j) % 2 ? 127 : 255, .hot_row = -1};
                if (g.amax == 127) g.a_zero = g.a_zero > 127 ? 127 : g.a_zero;
                g.lda = g.k; g.ldy = g.n;
                long b = run_case(&g, (ql_isa)isa);
                CHECK_MSG(b == 0, "%s: M=%lld N=%d K=%d: %ld bad", ql_isa_name((ql_isa)isa),
                          (long long)g.m, g.n, g.k, b);
            }
}

TEST(qgemm_large_k_blocks_and_threads) {
    // several K blocks (partial sums kept between them), row and column tasks
    gemm_case cs[] = {
        {.m = 49, .n = 70, .k = 4608 + 3, .a_zero = 128, .y_zero = 0, .qmin = 0, .qmax = 255, .bias = 1},
        {.m = 1, .n = 520, .k = 2304, .a_zero = 255, .y_zero = 128, .qmin = 0, .qmax = 255, .fbias = 1},
        {.m = 301, .n = 33, .k = 1153, .a_zero = 0, .y_zero = 255, .qmin = 0, .qmax = 255, .bias = 1},
        {.m = 200, .n = 64, .k = 576, .a_zero = 3, .y_zero = 7, .qmin = 7, .qmax = 200, .bias = 1},
        {.m = 3136, .n = 64, .k = 576, .a_zero = 5, .y_zero = 0, .qmin = 0, .qmax = 127, .bias = 1, .amax = 127},
        {.m = 777, .n = 96, .k = 2309, .a_zero = 64, .y_zero = 3, .qmin = 0, .qmax = 255, .fbias = 1,
         .amax = 127, .hot_row = 400},
        /* fewer rows than columns from 64 on: the threads split the columns */
        {.m = 64, .n = 512, .k = 1024, .a_zero = 9, .y_zero = 1, .qmin = 1, .qmax = 255, .bias = 1},
        {.m = 97, .n = 333, .k = 300, .a_zero = 0, .y_zero = 0, .qmin = 0, .qmax = 255, .fbias = 1},
    };
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++)
        if (!cs[c].amax) cs[c].hot_row = -1;
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        cs[c].lda = cs[c].k; cs[c].ldy = cs[c].n;
        float s = 40.0f / (8192.0f * sqrtf((float)cs[c].k));
        cs[c].mult_lo = 0.2f * s; cs[c].mult_hi = 3.0f * s;
        for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best(); isa++) {
            if (isa == QL_ISA_SCALAR && cs[c].m * cs[c].n * cs[c].k > 20000000) continue;
            long b = run_case(&cs[c], (ql_isa)isa);
            CHECK_MSG(b == 0, "%s: case %zu: %ld bad", ql_isa_name((ql_isa)isa), c, b);
        }
    }
}

TEST(qgemm_no_saturation_at_extremes) {
    // a = 255 (8-bit: the split maddubs path) and a = 127 (7-bit: one maddubs
    // per quad, 2*127*-128 = -32512 just inside s16) against w = -128 / 127
    int m = 5, n = 19, k = 4099;
    uint8_t *a = malloc((size_t)m * k);
    int8_t *w = malloc((size_t)n * k);
    for (int j = 0; j < n; j++) memset(w + (size_t)j * k, j % 2 ? 127 : 0x80, (size_t)k);
    int32_t *ref = malloc(sizeof(int32_t) * m * n), *y = malloc(sizeof(int32_t) * m * n);
    for (int av = 127; av <= 255; av += 128) {
        memset(a, av, (size_t)m * k);
        for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best(); isa++)
            for (int az = 0; az <= av; az += av) {
                ql_qgemm_epilogue e = {.a_zero = az};
                ql_qgemm_s32_ref(m, n, k, a, k, w, ref, n, &e);
                CHECK(ref[0] == (av - az) * -128 * k && ref[1] == (av - az) * 127 * k);
                ql_qgemm_packed *p = ql_qgemm_pack(w, n, k, (ql_isa)isa, az ? 127 : 255);   // both AVX2 kernels
                ql_qgemm_s32(p, m, a, k, y, n, &e);
                CHECK_MSG(memcmp(y, ref, sizeof(int32_t) * m * n) == 0, "%s a=%d az=%d: %d vs %d",
                          ql_isa_name((ql_isa)isa), av, az, y[0], ref[0]);
                ql_qgemm_packed_free(p);
            }
    }
    free(a); free(w); free(ref); free(y);
}

TEST(qgemm_requant_rounds_half_to_even) {
    // K = 1, w = 1: acc = a - a_zero, mult 0.5 -> exact halves
    uint8_t a[256];
    int8_t w = 1;
    for (int i = 0; i < 256; i++) a[i] = (uint8_t)i;
    float mult = 0.5f;
    for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best(); isa++) {
        ql_qgemm_packed *p = ql_qgemm_pack(&w, 1, 1, (ql_isa)isa, 255);
        ql_qgemm_epilogue e = {.a_zero = 128, .mult = &mult, .y_zero = 128, .qmin = 0, .qmax = 255};
        uint8_t y[256];
        ql_qgemm_u8(p, 256, a, 1, y, 1, &e);
        // (a-128)/2: 1 -> 0.5 -> 0, 3 -> 1.5 -> 2, 5 -> 2.5 -> 2, -1 -> -0.5 -> 0, -3 -> -2
        CHECK(y[129] == 128 && y[131] == 130 && y[133] == 130 && y[127] == 128 && y[125] == 126);
        for (int i = 0; i < 256; i++)
            CHECK_MSG(y[i] == (uint8_t)(128 + nearbyint((i - 128) / 2.0)), "%s a=%d y=%d",
                      ql_isa_name((ql_isa)isa), i, y[i]);
        // clamp to a fused relu6-style range
        e.qmin = 128; e.qmax = 140;
        ql_qgemm_u8(p, 256, a, 1, y, 1, &e);
        CHECK(y[0] == 128 && y[255] == 140 && y[150] == 139);
        ql_qgemm_packed_free(p);
    }
}

TEST(qgemm_pack_and_errors) {
    int8_t w[6] = {1, -2, 3, -4, 5, -128};
    ql_error_clear();
    CHECK(ql_qgemm_pack(w, 0, 3, QL_ISA_SCALAR, 255) == NULL);
    CHECK(strstr(ql_last_error(), "qgemm_pack") != NULL);
    CHECK(ql_qgemm_pack(w, 2, -1, QL_ISA_SCALAR, 255) == NULL);
    for (int isa = QL_ISA_SCALAR; isa <= QL_ISA_AVX512; isa++) {
        ql_qgemm_packed *p = ql_qgemm_pack(w, 2, 3, (ql_isa)isa, isa % 2 ? 127 : 255);
        CHECK(p != NULL);
        // never a path the CPU cannot run
        CHECK(ql_qgemm_packed_isa(p) == ((ql_isa)isa > ql_isa_best() ? ql_isa_best() : (ql_isa)isa));
        CHECK(ql_qgemm_packed_bytes(p) >= 6);
        uint8_t a[3] = {1, 2, 3};
        int32_t y[2];
        ql_qgemm_s32(p, 1, a, 3, y, 2, NULL);   // no epilogue: a_zero 0, no bias
        CHECK(y[0] == 1 * 1 + 2 * -2 + 3 * 3 && y[1] == -4 + 10 - 384);
        ql_qgemm_s32(p, 0, a, 3, y, 2, NULL);   // M = 0: nothing
        ql_qgemm_packed_free(p);
    }
    ql_qgemm_packed_free(NULL);
    if (ql_isa_best() < QL_ISA_AVX512)
        fprintf(stderr, "  note: no AVX-512 VNNI on this CPU: its kernel is not run here\n");
}
