/* BatchNorm2d on x viewed as (M,C), M = N*H*W (NHWC). Channels are handled in
 * blocks of CBLK; rows are split across threads with per-thread partial sums
 * (in double) merged at the end, so no per-call allocation is needed. */
#include <math.h>
#include <string.h>
#include "qlab/ops.h"

#define CBLK 64

// sum over rows of x[:, c0:c0+nb] - shift (when p == 1) or (x - shift)^2 (p == 2)
static void block_sums(int64_t m, int c, int c0, int nb, const float *x, const double *shift,
                       int p, double *out) {
    memset(out, 0, sizeof(double) * nb);
    #pragma omp parallel if (m * nb > (1 << 15))
    {
        double acc[CBLK] = {0};
        #pragma omp for schedule(static) nowait
        for (int64_t i = 0; i < m; i++) {
            const float *row = x + i * c + c0;
            if (p == 1) for (int j = 0; j < nb; j++) acc[j] += row[j] - shift[j];
            else for (int j = 0; j < nb; j++) { double d = row[j] - shift[j]; acc[j] += d * d; }
        }
        #pragma omp critical
        for (int j = 0; j < nb; j++) out[j] += acc[j];
    }
}

// sums of dy and dy * (x - mean) over rows, for channels c0..c0+nb
static void block_grad_sums(int64_t m, int c, int c0, int nb, const float *x, const float *dy,
                            const double *mean, double *sdy, double *sdyx) {
    memset(sdy, 0, sizeof(double) * nb);
    memset(sdyx, 0, sizeof(double) * nb);
    #pragma omp parallel if (m * nb > (1 << 15))
    {
        double a[CBLK] = {0}, b[CBLK] = {0};
        #pragma omp for schedule(static) nowait
        for (int64_t i = 0; i < m; i++) {
            const float *xr = x + i * c + c0, *gr = dy + i * c + c0;
            for (int j = 0; j < nb; j++) { a[j] += gr[j]; b[j] += gr[j] * (xr[j] - mean[j]); }
        }
        #pragma omp critical
        for (int j = 0; j < nb; j++) { sdy[j] += a[j]; sdyx[j] += b[j]; }
    }
}

// y[:, c0:c0+nb] = x * scale + shift
static void block_affine(int64_t m, int c, int c0, int nb, const float *x, const float *scale,
                         const float *shift, float *y) {
    #pragma omp parallel for schedule(static) if (m * nb > (1 << 15))
    for (int64_t i = 0; i < m; i++) {
        const float *xr = x + i * c + c0;
        float *yr = y + i * c + c0;
        for (int j = 0; j < nb; j++) yr[j] = xr[j] * scale[j] + shift[j];
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

// x (M,C) -> y (M,C) with batch statistics; rmean/rvar (C) updated (NULL skips)
void ql_batchnorm_forward_train(int64_t m, int c, const float *x, const float *gamma,
                                const float *beta, float *rmean, float *rvar, float eps,
                                float momentum, float *y, float *save_mean, float *save_invstd) {
    for (int c0 = 0; c0 < c; c0 += CBLK) {
        int nb = c - c0 < CBLK ? c - c0 : CBLK;
        double zero[CBLK] = {0}, mean[CBLK], var[CBLK];
        float scale[CBLK], shift[CBLK];
        block_sums(m, c, c0, nb, x, zero, 1, mean);              // two passes: stable variance
        for (int j = 0; j < nb; j++) mean[j] = m ? mean[j] / m : 0.0;
        block_sums(m, c, c0, nb, x, mean, 2, var);
        for (int j = 0; j < nb; j++) {
            double v = m ? var[j] / m : 0.0, inv = 1.0 / sqrt(v + eps);
            int k = c0 + j;
            if (save_mean) save_mean[k] = (float)mean[j];
            if (save_invstd) save_invstd[k] = (float)inv;
            if (rmean) rmean[k] = (float)((1.0 - momentum) * rmean[k] + momentum * mean[j]);
            if (rvar) {
                double unbiased = m > 1 ? var[j] / (m - 1) : v;
                rvar[k] = (float)((1.0 - momentum) * rvar[k] + momentum * unbiased);
            }
            scale[j] = (float)((gamma ? gamma[k] : 1.0f) * inv);
            shift[j] = (float)((beta ? beta[k] : 0.0f) - mean[j] * scale[j]);
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
        double mean[CBLK], sdy[CBLK], sdyx[CBLK];
        for (int j = 0; j < nb; j++) mean[j] = save_mean[c0 + j];
        block_grad_sums(m, c, c0, nb, x, dy, mean, sdy, sdyx);
        float a[CBLK], b[CBLK], d[CBLK];   // dx = a*dy + b*x + d
        for (int j = 0; j < nb; j++) {
            int k = c0 + j;
            double inv = save_invstd[k], g = gamma ? gamma[k] : 1.0;
            if (dbeta) dbeta[k] += (float)sdy[j];
            if (dgamma) dgamma[k] += (float)(sdyx[j] * inv);
            double mdy = m ? sdy[j] / m : 0.0, mdyx = m ? sdyx[j] * inv * inv / m : 0.0;
            // dx = g*inv*(dy - mdy - (x-mean)*mdyx)
            a[j] = (float)(g * inv);
            b[j] = (float)(-g * inv * mdyx);
            d[j] = (float)(g * inv * (-mdy + mean[j] * mdyx));
        }
        if (!dx) continue;
        #pragma omp parallel for schedule(static) if (m * nb > (1 << 15))
        for (int64_t i = 0; i < m; i++) {
            const float *xr = x + i * c + c0, *gr = dy + i * c + c0;
            float *o = dx + i * c + c0;
            for (int j = 0; j < nb; j++) o[j] = a[j] * gr[j] + b[j] * xr[j] + d[j];
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
        double mean[CBLK], sdy[CBLK], sdyx[CBLK];
        for (int j = 0; j < nb; j++) {
            inv[j] = 1.0f / sqrtf(rvar[c0 + j] + eps);
            scale[j] = (gamma ? gamma[c0 + j] : 1.0f) * inv[j];
            mean[j] = rmean[c0 + j];
        }
        if (dgamma || dbeta) {
            block_grad_sums(m, c, c0, nb, x, dy, mean, sdy, sdyx);
            for (int j = 0; j < nb; j++) {
                if (dbeta) dbeta[c0 + j] += (float)sdy[j];
                if (dgamma) dgamma[c0 + j] += (float)(sdyx[j] * inv[j]);
            }
        }
        if (dx) block_affine(m, c, c0, nb, dy, scale, zero, dx);
    }
}
