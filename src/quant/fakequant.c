/* Fake quantization and its straight-through gradient. Division (not a
 * multiply by 1/s) so the codes equal those ql_quantize_u8 gives after convert.
 * Each loop is compiled twice, for the baseline ISA and for AVX2, where
 * nearbyintf becomes vroundps (the current rounding mode, as nearbyintf) and
 * the loop vectorises: the same IEEE operations per element, the same bits.
 * The baseline has to call libm's nearbyintf per element. */
#include <math.h>
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

#define FQ_BACKWARD                                                             \
    float lo = (float)qmin, hi = (float)qmax, z = (float)zp;                    \
    _Pragma("omp parallel for schedule(static) if (n > PAR_MIN)")              \
    for (int64_t i = 0; i < n; i++) {                                           \
        float q = nearbyintf(x[i] / scale) + z;                                 \
        dx[i] = (q >= lo && q <= hi) ? dy[i] : 0.0f;                            \
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
