/* Depthwise quantized conv (groups == C == OC), direct: every output pixel
 * sums (x - x_zero) * w over the taps that fall inside the image (padding is
 * x_zero, so it adds nothing), then requantizes per channel. Channels are
 * innermost (NHWC), which is what the AVX2 twin (qconv_dw_avx2.c) vectorises. */
#include "qops/qops_internal.h"

#define CB 64   /* channels per block: s32 sums on the stack */

void ql_qdw_range_scalar(const ql_qdw_args *d, const uint8_t *x, int64_t n, int oh, int ow, int c0,
                         int c1, void *y) {
    const ql_conv2d_shape *s = d->s;
    const int C = s->c;
    for (int b0 = c0; b0 < c1; b0 += CB) {
        int nb = c1 - b0 < CB ? c1 - b0 : CB;
        int32_t acc[CB];
        for (int j = 0; j < nb; j++) acc[j] = d->bias[b0 + j];
        for (int ki = 0; ki < s->kh; ki++) {
            int ih = oh * s->sh - s->ph + ki * s->dh;
            if (ih < 0 || ih >= s->h) continue;
            for (int kj = 0; kj < s->kw; kj++) {
                int iw = ow * s->sw - s->pw + kj * s->dw;
                if (iw < 0 || iw >= s->w) continue;
                const uint8_t *xp = x + ((n * s->h + ih) * s->w + iw) * C + b0;
                const int32_t *wp = d->w + (int64_t)(ki * s->kw + kj) * C + b0;
                for (int j = 0; j < nb; j++) acc[j] += ((int32_t)xp[j] - d->x_zero) * wp[j];
            }
        }
        for (int j = 0; j < nb; j++) {
            int c = b0 + j;
            if (d->f32_out) {
                float f = (float)acc[j] * d->mult[c];
                if (d->fbias) f += d->fbias[c];
                ((float *)y)[c] = f;
            } else {
                ((uint8_t *)y)[c] = (uint8_t)ql_requant(acc[j], d->mult[c], d->lo, d->hi, d->y_zero);
            }
        }
    }
}
