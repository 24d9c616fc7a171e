/* Fake quantization and its straight-through gradient. Division (not a
 * multiply by 1/s) so the codes equal those ql_quantize_u8 gives after convert.
 * Each loop is compiled twice, for the baseline ISA and for AVX2, where
 * nearbyintf becomes vroundps (the current rounding mode, as nearbyintf) and
 * the loop vectorises: the same IEEE operations per element, the same bits.
 * The baseline has to call libm's nearbyintf per element. */
#include <math.h>
#include <stdint.h>
#include "qlab/cpu.h"
#include "qlab/fakequant.h"
#include "float_order.h"

#define PAR_MIN (1 << 15)
#define AVX2 __attribute__((target("avx2")))

#define FQ_FORWARD                                                              \
    float lo = (float)qmin, hi = (float)qmax, z = (float)zp;                    \
    _Pragma("omp parallel for schedule(static) if (n > PAR_MIN)")              \
    for (int64_t i = 0; i < n; i++) {                                           \
        float q = nearbyintf(x[i] / scale) + z;                                 \
        q = q < lo ? lo : q > hi ? hi : q;                                      \
        y[i] = (q - z) * scale;                                                 \
    }

/* The gradient passes where qmin <= nearbyintf(x / scale) + zp <= qmax.
 * That code is monotonic in x, so the set is one interval [a, b] of floats,
 * found once per call by bisecting the float order (range_of): the loop
 * compares instead of dividing (the division bounded it at ~1.6 floats a
 * cycle), with the same answer for every x, NaN included (both compares
 * fail). */
#define FQ_BACKWARD                                                             \
    if (!(scale > 0 && scale < INFINITY)) {                                     \
        float lo = (float)qmin, hi = (float)qmax, z = (float)zp;                \
        for (int64_t i = 0; i < n; i++) {                                       \
            float q = nearbyintf(x[i] / scale) + z;                             \
            dx[i] = (q >= lo && q <= hi) ? dy[i] : 0.0f;                        \
        }                                                                       \
        return;                                                                 \
    }                                                                           \
    float a, b;                                                                 \
    range_of(scale, zp, qmin, qmax, &a, &b);                                    \
    _Pragma("omp parallel for schedule(static) if (n > PAR_MIN)")              \
    for (int64_t i = 0; i < n; i++) dx[i] = (x[i] >= a && x[i] <= b) ? dy[i] : 0.0f;

static inline float code_of(float x, float scale, float z) { return nearbyintf(x / scale) + z; }
/* code(x) > bound (strict) or >= bound: false at -inf, true at inf, monotonic in x */
static inline int above(uint32_t key, float scale, float z, float bound, int strict) {
    float q = code_of(ql_key2f(key), scale, z);
    return strict ? q > bound : q >= bound;
}

/* The smallest key where above() holds, galloping out from the guess g (an
 * ulp or two off) to bracket it, then bisecting. */
static uint32_t first_key(float scale, float z, float bound, int strict, uint32_t g) {
    uint32_t l = ql_f2key(-INFINITY), h = ql_f2key(INFINITY);   /* above(l) false, above(h) true */
    if (g > l && g < h) {
        int up = !above(g, scale, z, bound, strict);
        if (up) l = g; else h = g;
        for (uint64_t st = 1; h - l > 1; st *= 2) {
            uint32_t c = up ? (h - l > st ? (uint32_t)(l + st) : h - 1) : (h - l > st ? (uint32_t)(h - st) : l + 1);
            int a = above(c, scale, z, bound, strict);
            if (a) h = c; else l = c;
            if (a == up) break;   /* crossed: [l, h] brackets the edge */
        }
    }
    while (h - l > 1) {
        uint32_t m = l + (h - l) / 2;
        if (above(m, scale, z, bound, strict)) h = m; else l = m;
    }
    return h;
}

/* [*a, *b]: the floats whose code lies in [qmin, qmax], for a finite scale
 * > 0 (code(-inf) = -inf, code(inf) = inf: both ends exist; an empty set
 * gives a > b). */
static void range_of(float scale, int32_t zp, int32_t qmin, int32_t qmax, float *a, float *b) {
    const float lo = (float)qmin, hi = (float)qmax, z = (float)zp;
    *a = ql_key2f(first_key(scale, z, lo, 0, ql_f2key((lo - z - 0.5f) * scale)));
    *b = ql_key2f(first_key(scale, z, hi, 1, ql_f2key((hi - z + 0.5f) * scale)) - 1);   /* last code <= hi */
}

static void fq_plain(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax, float *y) {
    FQ_FORWARD
}
AVX2 static void fq_avx2(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax, float *y) {
    FQ_FORWARD
}
static void fqb_plain(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax,
                      const float *dy, float *dx) {
    FQ_BACKWARD
}
AVX2 static void fqb_avx2(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax,
                          const float *dy, float *dx) {
    FQ_BACKWARD
}

void ql_fake_quant(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax, float *y) {
    if (ql_isa_active() >= QL_ISA_AVX2) fq_avx2(n, x, scale, zp, qmin, qmax, y);
    else fq_plain(n, x, scale, zp, qmin, qmax, y);
}

void ql_fake_quant_backward(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax,
                            const float *dy, float *dx) {
    if (ql_isa_active() >= QL_ISA_AVX2) fqb_avx2(n, x, scale, zp, qmin, qmax, dy, dx);
    else fqb_plain(n, x, scale, zp, qmin, qmax, dy, dx);
}

void ql_fake_quant_channels(int c, int64_t per, const float *x, const float *scale, const int32_t *zp,
                            int32_t qmin, int32_t qmax, float *y) {
    #pragma omp parallel for schedule(static) if ((int64_t)c * per > PAR_MIN)
    for (int k = 0; k < c; k++) ql_fake_quant(per, x + k * per, scale[k], zp[k], qmin, qmax, y + k * per);
}

void ql_fake_quant_channels_backward(int c, int64_t per, const float *x, const float *scale, const int32_t *zp,
                                     int32_t qmin, int32_t qmax, const float *dy, float *dx) {
    #pragma omp parallel for schedule(static) if ((int64_t)c * per > PAR_MIN)
    for (int k = 0; k < c; k++)
        ql_fake_quant_backward(per, x + k * per, scale[k], zp[k], qmin, qmax, dy + k * per, dx + k * per);
}
