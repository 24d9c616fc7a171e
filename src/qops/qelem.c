/* Elementwise INT8 ops: quantize, dequantize, quantized add, fused-activation
 * bounds. Each loop here is the scalar definition; qelem_avx2.c has twins
 * giving the same bits, picked by ql_isa_active(). Clamps are applied before
 * rounding on the float value (same codes, see ql_qclamp_bounds). */
#include "qops/qops_internal.h"

#define PAR_MIN (1 << 16)   /* elements per call before OpenMP is worth it */
#define BLK 4096            /* elements per OpenMP chunk (multiple of 32) */

static int use_avx2(void) { return ql_isa_active() >= QL_ISA_AVX2; }

// y = clamp(nearbyint(x / scale) + zp, qmin, qmax) for n floats; [lo, hi] = [qmin-zp, qmax-zp]
static void quantize_u8_scalar(int64_t n, const float *x, float scale, int32_t zp, float lo, float hi,
                               uint8_t *y) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] / scale;
        v = v > lo ? v : lo;
        v = v < hi ? v : hi;
        y[i] = (uint8_t)((int32_t)nearbyintf(v) + zp);
    }
}

void ql_quantize_u8(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax,
                    uint8_t *y) {
    float lo, hi;
    ql_qclamp_bounds(qmin, qmax, zp, &lo, &hi);
    int avx = use_avx2();
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i0 = 0; i0 < n; i0 += BLK) {
        int64_t len = n - i0 < BLK ? n - i0 : BLK;
        if (avx) ql_quantize_u8_avx2(len, x + i0, scale, zp, lo, hi, y + i0);
        else quantize_u8_scalar(len, x + i0, scale, zp, lo, hi, y + i0);
    }
}

// s8: same formula, clamp within [-128, 127] (no vector twin: weights, quantized once)
void ql_quantize_s8(int64_t n, const float *x, float scale, int32_t zp, int32_t qmin, int32_t qmax,
                    int8_t *y) {
    int64_t a = qmin < -128 ? -128 : qmin, b = qmax > 127 ? 127 : qmax;
    float lo = (float)(a - zp), hi = (float)(b - zp);
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] / scale;
        v = v > lo ? v : lo;
        v = v < hi ? v : hi;
        y[i] = (int8_t)((int32_t)nearbyintf(v) + zp);
    }
}

// y = (x - zp) * scale
void ql_dequantize_u8(int64_t n, const uint8_t *x, float scale, int32_t zp, float *y) {
    int avx = use_avx2();
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i0 = 0; i0 < n; i0 += BLK) {
        int64_t len = n - i0 < BLK ? n - i0 : BLK;
        if (avx) {
            ql_dequantize_u8_avx2(len, x + i0, scale, zp, y + i0);
        } else {
            for (int64_t i = i0; i < i0 + len; i++) y[i] = (float)((int32_t)x[i] - zp) * scale;
        }
    }
}

// y = clamp(nearbyint((sa*(a-za) + sb*(b-zb)) / sy) + zy, qmin, qmax)
static void qadd_scalar(int64_t n, const uint8_t *a, float sa, int32_t za, const uint8_t *b, float sb,
                        int32_t zb, uint8_t *y, float sy, int32_t zy, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) {
        float v = (sa * (float)((int32_t)a[i] - za) + sb * (float)((int32_t)b[i] - zb)) / sy;
        v = v > lo ? v : lo;
        v = v < hi ? v : hi;
        y[i] = (uint8_t)((int32_t)nearbyintf(v) + zy);
    }
}

void ql_qadd_u8(int64_t n, const uint8_t *a, float sa, int32_t za, const uint8_t *b, float sb, int32_t zb,
                uint8_t *y, float sy, int32_t zy, int32_t qmin, int32_t qmax) {
    float lo, hi;
    ql_qclamp_bounds(qmin, qmax, zy, &lo, &hi);
    int avx = use_avx2();
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i0 = 0; i0 < n; i0 += BLK) {
        int64_t len = n - i0 < BLK ? n - i0 : BLK;
        if (avx) ql_qadd_u8_avx2(len, a + i0, sa, za, b + i0, sb, zb, y + i0, sy, zy, lo, hi);
        else qadd_scalar(len, a + i0, sa, za, b + i0, sb, zb, y + i0, sy, zy, lo, hi);
    }
}

// relu: [max(0, zy), 255]; relu6: upper bound q(6) = zy + nearbyint(6 / sy), within [0, 255]
void ql_qrelu_bounds(int relu, float y_scale, int32_t y_zero, int32_t *qmin, int32_t *qmax) {
    int32_t lo = 0, hi = 255;
    if (relu >= 1) lo = y_zero < 0 ? 0 : y_zero > 255 ? 255 : y_zero;
    if (relu == 2) {
        float six = nearbyintf(6.0f / y_scale);
        double h = (double)y_zero + six;
        hi = h > 255 ? 255 : h < lo ? lo : (int32_t)h;
    }
    *qmin = lo;
    *qmax = hi;
}

void ql_qout_bounds(int relu, float y_scale, int32_t y_zero, int32_t lo, int32_t hi, int32_t *qmin, int32_t *qmax) {
    ql_qrelu_bounds(relu, y_scale, y_zero, qmin, qmax);
    if (hi <= 0 || hi > 255) hi = 255;
    if (lo < 0) lo = 0;
    if (*qmin < lo) *qmin = lo;
    if (*qmax > hi) *qmax = hi;
    if (*qmin > *qmax) *qmin = *qmax;   // an empty range: one code, never an inverted clamp
}
