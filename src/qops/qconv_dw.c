/* Depthwise quantized conv (groups == C == OC), direct: every output pixel
 * sums (x - x_zero) * w over the taps that fall inside the image (padding is
 * x_zero, so it adds nothing), then requantizes per channel. Channels are
 * innermost (NHWC), which is what the AVX2 twin (qconv_dw_avx2.c) vectorises. */
#include "qlab/alloc.h"
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

/* lo holds channels j = 0-3 (lane 0) and 8-11 (lane 1) of a block, hi 4-7 and
 * 12-15: position i of a 16-lane s32 result -> channel. */
static int lane_channel(int hi, int i) { return (i < 4 ? i : i + 4) + (hi ? 4 : 0); }

int ql_qdw_pack_pairs(const ql_conv2d_shape *s, const int32_t *w, const int32_t *bias, int32_t x_zero,
                      int16_t **wpair, int32_t **off, uint8_t **zrow) {
    const int C = s->c, taps = s->kh * s->kw, np = (taps + 1) / 2, nblk = C / 16;
    *wpair = NULL; *off = NULL; *zrow = NULL;
    if (np > 32) return 0;   /* larger kernels: the 8-channel path */
    *wpair = ql_malloc(sizeof(int16_t) * ((size_t)np * nblk * 32 + 1));
    *off = ql_malloc(sizeof(int32_t) * (size_t)C);
    *zrow = ql_malloc((size_t)C);
    if (!*wpair || !*off || !*zrow) {
        ql_free(*wpair); ql_free(*off); ql_free(*zrow);
        *wpair = NULL; *off = NULL; *zrow = NULL;
        return -1;
    }
    for (int c = 0; c < C; c++) {
        int64_t sw = 0;
        for (int t = 0; t < taps; t++) sw += w[(int64_t)t * C + c];
        (*off)[c] = (int32_t)(bias[c] - (int64_t)x_zero * sw);
        (*zrow)[c] = (uint8_t)x_zero;
    }
    for (int p = 0; p < np; p++)
        for (int b = 0; b < nblk; b++)
            for (int h = 0; h < 2; h++)
                for (int i = 0; i < 8; i++) {   /* s32 lane i of lo / hi: an (even, odd) s16 pair */
                    int c = 16 * b + lane_channel(h, i), t0 = 2 * p, t1 = 2 * p + 1;
                    int16_t *q = *wpair + ((int64_t)p * nblk + b) * 32 + h * 16 + 2 * i;
                    q[0] = (int16_t)w[(int64_t)t0 * C + c];
                    q[1] = t1 < taps ? (int16_t)w[(int64_t)t1 * C + c] : 0;
                }
    return 1;
}

int16_t *ql_qdw_pack_pairs32(const ql_conv2d_shape *s, const int32_t *w) {
    const int C = s->c, taps = s->kh * s->kw, np = (taps + 1) / 2, nblk = C / 32;
    if (np > 32 || nblk == 0) return NULL;
    int16_t *q = ql_malloc(sizeof(int16_t) * (size_t)np * nblk * 64);
    if (!q) return NULL;
    for (int p = 0; p < np; p++)
        for (int b = 0; b < nblk; b++)
            for (int h = 0; h < 2; h++)
                for (int i = 0; i < 16; i++) {
                    int c = 32 * b + 8 * (i / 4) + i % 4 + (h ? 4 : 0), t0 = 2 * p, t1 = 2 * p + 1;
                    int16_t *e = q + ((int64_t)p * nblk + b) * 64 + h * 32 + 2 * i;
                    e[0] = (int16_t)w[(int64_t)t0 * C + c];
                    e[1] = t1 < taps ? (int16_t)w[(int64_t)t1 * C + c] : 0;
                }
    return q;
}
