/* Fake quantization for QAT: quantize-dequantize in FP32,
 *   y = (clamp(nearbyint(x / s) + z, qmin, qmax) - z) * s,
 * with PyTorch's straight-through gradient: dx = dy where the unclamped code
 * nearbyint(x / s) + z lies in [qmin, qmax], 0 elsewhere. */
#ifndef QLAB_FAKEQUANT_H
#define QLAB_FAKEQUANT_H
#include <stdint.h>

void ql_fake_quant(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax, float *y);
void ql_fake_quant_backward(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax,
                            const float *dy, float *dx);
/* x (C, per): channel c uses scale[c], zp[c] (weights, output channels first) */
void ql_fake_quant_channels(int c, int64_t per, const float *x, const float *scale, const int32_t *zp,
                            int32_t qmin, int32_t qmax, float *y);
void ql_fake_quant_channels_backward(int c, int64_t per, const float *x, const float *scale, const int32_t *zp,
                                     int32_t qmin, int32_t qmax, const float *dy, float *dx);

#endif
