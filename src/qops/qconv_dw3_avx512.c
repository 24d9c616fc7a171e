/* Depthwise 3x3 at stride 1 or 2 on AVX-512 VNNI, one output row as one
 * flat vector. At stride 1 the taps of output row (n, oh) are the padded
 * input rows oh..oh+2 read at j + kj*C, where j = ow*C + c runs over the
 * whole output row: every 64 outputs are 9 plain loads, whatever C. At
 * stride 2 each padded input row is split into its even and odd pixels
 * (E, O) as it is padded, and the taps kj = 0, 1, 2 are E, O and E + C read
 * at j. Four taps interleave byte by byte (two rounds of unpacks) into
 * vpdpbusd's u8 quadruples, so 64 outputs take 12 dot products and 22
 * shuffles where the paired-tap kernel (qconv_dw_avx512.c) spends 20
 * widening shuffles and 10 multiply-adds on 32. The channel of output j is
 * j % C: the weights, offsets and multipliers repeat every P = C / gcd(64, C)
 * chunks of 64, and are packed once per pattern in the order the unpacks
 * leave the lanes (lane L, dword i of quadruple vector k is byte 16L + 4k + i
 * of the chunk). The same integers as the scalar code (off = bias - x_zero *
 * sum w, the padding read as x_zero) and the same float epilogue, so the
 * bytes match. */
#include <immintrin.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qops/qops_internal.h"

#define ROW_BYTES (16 << 10)   /* a padded input row, + 64 bytes of slack, on the stack */

/* bytes of one padded input row as the kernel keeps it (+ 64 of slack per plane) */
static int64_t row_bytes(const ql_conv2d_shape *s) {
    const int64_t wp = s->w + 2 * s->pw;
    return s->sw == 1 ? wp * s->c + 64 : 2 * ((wp + 1) / 2 * s->c + 64);
}

int ql_qdw3_supported(const ql_conv2d_shape *s) {
    return s->kh == 3 && s->kw == 3 && (s->sh == 1 || s->sh == 2) && s->sw == s->sh && s->dh == 1 &&
           s->dw == 1 && s->pw <= 1 && s->groups == s->c && s->oc == s->c && s->c % 16 == 0 &&
           row_bytes(s) <= ROW_BYTES;
}

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

ql_qdw3 *ql_qdw3_pack(const ql_conv2d_shape *s, const int32_t *w, const int32_t *off, const float *mult) {
    if (!ql_qdw3_supported(s)) return NULL;
    const int C = s->c, P = C / gcd(64, C);
    ql_qdw3 *k = ql_malloc(sizeof *k);
    if (!k) return NULL;
    k->P = P;
    k->w = ql_malloc((size_t)P * 12 * 64);
    k->off = ql_malloc(sizeof(int32_t) * (size_t)P * 64);
    k->mult = ql_malloc(sizeof(float) * (size_t)P * 64);
    if (!k->w || !k->off || !k->mult) { ql_qdw3_free(k); return NULL; }
    for (int p = 0; p < P; p++)
        for (int q = 0; q < 4; q++)
            for (int L = 0; L < 4; L++)
                for (int i = 0; i < 4; i++) {
                    int ch = (p * 64 + 16 * L + 4 * q + i) % C, lane = 4 * L + i;
                    k->off[(p * 4 + q) * 16 + lane] = off[ch];
                    k->mult[(p * 4 + q) * 16 + lane] = mult[ch];
                    for (int g = 0; g < 3; g++)
                        for (int b = 0; b < 4; b++) {
                            int t = 4 * g + b;   /* tap ki*3 + kj; 9..11 are zero */
                            k->w[((p * 3 + g) * 4 + q) * 64 + lane * 4 + b] = (int8_t)(t < 9 ? w[t * C + ch] : 0);
                        }
                }
    return k;
}

void ql_qdw3_free(ql_qdw3 *k) {
    if (!k) return;
    ql_free(k->w);
    ql_free(k->off);
    ql_free(k->mult);
    ql_free(k);
}

// acc[q] += the quadruples of taps a, b, c, d times their packed weights w[q]
QL_AVX512 static inline void quad(__m512i acc[4], __m512i a, __m512i b, __m512i c, __m512i d, const int8_t *w) {
    __m512i ab0 = _mm512_unpacklo_epi8(a, b), ab1 = _mm512_unpackhi_epi8(a, b);
    __m512i cd0 = _mm512_unpacklo_epi8(c, d), cd1 = _mm512_unpackhi_epi8(c, d);
    acc[0] = _mm512_dpbusd_epi32(acc[0], _mm512_unpacklo_epi16(ab0, cd0), _mm512_loadu_si512((const void *)w));
    acc[1] = _mm512_dpbusd_epi32(acc[1], _mm512_unpackhi_epi16(ab0, cd0), _mm512_loadu_si512((const void *)(w + 64)));
    acc[2] = _mm512_dpbusd_epi32(acc[2], _mm512_unpacklo_epi16(ab1, cd1), _mm512_loadu_si512((const void *)(w + 128)));
    acc[3] = _mm512_dpbusd_epi32(acc[3], _mm512_unpackhi_epi16(ab1, cd1), _mm512_loadu_si512((const void *)(w + 192)));
}

/* One output row: tap t = ki*3 + kj reads tb[t] + j, len = OW*C outputs. */
QL_AVX512 static void row(const ql_qdw3 *k, const ql_qdw_args *d, const uint8_t *const tb[9], int64_t len,
                          uint8_t *y) {
    const __m512 lo = _mm512_set1_ps(d->lo), hi = _mm512_set1_ps(d->hi);
    const __m512i yz = _mm512_set1_epi32(d->y_zero), z = _mm512_setzero_si512();
    int p = 0;
    for (int64_t j = 0; j < len; j += 64) {
        const int8_t *w = k->w + (size_t)p * 12 * 64;
        const int32_t *off = k->off + p * 64;
        const float *m = k->mult + p * 64;
        if (++p == k->P) p = 0;
        __m512i acc[4];
        for (int q = 0; q < 4; q++) acc[q] = _mm512_loadu_si512((const void *)(off + 16 * q));
#define LD(ptr) _mm512_loadu_si512((const void *)(ptr))
        quad(acc, LD(tb[0] + j), LD(tb[1] + j), LD(tb[2] + j), LD(tb[3] + j), w);
        quad(acc, LD(tb[4] + j), LD(tb[5] + j), LD(tb[6] + j), LD(tb[7] + j), w + 256);
        quad(acc, LD(tb[8] + j), z, z, z, w + 512);
#undef LD
        __m512i v[4];
        for (int q = 0; q < 4; q++) {
            __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[q]), _mm512_loadu_ps(m + 16 * q));
            f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);
            v[q] = _mm512_add_epi32(_mm512_cvtps_epi32(f), yz);   /* half to even, in [0, 255] */
        }
        /* lane L: v0, v1 are bytes 16L+0..7, v2, v3 16L+8..15: the packs restore the order */
        __m512i b = _mm512_packus_epi16(_mm512_packs_epi32(v[0], v[1]), _mm512_packs_epi32(v[2], v[3]));
        if (len - j >= 64) _mm512_storeu_si512((void *)(y + j), b);
        else _mm512_mask_storeu_epi8(y + j, ((__mmask64)1 << (len - j)) - 1, b);
    }
}

// C bytes, C a multiple of 16 (tail: the mask of the bytes past the last 64)
QL_AVX512 static inline void copy_pixel(uint8_t *d, const uint8_t *x, int64_t C, __mmask64 tail) {
    int64_t b = 0;
    for (; b + 64 <= C; b += 64) _mm512_storeu_si512((void *)(d + b), _mm512_loadu_si512((const void *)(x + b)));
    if (b < C) _mm512_mask_storeu_epi8(d + b, tail, _mm512_maskz_loadu_epi8(tail, x + b));
}

/* Pads input row xr into a slot: stride 1, x_zero | row | x_zero; stride 2,
 * the even pixels of that padded row, then (at half) the odd ones. */
QL_AVX512 static void fill(const ql_conv2d_shape *s, const uint8_t *xr, uint8_t zero, int64_t half,
                           uint8_t *dst) {
    const int64_t C = s->c, W = s->w, pw = s->pw;
    if (s->sw == 1) {
        memset(dst, zero, (size_t)(pw * C));
        memcpy(dst + pw * C, xr, (size_t)(W * C));
        memset(dst + (pw + W) * C, zero, (size_t)(pw * C + 64));
        return;
    }
    const __mmask64 tail = C % 64 ? ((__mmask64)1 << (C % 64)) - 1 : 0;
    for (int64_t q = 0; q < W + 2 * pw; q++) {   /* padded pixel q -> plane q % 2, index q / 2 */
        uint8_t *o = dst + (q % 2) * half + q / 2 * C;
        const int64_t iw = q - pw;
        if (iw < 0 || iw >= W) memset(o, zero, (size_t)C);
        else copy_pixel(o, xr + iw * C, C, tail);
    }
}

/* Output rows [t0, t1) of the batch (task = n * OH + oh), u8 out. Each
 * thread pads the input rows it reads into a ring of three (x_zero at the
 * sides, a row of x_zero above and below the image), so consecutive output
 * rows pad one (stride 1) or two (stride 2) new input rows each. */
QL_AVX512 void ql_qdw3_rows_avx512(const ql_qdw3 *k, const ql_qdw_args *d, const uint8_t *x, int64_t t0,
                                   int64_t t1, uint8_t *y) {
    const ql_conv2d_shape *s = d->s;
    const int64_t C = s->c, rowb = (int64_t)s->w * C, len = (int64_t)s->ow * C;
    const int64_t half = (s->w + 2 * s->pw + 1) / 2 * C + 64;   /* stride 2: the odd plane's offset */
    _Alignas(64) uint8_t ring[3][ROW_BYTES], zrow[ROW_BYTES];
    int64_t key[3] = {-1, -1, -1};   /* n * H + ih of the row each slot holds */
    int next = 0;
    memset(zrow, d->x_zero, (size_t)row_bytes(s));
    for (int64_t t = t0; t < t1; t++) {
        const int64_t n = t / s->oh;
        const int oh = (int)(t % s->oh);
        const uint8_t *tb[9];
        for (int ki = 0; ki < 3; ki++) {
            const int ih = oh * s->sh - s->ph + ki;
            const uint8_t *r = zrow;
            if (ih >= 0 && ih < s->h) {
                const int64_t want = n * s->h + ih;
                int slot = key[0] == want ? 0 : key[1] == want ? 1 : key[2] == want ? 2 : -1;
                if (slot < 0) {
                    /* the oldest slot: rows come in order, so never one this output row still reads */
                    slot = next;
                    next = (next + 1) % 3;
                    fill(s, x + want * rowb, (uint8_t)d->x_zero, half, ring[slot]);
                    key[slot] = want;
                }
                r = ring[slot];
            }
            if (s->sw == 1) { tb[3 * ki] = r; tb[3 * ki + 1] = r + C; tb[3 * ki + 2] = r + 2 * C; }
            else { tb[3 * ki] = r; tb[3 * ki + 1] = r + half; tb[3 * ki + 2] = r + C; }
        }
        row(k, d, tb, len, y + t * len);
    }
}
