/* BatchNorm2d on x viewed as (M,C), M = N*H*W (NHWC). Channels are handled in
 * blocks of up to CBLK, which covers every layer of our models in one block,
 * so each pass streams whole rows. Per-channel sums are vectorised over the
 * channels of a row: float partial sums over RBLK rows, added into double
 * sums per thread, and the threads' sums merged in thread order (the result
 * does not depend on timing). Training statistics take one pass over x:
 * sums of d = x - k and d^2 with k a per-channel shift sampled from x, so the
 * variance sum(d^2)/M - mean(d)^2 does not cancel (k is within a few
 * standard deviations of the mean). No allocation: block arrays are on the
 * stack. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "ops/ops_internal.h"

#define CBLK 512
#define RBLK 64

// rows [r0, r1) of an (M, nb) block with row stride c; with dy == NULL
// s1 += sum(x - k), s2 += sum((x - k)^2), else s1 += sum(dy), s2 += sum(dy (x - k))
static void sums_rows(int64_t r0, int64_t r1, int c, int nb, const float *x, const float *dy,
                      const float *k, double *s1, double *s2) {
    float f1[CBLK], f2[CBLK];
    for (int64_t i0 = r0; i0 < r1; i0 += RBLK) {
        int64_t i1 = r1 - i0 < RBLK ? r1 : i0 + RBLK;
        memset(f1, 0, sizeof(float) * nb);
        memset(f2, 0, sizeof(float) * nb);
        for (int64_t i = i0; i < i1; i++) {
            const float *xr = x + i * c;
            if (dy) {
                const float *gr = dy + i * c;
                #pragma omp simd
                for (int j = 0; j < nb; j++) { f1[j] += gr[j]; f2[j] += gr[j] * (xr[j] - k[j]); }
            } else {
                #pragma omp simd
                for (int j = 0; j < nb; j++) { float d = xr[j] - k[j]; f1[j] += d; f2[j] += d * d; }
            }
        }
        #pragma omp simd
        for (int j = 0; j < nb; j++) { s1[j] += f1[j]; s2[j] += f2[j]; }
    }
}

// the sums of sums_rows over all M rows of channels [c0, c0+nb), overwriting s1, s2
static void block_sums(int64_t m, int c, int c0, int nb, const float *x, const float *dy,
                       const float *k, double *s1, double *s2) {
    memset(s1, 0, sizeof(double) * nb);
    memset(s2, 0, sizeof(double) * nb);
    x += c0;
    if (dy) dy += c0;
    if (m <= RBLK || !ql_ops_parallel(m * nb, QL_OPS_PAR_WORK)) {
        sums_rows(0, m, c, nb, x, dy, k, s1, s2);
        return;
    }
    #pragma omp parallel
    {
        double p1[CBLK] = {0}, p2[CBLK] = {0};
        int64_t lo, hi;
        ql_ops_thread_range(m, RBLK, &lo, &hi);
        sums_rows(lo, hi, c, nb, x, dy, k, p1, p2);
        #pragma omp for ordered schedule(static, 1)
        for (int t = 0; t < omp_get_num_threads(); t++) {
            #pragma omp ordered
            for (int j = 0; j < nb; j++) { s1[j] += p1[j]; s2[j] += p2[j]; }
        }
    }
}

// rows [r0, r1): y[:, c0:c0+nb] = x * scale + shift
static void affine_rows(int64_t r0, int64_t r1, int c, int nb, const float *x, const float *scale,
                        const float *shift, float *y) {
    for (int64_t i = r0; i < r1; i++) {
        const float *xr = x + i * c;
        float *yr = y + i * c;
        #pragma omp simd
        for (int j = 0; j < nb; j++) yr[j] = xr[j] * scale[j] + shift[j];
    }
}

static void block_affine(int64_t m, int c, int c0, int nb, const float *x, const float *scale,
                         const float *shift, float *y) {
    if (!ql_ops_parallel(m * nb, QL_OPS_PAR_ELEMS)) {
        affine_rows(0, m, c, nb, x + c0, scale, shift, y + c0);
        return;
    }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(m, 16, &lo, &hi);
        affine_rows(lo, hi, c, nb, x + c0, scale, shift, y + c0);
    }
}

// rows [r0, r1): dx[:, c0:c0+nb] = a*dy + b*x + d
static void bwd_rows(int64_t r0, int64_t r1, int c, int nb, const float *x, const float *dy,
                     const float *a, const float *b, const float *d, float *dx) {
    for (int64_t i = r0; i < r1; i++) {
        const float *xr = x + i * c, *gr = dy + i * c;
        float *o = dx + i * c;
        #pragma omp simd
        for (int j = 0; j < nb; j++) o[j] = a[j] * gr[j] + b[j] * xr[j] + d[j];
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

// k (nb) = mean of up to 64 rows of x[:, c0:c0+nb] spread over M: the shift
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
        block_sums(m, c, c0, nb, x, NULL, k, s1, s2);
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
        block_sums(m, c, c0, nb, x, dy, save_mean + c0, sdy, sdyx);
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
        if (!dx) continue;
        if (!ql_ops_parallel(m * nb, QL_OPS_PAR_ELEMS)) {
            bwd_rows(0, m, c, nb, x + c0, dy + c0, a, b, d, dx + c0);
            continue;
        }
        #pragma omp parallel
        {
            int64_t lo, hi;
            ql_ops_thread_range(m, 16, &lo, &hi);
            bwd_rows(lo, hi, c, nb, x + c0, dy + c0, a, b, d, dx + c0);
        }
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
            block_sums(m, c, c0, nb, x, dy, rmean + c0, sdy, sdyx);
            for (int j = 0; j < nb; j++) {
                if (dbeta) dbeta[c0 + j] += (float)sdy[j];
                if (dgamma) dgamma[c0 + j] += (float)(sdyx[j] * inv[j]);
            }
        }
        if (dx) block_affine(m, c, c0, nb, dy, scale, zero, dx);
    }
}
