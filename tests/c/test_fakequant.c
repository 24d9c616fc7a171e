/* Fake quantization: forward equals quantize-then-dequantize; the gradient
 * is straight-through inside the range (finite differences) and zero outside. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test.h"
#include "qlab/cpu.h"
#include "qlab/fakequant.h"
#include "qlab/qops.h"
#include "qlab/rng.h"

TEST(fakequant_equals_quantize_dequantize) {
    enum { N = 4099 };
    static float x[N], y[N], r[N];
    static uint8_t q[N];
    ql_rng *g = ql_rng_global();
    for (int i = 0; i < N; i++) x[i] = 4.0f * ql_rng_normal(g);
    float s = 0.037f;
    int32_t zp = 117;
    ql_fake_quant(N, x, s, zp, 0, 255, y);
    ql_quantize_u8(N, x, s, zp, 0, 255, q);
    ql_dequantize_u8(N, q, s, zp, r);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += y[i] != r[i];
    CHECK_MSG(bad == 0, "%d of %d values differ from quantize+dequantize", bad, N);
}

TEST(fakequant_gradient_straight_through) {
    float s = 0.1f;
    int32_t zp = 10, qmin = 0, qmax = 50;   /* representable range [-1.0, 4.0] */
    float xs[] = {-3.0f, -1.2f, -0.52f, 0.013f, 1.77f, 3.96f, 4.3f, 9.0f};
    int n = (int)(sizeof xs / sizeof *xs);
    float dy[8], dx[8];
    for (int i = 0; i < n; i++) dy[i] = 1.0f + i;
    ql_fake_quant_backward(n, xs, s, zp, qmin, qmax, dy, dx);
    for (int i = 0; i < n; i++) {
        float code = nearbyintf(xs[i] / s) + zp;
        int inside = code >= qmin && code <= qmax;
        CHECK_MSG(dx[i] == (inside ? dy[i] : 0.0f), "x=%g: dx %g", xs[i], dx[i]);
        if (!inside) {   /* outside: the forward is flat, finite differences give 0 */
            float a = xs[i] - 1e-3f, b = xs[i] + 1e-3f, ya, yb;
            ql_fake_quant(1, &a, s, zp, qmin, qmax, &ya);
            ql_fake_quant(1, &b, s, zp, qmin, qmax, &yb);
            CHECK(ya == yb);
        } else {         /* inside: over a span of many steps the slope is 1 (the STE's value) */
            float a = xs[i] - 0.5f, b = xs[i] + 0.5f, ya, yb;
            if (a / s + zp < qmin || b / s + zp > qmax) continue;
            ql_fake_quant(1, &a, s, zp, qmin, qmax, &ya);
            ql_fake_quant(1, &b, s, zp, qmin, qmax, &yb);
            CHECK_NEAR((yb - ya) / (b - a), 1.0, 0.11);
        }
    }
}

TEST(fakequant_per_channel) {
    float w[6] = {0.5f, -0.26f, 3.0f, -2.9f, 0.01f, 0.02f}, y[6];
    float sc[3] = {0.5f / 127, 3.0f / 127, 0.02f / 127};
    int32_t zp[3] = {0, 0, 0};
    ql_fake_quant_channels(3, 2, w, sc, zp, -127, 127, y);
    for (int c = 0; c < 3; c++)
        for (int e = 0; e < 2; e++) {
            float want;
            ql_fake_quant(1, &w[c * 2 + e], sc[c], 0, -127, 127, &want);
            CHECK(y[c * 2 + e] == want);
            CHECK(fabsf(y[c * 2 + e] - w[c * 2 + e]) <= sc[c] / 2 + 1e-7f);
        }
}

/* The AVX2 twin and the baseline loop give the same bits, ties (x/s exactly
 * half an integer) included, forward and backward. */
TEST(fakequant_isa_twins_agree) {
    enum { N = 70001 };   /* above the threading threshold */
    float *x = malloc(N * sizeof(float)), *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
    float *dy = malloc(N * sizeof(float)), *da = malloc(N * sizeof(float)), *db = malloc(N * sizeof(float));
    ql_rng *g = ql_rng_global();
    float s = 0.05f;
    for (int i = 0; i < N; i++) {
        x[i] = i % 7 == 0 ? s * ((float)(i % 600) - 300.5f) : 8.0f * ql_rng_normal(g);   /* ties and clips */
        dy[i] = ql_rng_normal(g);
    }
    ql_isa saved = ql_isa_active();
    ql_isa_force(QL_ISA_SCALAR);
    ql_fake_quant(N, x, s, 128, 0, 255, a);
    ql_fake_quant_backward(N, x, s, 128, 0, 255, dy, da);
    ql_isa_force(QL_ISA_AVX2);
    ql_fake_quant(N, x, s, 128, 0, 255, b);
    ql_fake_quant_backward(N, x, s, 128, 0, 255, dy, db);
    ql_isa_force(saved);
    CHECK(memcmp(a, b, N * sizeof(float)) == 0);
    CHECK(memcmp(da, db, N * sizeof(float)) == 0);
    free(x); free(a); free(b); free(dy); free(da); free(db);
}

/* The backward pass finds the in-range interval once per call instead of
 * dividing every x: the same mask as the definition, at the edges of every
 * code (an ulp either side), for odd scales, NaN and infinities. */
TEST(fakequant_backward_mask_is_the_definition) {
    static const float scales[] = {0.037f, 1e-7f, 3.0f, 0.1f, 1e30f, 0.0123457f};
    static const int32_t ranges[][3] = {{117, 0, 255}, {0, -128, 127}, {3, 0, 15}, {255, 0, 255}, {-5, -8, 7}};
    enum { N = 3 * 300 + 6 };
    static float x[N], dy[N], dx[N];
    ql_isa saved = ql_isa_active();
    long bad = 0;
    for (size_t si = 0; si < sizeof scales / sizeof *scales; si++)
        for (size_t ri = 0; ri < sizeof ranges / sizeof *ranges; ri++) {
            float s = scales[si];
            int32_t zp = ranges[ri][0], qmin = ranges[ri][1], qmax = ranges[ri][2];
            int n = 0;
            for (int k = -150; k < 150; k++) {   /* the half-way points between codes, and their neighbours */
                float e = ((float)(k - zp) + 0.5f) * s;
                x[n++] = e; x[n++] = nextafterf(e, -INFINITY); x[n++] = nextafterf(e, INFINITY);
            }
            x[n++] = NAN; x[n++] = INFINITY; x[n++] = -INFINITY; x[n++] = 0.0f; x[n++] = -0.0f; x[n++] = 1e38f;
            for (int i = 0; i < n; i++) dy[i] = 1.0f + (float)i;
            for (int isa = QL_ISA_SCALAR; isa <= (int)ql_isa_best() && isa <= QL_ISA_AVX2; isa++) {
                ql_isa_force((ql_isa)isa);
                ql_fake_quant_backward(n, x, s, zp, qmin, qmax, dy, dx);
                for (int i = 0; i < n; i++) {
                    float q = nearbyintf(x[i] / s) + (float)zp;
                    float want = (q >= (float)qmin && q <= (float)qmax) ? dy[i] : 0.0f;
                    if (dx[i] != want) bad++;
                }
            }
        }
    ql_isa_force(saved);
    CHECK_MSG(bad == 0, "%ld masks differ from the definition", bad);
}
