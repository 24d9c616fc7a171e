/* Fake quantization and its straight-through gradient. Division (not a
 * multiply by 1/s) so the codes equal those ql_quantize_u8 gives after convert.
 * Each loop is compiled twice, for the baseline ISA and for AVX2, where
 * nearbyintf becomes vroundps (the current rounding mode, as nearbyintf) and
 * the loop vectorises: the same IEEE operations per element, the same bits.
 * The baseline has to call libm's nearbyintf per element. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "qlab/cpu.h"
#include "qlab/fakequant.h"

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

/* Order-preserving map of a non-NaN float to an unsigned key, and back. */
static inline uint32_t f2key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
static inline float key2f(uint32_t k) {
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline float code_of(float x, float scale, float z) { return nearbyintf(x / scale) + z; }

/* The smallest key in (l, h] where pred holds, given pred(l) false, pred(h)
 * true and pred monotonic; galloping from the guess g first (the guesses
 * below are an ulp or two off), then bisecting. */
#define FIRST_KEY(pred, l, h, g, out)                                                   \
    do {                                                                                \
        uint32_t l_ = (l), h_ = (h), g_ = (g);                                          \
        if (g_ > l_ && g_ < h_) {                                                       \
            float x = key2f(g_);                                                        \
            if (pred) {                                                                 \
                h_ = g_;                                                                \
                for (uint64_t st = 1; h_ - l_ > 1; st *= 2) {                          \
                    uint32_t c_ = h_ - l_ > st ? (uint32_t)(h_ - st) : l_ + 1;          \
                    x = key2f(c_);                                                      \
                    if (!(pred)) { l_ = c_; break; }                                    \
                    h_ = c_;                                                            \
                }                                                                       \
            } else {                                                                    \
                l_ = g_;                                                                \
                for (uint64_t st = 1; h_ - l_ > 1; st *= 2) {                          \
                    uint32_t c_ = h_ - l_ > st ? (uint32_t)(l_ + st) : h_ - 1;          \
                    x = key2f(c_);                                                      \
                    if (pred) { h_ = c_; break; }                                       \
                    l_ = c_;                                                            \
                }                                                                       \
            }                                                                           \
        }                                                                               \
        while (h_ - l_ > 1) {                                                           \
            uint32_t m_ = l_ + (h_ - l_) / 2;                                           \
            float x = key2f(m_);                                                        \
            if (pred) h_ = m_; else l_ = m_;                                            \
        }                                                                               \
        (out) = h_;                                                                     \
    } while (0)

/* [*a, *b]: the floats whose code lies in [qmin, qmax], for a finite scale
 * > 0 (code(-inf) = -inf, code(inf) = inf: both ends exist; an empty set
 * gives a > b). */
static void range_of(float scale, int32_t zp, int32_t qmin, int32_t qmax, float *a, float *b) {
    const float lo = (float)qmin, hi = (float)qmax, z = (float)zp;
    const uint32_t kmin = f2key(-INFINITY), kmax = f2key(INFINITY);
    uint32_t ka, kb;
    FIRST_KEY(code_of(x, scale, z) >= lo, kmin, kmax, f2key((lo - z - 0.5f) * scale), ka);
    FIRST_KEY(code_of(x, scale, z) > hi, kmin, kmax, f2key((hi - z + 0.5f) * scale), kb);
    *a = key2f(ka);
    *b = key2f(kb - 1);   /* the last key whose code is <= hi */
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
