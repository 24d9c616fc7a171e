/* The histogram's one-pass route (ql_hist_observe_scan: extrema, bins and
 * merge in one pass for a batch inside the range) against the two-pass
 * reference (min / max, then ql_hist_observe): the same counts, range and
 * extrema, bit for bit, for batches inside and outside the range, small
 * (one thread) and large (two), both counting modes; and no change at all
 * when the batch widens the range or holds a NaN. */
#include <stdlib.h>
#include "test.h"
#include "qlab/alloc.h"
#include "qlab/cpu.h"
#include "qlab/rng.h"
#include "quant/observer_impl.h"

static void two_pass(ql_hist *h, const float *x, int64_t n) {
    float mn = x[0], mx = x[0];
    for (int64_t i = 1; i < n; i++) { mn = fminf(mn, x[i]); mx = fmaxf(mx, x[i]); }
    ql_hist_observe(h, x, n, mn, mx);
}

/* batch k: ReLU6-like values (runs of 0 and 6) scaled by the batch's own
 * spread and shifted, so some batches widen the range and most stay inside */
static void fill(float *x, int64_t n, int k) {
    static const float spread[] = {1.0f, 0.5f, 0.9f, 1.7f, 0.3f, 1.7f, 2.9f, 0.2f, 1.0f, 2.5f};
    static const float shift[] = {0.0f, 0.1f, -0.2f, 0.0f, 0.5f, -1.5f, 0.0f, 0.3f, 6.0f, 0.0f};
    float s = spread[k % 10], o = shift[(k / 3) % 10];   /* ranges that grow at one end or both */
    ql_rng *r = ql_rng_global();
    for (int64_t i = 0; i < n; i++) {
        float v = (float)(ql_rng_uniform(r) * 8 - 1) * s;
        x[i] = o + (i % 7 == 0 ? v : v < 0 ? 0 : v > 6 * s ? 6 * s : v);
    }
}

TEST(hist_scan_matches_two_passes) {
    int64_t mem0 = ql_mem_current();
    const int64_t sizes[] = {1000, 3 << 16};     /* below and above the parallel threshold */
    for (int compat = 0; compat <= 1; compat++)
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            int64_t n = sizes[si];
            float *x = malloc((size_t)n * sizeof(float));
            ql_hist a, b;
            CHECK(ql_hist_init(&a, 2048, compat) == QL_OK && ql_hist_init(&b, 2048, compat) == QL_OK);
            ql_hist_reset(&a); ql_hist_reset(&b);
            int scanned = 0, merged = 0;
            for (int k = 0; k < 30; k++) {
                fill(x, n, k);
                two_pass(&a, x, n);
                float mn = 0, mx = 0;
                int64_t bad = -1;
                int done = 9;
                CHECK(ql_hist_observe_scan(&b, x, n, &mn, &mx, &bad, &done) == QL_OK);
                CHECK(done >= -1 && done <= 1);
                if (done >= 0) {
                    scanned++;
                    float rmn = x[0], rmx = x[0];
                    for (int64_t i = 1; i < n; i++) { rmn = fminf(rmn, x[i]); rmx = fmaxf(rmx, x[i]); }
                    CHECK(mn == rmn && mx == rmx && bad == 0);
                }
                if (done == 1) merged++;
                else if (done == 0) ql_hist_observe(&b, x, n, mn, mx);   /* as the observer goes on */
                else two_pass(&b, x, n);
                int diff = 0;
                for (int j = 0; j < 2048; j++) diff += a.counts[j] != b.counts[j];
                CHECK_MSG(diff == 0 && a.lo == b.lo && a.hi == b.hi,
                          "compat %d, n %lld, batch %d (done %d): %d bins differ, [%g, %g] vs [%g, %g]",
                          compat, (long long)n, k, done, diff, (double)a.lo, (double)a.hi, (double)b.lo,
                          (double)b.hi);
            }
            CHECK_MSG(scanned >= 25 && merged >= 15 && merged < scanned,
                      "the test should take both routes: %d scanned, %d merged", scanned, merged);
            /* a NaN: extrema and count reported, the histogram untouched */
            fill(x, n, 4);
            x[n / 2] = NAN;
            float mn, mx, before0 = b.counts[0], lo = b.lo, hi = b.hi;
            int64_t bad = 0;
            int done = 9;
            CHECK(ql_hist_observe_scan(&b, x, n, &mn, &mx, &bad, &done) == QL_OK);
            CHECK(done == 0 && bad == 1 && b.counts[0] == before0 && b.lo == lo && b.hi == hi);
            ql_hist_free(&a); ql_hist_free(&b);
            free(x);
        }
    CHECK(ql_mem_current() == mem0);
}

/* No range yet (the first batch, or a constant one): nothing is scanned. */
TEST(hist_scan_needs_a_range) {
    ql_hist h;
    CHECK(ql_hist_init(&h, 64, 0) == QL_OK);
    ql_hist_reset(&h);
    float x[4] = {2, 2, 2, 2}, mn, mx;
    int64_t bad;
    int done = 9;
    CHECK(ql_hist_observe_scan(&h, x, 4, &mn, &mx, &bad, &done) == QL_OK && done == -1);
    CHECK(ql_hist_observe(&h, x, 4, 2, 2) == QL_OK);
    CHECK(ql_hist_observe_scan(&h, x, 4, &mn, &mx, &bad, &done) == QL_OK && done == -1);
    ql_hist_free(&h);
}

/* The AVX2 build of the counting pass against the baseline's, on data with
 * long runs in both end bins, values on the edges, values outside the
 * counting range and block tails of every length. */
TEST(hist_avx2_matches_baseline) {
    if (ql_isa_best() < QL_ISA_AVX2) return;
    ql_isa prev = ql_isa_active();
    const int64_t sizes[] = {1, 7, 8, 9, 517, 4099, 3 << 16};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int64_t n = sizes[si];
        float *x = malloc((size_t)n * sizeof(float));
        ql_hist h[2];
        for (int v = 0; v < 2; v++) {
            ql_isa_force(v == 0 ? QL_ISA_SCALAR : QL_ISA_AVX2);
            ql_seed(77);
            CHECK(ql_hist_init(&h[v], 2048, 0) == QL_OK);
            ql_hist_reset(&h[v]);
            for (int k = 0; k < 12; k++) {
                fill(x, n, k);
                for (int64_t i = 0; i < n; i += 97) x[i] = i % 2 ? 0.0f : 6.0f;   /* more runs */
                float mn, mx;
                int64_t bad;
                int done;
                CHECK(ql_hist_observe_scan(&h[v], x, n, &mn, &mx, &bad, &done) == QL_OK);
                if (done == 0) ql_hist_observe(&h[v], x, n, mn, mx);
                else if (done < 0) two_pass(&h[v], x, n);
            }
        }
        int diff = 0;
        for (int j = 0; j < 2048; j++) diff += h[0].counts[j] != h[1].counts[j];
        CHECK_MSG(diff == 0 && h[0].lo == h[1].lo && h[0].hi == h[1].hi,
                  "n %lld: %d bins differ between the baseline and AVX2", (long long)n, diff);
        ql_hist_free(&h[0]); ql_hist_free(&h[1]);
        free(x);
    }
    ql_isa_force(prev);
}
