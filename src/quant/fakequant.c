/* Fake quantization and its straight-through gradient. Division (not a
 * multiply by 1/s) so the codes equal those ql_quantize_u8 gives after convert. */
#include <math.h>
#include "qlab/fakequant.h"

#define PAR_MIN (1 << 15)

static inline float code(float x, float s, int32_t zp) { return nearbyintf(x / s) + (float)zp; }

void ql_fake_quant(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax, float *y) {
    float lo = (float)qmin, hi = (float)qmax;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float q = code(x[i], scale, zp);
        q = q < lo ? lo : q > hi ? hi : q;
        y[i] = (q - (float)zp) * scale;
    }
}

void ql_fake_quant_backward(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax,
                            const float *dy, float *dx) {
    float lo = (float)qmin, hi = (float)qmax;
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float q = code(x[i], scale, zp);
        dx[i] = (q >= lo && q <= hi) ? dy[i] : 0.0f;
    }
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
