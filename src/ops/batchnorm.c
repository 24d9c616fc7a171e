/* BatchNorm2d on x viewed as (M,C), M = N*H*W (NHWC). Channels are handled in
 * blocks of up to QL_OPS_COLS (most layers fit in one), so each pass streams
 * whole rows, vectorised over the channels (AVX2 twins, ops_internal.h).
 * Training forward reads x twice: once for the statistics, once for y. The
 * statistics are the sums of d = x - k and d^2 (ql_ops_col_sums: float
 * partial sums, then double), with k a per-channel shift sampled from x so
 * that var = mean(d^2) - mean(d)^2 does not cancel. Backward reads x and dy
 * once for sum(dy) and sum(dy (x - mean)), then once more for dx. */
#include <math.h>
#include <string.h>
#include "ops/ops_internal.h"

#define CBLK QL_OPS_COLS

// rows [r0, r1): y = x * scale + shift over nb channels, row stride c
QL_OPS_INLINE void affine_rows(int64_t r0, int64_t r1, int c, int nb, const float *x,
                               const float *scale, const float *shift, float *y) {
    for (int64_t i = r0; i < r1; i++) {
        const float *xr = x + i * c;
        float *yr = y + i * c;
        #pragma omp simd
        for (int j = 0; j < nb; j++) yr[j] = xr[j] * scale[j] + shift[j];
    }
}

static void affine_generic(int64_t r0, int64_t r1, int c, int nb, const float *x,
                           const float *scale, const float *shift, float *y) {
    affine_rows(r0, r1, c, nb, x, scale, shift, y);
}

QL_OPS_AVX2 static void affine_avx2(int64_t r0, int64_t r1, int c, int nb, const float *x,
                                    const float *scale, const float *shift, float *y) {
    affine_rows(r0, r1, c, nb, x, scale, shift, y);
}

// y[:, c0:c0+nb] = x * scale + shift
static void block_affine(int64_t m, int c, int c0, int nb, const float *x, const float *scale,
                         const float *shift, float *y) {
    void (*rows)(int64_t, int64_t, int, int, const float *, const float *, const float *, float *) =
        ql_ops_use_avx2() ? affine_avx2 : affine_generic;
    if (!ql_ops_parallel(m * nb, QL_OPS_PAR_ELEMS)) {
        rows(0, m, c, nb, x + c0, scale, shift, y + c0);
        return;
    }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(m, 16, &lo, &hi);
        rows(lo, hi, c, nb, x + c0, scale, shift, y + c0);
    }
}

// rows [r0, r1): dx = a*dy + b*x + d over nb channels, row stride c
QL_OPS_INLINE void bwd_rows(int64_t r0, int64_t r1, int c, int nb, const float *x, const float *dy,
                            const float *a, const float *b, const float *d, float *dx) {
    for (int64_t i = r0; i < r1; i++) {
        const float *xr = x + i * c, *gr = dy + i * c;
        float *o = dx + i * c;
        #pragma omp simd
        for (int j = 0; j < nb; j++) o[j] = a[j] * gr[j] + b[j] * xr[j] + d[j];
    }
}

static void bwd_generic(int64_t r0, int64_t r1, int c, int nb, const float *x, const float *dy,
                        const float *a, const float *b, const float *d, float *dx) {
    bwd_rows(r0, r1, c, nb, x, dy, a, b, d, dx);
}

QL_OPS_AVX2 static void bwd_avx2(int64_t r0, int64_t r1, int c, int nb, const float *x,
                                 const float *dy, const float *a, const float *b, const float *d,
                                 float *dx) {
    bwd_rows(r0, r1, c, nb, x, dy, a, b, d, dx);
}

// dx[:, c0:c0+nb] = a*dy + b*x + d
static void block_bwd(int64_t m, int c, int c0, int nb, const float *x, const float *dy,
                      const float *a, const float *b, const float *d, float *dx) {
    void (*rows)(int64_t, int64_t, int, int, const float *, const float *, const float *,
                 const float *, const float *, float *) = ql_ops_use_avx2() ? bwd_avx2 : bwd_generic;
    if (!ql_ops_parallel(m * nb, QL_OPS_PAR_ELEMS)) {
        rows(0, m, c, nb, x + c0, dy + c0, a, b, d, dx + c0);
        return;
    }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(m, 16, &lo, &hi);
        rows(lo, hi, c, nb, x + c0, dy + c0, a, b, d, dx + c0);
    }
}

// x (M,C) -> y (M,C) with running statistics
void ql_batchnorm_forward_eval(int64_t m, int c, const float *x, const float *gamma,
                               const float *beta, const float *rmean, const float *rvar,
                               float eps, float *y) {
    for (int c0 = 0; c0 < c; c0 += CBLK) {
        int nb = c - c0 < CBLK ? c - c0 : CBLK;
        float scale[CBLK], shift[CBLK];
        for (int j = 0; j < nb; j++) {
            float inv = 1.0f / sqrtf(rvar[c0 + j] + eps);
            scale[j] = (gamma ? gamma[c0 + j] : 1.0f) * inv;
            shift[j] = (beta ? beta[c0 + j] : 0.0f) - rmean[c0 + j] * scale[j];
        }
        block_affine(m, c, c0, nb, x, scale, shift, y);
    }
}

// k (nb) = mean of up to 64 rows of x[:, c0:c0+nb] spread over the M rows
static void sample_shift(int64_t m, int c, int c0, int nb, const float *x, float *k) {
    double acc[CBLK] = {0};
    int64_t ns = m < 64 ? m : 64;
    for (int64_t t = 0; t < ns; t++) {
        const float *xr = x + (t * m / ns) * c + c0;
        for (int j = 0; j < nb; j++) acc[j] += xr[j];
    }
    for (int j = 0; j < nb; j++) k[j] = ns ? (float)(acc[j] / ns) : 0.0f;
}

// x (M,C) -> y (M,C) with batch statistics; rmean/rvar (C) updated (NULL skips)
void ql_batchnorm_forward_train(int64_t m, int c, const float *x, const float *gamma,
                                const float *beta, float *rmean, float *rvar, float eps,
                                float momentum, float *y, float *save_mean, float *save_invstd) {
    for (int c0 = 0; c0 < c; c0 += CBLK) {
        int nb = c - c0 < CBLK ? c - c0 : CBLK;
        double s1[CBLK], s2[CBLK];
        float k[CBLK], scale[CBLK], shift[CBLK];
        sample_shift(m, c, c0, nb, x, k);
        ql_ops_col_sums(m, nb, c, x + c0, NULL, k, s1, s2);
        for (int j = 0; j < nb; j++) {
            double md = m ? s1[j] / m : 0.0, mean = k[j] + md;
            double v = m ? s2[j] / m - md * md : 0.0;
            if (v < 0) v = 0;
            double inv = 1.0 / sqrt(v + eps);
            int ch = c0 + j;
            if (save_mean) save_mean[ch] = (float)mean;
            if (save_invstd) save_invstd[ch] = (float)inv;
            if (rmean) rmean[ch] = (float)((1.0 - momentum) * rmean[ch] + momentum * mean);
            if (rvar) {
                double unbiased = m > 1 ? v * m / (m - 1) : v;
                rvar[ch] = (float)((1.0 - momentum) * rvar[ch] + momentum * unbiased);
            }
            scale[j] = (float)((gamma ? gamma[ch] : 1.0f) * inv);
            shift[j] = (float)((beta ? beta[ch] : 0.0f) - mean * scale[j]);
        }
        block_affine(m, c, c0, nb, x, scale, shift, y);
    }
}

// dx = gamma*invstd/M * (M dy - sum dy - xhat sum(dy xhat)), xhat = (x-mean)*invstd
void ql_batchnorm_backward_train(int64_t m, int c, const float *x, const float *gamma,
                                 const float *save_mean, const float *save_invstd,
                                 const float *dy, float *dx, float *dgamma, float *dbeta) {
    for (int c0 = 0; c0 < c; c0 += CBLK) {
        int nb = c - c0 < CBLK ? c - c0 : CBLK;
        double sdy[CBLK], sdyx[CBLK];
        ql_ops_col_sums(m, nb, c, x + c0, dy + c0, save_mean + c0, sdy, sdyx);
        float a[CBLK], b[CBLK], d[CBLK];   // dx = a*dy + b*x + d
        for (int j = 0; j < nb; j++) {
            int k = c0 + j;
            double inv = save_invstd[k], g = gamma ? gamma[k] : 1.0, mean = save_mean[k];
            if (dbeta) dbeta[k] += (float)sdy[j];
            if (dgamma) dgamma[k] += (float)(sdyx[j] * inv);
            double mdy = m ? sdy[j] / m : 0.0, mdyx = m ? sdyx[j] * inv * inv / m : 0.0;
            // dx = g*inv*(dy - mdy - (x-mean)*mdyx)
            a[j] = (float)(g * inv);
            b[j] = (float)(-g * inv * mdyx);
            d[j] = (float)(g * inv * (-mdy + mean * mdyx));
        }
        if (dx) block_bwd(m, c, c0, nb, x, dy, a, b, d, dx);
    }
}

// frozen statistics: y = x*scale + shift is affine, so dx = dy*scale
void ql_batchnorm_backward_eval(int64_t m, int c, const float *x, const float *gamma,
                                const float *rmean, const float *rvar, float eps,
                                const float *dy, float *dx, float *dgamma, float *dbeta) {
    for (int c0 = 0; c0 < c; c0 += CBLK) {
        int nb = c - c0 < CBLK ? c - c0 : CBLK;
        float inv[CBLK], scale[CBLK], zero[CBLK] = {0};
        double sdy[CBLK], sdyx[CBLK];
        for (int j = 0; j < nb; j++) {
            inv[j] = 1.0f / sqrtf(rvar[c0 + j] + eps);
            scale[j] = (gamma ? gamma[c0 + j] : 1.0f) * inv[j];
        }
        if (dgamma || dbeta) {
            ql_ops_col_sums(m, nb, c, x + c0, dy + c0, rmean + c0, sdy, sdyx);
            for (int j = 0; j < nb; j++) {
                if (dbeta) dbeta[c0 + j] += (float)sdy[j];
                if (dgamma) dgamma[c0 + j] += (float)(sdyx[j] * inv[j]);
            }
        }
        if (dx) block_affine(m, c, c0, nb, dy, scale, zero, dx);
    }
}

void ql_batchnorm_fold(int oc, int64_t per, const float *w, const float *b, const float *gamma,
                       const float *beta, const float *mean, const float *var, float eps,
                       float *wout, float *bout) {
    for (int o = 0; o < oc; o++) {
        float k = gamma[o] / sqrtf(var[o] + eps);
        for (int64_t e = 0; e < per; e++) wout[o * per + e] = w[o * per + e] * k;
        bout[o] = ((b ? b[o] : 0.0f) - mean[o]) * k + beta[o];
    }
}
