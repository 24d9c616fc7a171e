/* Quantized pooling on NHWC u8. Max pooling keeps the scale, so it is exact
 * on the codes; global average pooling sums in s32 and requantizes once.
 * Vector twins of the inner loops are in qelem_avx2.c. */
#include <string.h>
#include "qops/qops_internal.h"

#define CBLK 256   /* channels summed at a time (s32 sums on the stack) */

// window [*lo, *hi) clipped to the input; returns 1 when it covers padding
// (positions past the right padding, which ceil_mode may add, do not count)
static int window(int o, int st, int pad, int k, int in, int *lo, int *hi) {
    int a = o * st - pad, b = a + k;
    if (b > in + pad) b = in + pad;
    *lo = a < 0 ? 0 : a;
    *hi = b > in ? in : b;
    return a < 0 || b > in;
}

// x (N,H,W,C) -> y (N,OH,OW,C); padded positions read as pad_value
void ql_qmaxpool_u8(const ql_pool2d_shape *s, const uint8_t *x, uint8_t *y, uint8_t pad_value) {
    const int C = s->c, avx = ql_isa_active() >= QL_ISA_AVX2;
    const int64_t tasks = (int64_t)s->n * s->oh;
    #pragma omp parallel for schedule(static) if (tasks * s->ow * C * s->kh * s->kw > (1 << 16))
    for (int64_t task = 0; task < tasks; task++) {
        int64_t n = task / s->oh;
        int oh = (int)(task % s->oh), h0, h1, w0, w1;
        int padh = window(oh, s->sh, s->ph, s->kh, s->h, &h0, &h1);
        for (int ow = 0; ow < s->ow; ow++) {
            int padw = window(ow, s->sw, s->pw, s->kw, s->w, &w0, &w1);
            uint8_t *yo = y + ((n * s->oh + oh) * s->ow + ow) * C;
            const uint8_t init = padh || padw ? pad_value : 0, *x0 = x + ((n * s->h + h0) * s->w + w0) * C;
            if (avx) {
                ql_qmax_window_avx2(C, h1 - h0, w1 - w0, x0, (int64_t)s->w * C, C, init, yo);
                continue;
            }
            memset(yo, init, (size_t)C);
            for (int ih = h0; ih < h1; ih++)
                for (int iw = w0; iw < w1; iw++) {
                    const uint8_t *xi = x + ((n * s->h + ih) * s->w + iw) * C;
                    for (int i = 0; i < C; i++) yo[i] = xi[i] > yo[i] ? xi[i] : yo[i];
                }
        }
    }
}

// x (N,HW,C) -> y (N,C): y = clamp(nearbyint((sum/HW - zx) * sx/sy) + zy, 0, 255)
void ql_qglobal_avgpool_u8(int n, int hw, int c, const uint8_t *x, float sx, int32_t zx,
                           uint8_t *y, float sy, int32_t zy, int32_t qmin, int32_t qmax) {
    const int avx = ql_isa_active() >= QL_ISA_AVX2;
    const float m = sx / sy, div = (float)(hw > 0 ? hw : 1);
    float lo, hi;
    ql_qclamp_bounds(qmin, qmax, zy, &lo, &hi);
    const int64_t nblk = (c + CBLK - 1) / CBLK;
    #pragma omp parallel for schedule(static) if ((int64_t)n * hw * c > (1 << 16))
    for (int64_t t = 0; t < n * nblk; t++) {
        int64_t img = t / nblk;
        int c0 = (int)(t % nblk) * CBLK, cb = c - c0 < CBLK ? c - c0 : CBLK;
        const uint8_t *xi = x + img * hw * c + c0;
        int32_t sum[CBLK];
        if (avx) {
            ql_qsum_hw_avx2(hw, cb, c, xi, sum);
        } else {
            memset(sum, 0, sizeof sum);
            for (int64_t p = 0; p < hw; p++)
                for (int j = 0; j < cb; j++) sum[j] += xi[p * c + j];
        }
        if (avx) {
            ql_qmean_requant_avx2(cb, sum, div, zx, m, lo, hi, zy, y + img * c + c0);
            continue;
        }
        for (int j = 0; j < cb; j++) {
            float v = ((float)sum[j] / div - (float)zx) * m;
            v = v > lo ? v : lo;
            v = v < hi ? v : hi;
            y[img * c + c0 + j] = (uint8_t)((int32_t)nearbyintf(v) + zy);
        }
    }
}
