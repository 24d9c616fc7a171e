/* conv2d, NHWC: im2col + cblas_sgemm, processed in chunks of output rows so
 * the im2col buffer stays bounded whatever the batch. A "row" is one output
 * pixel (n,oh,ow); rows of consecutive images are contiguous in y, so chunks
 * may straddle images. Within a group, im2col columns are ordered (kh,kw,c),
 * which is exactly the OHWI weight row of one output channel. */
#include <cblas.h>
#include <limits.h>
#include <string.h>
#include "ops/ops_internal.h"

#define WS_BUDGET (1 << 20)   /* im2col floats per chunk (4 MB) */
#define MIN_CHUNK_ROWS 64

static int is_depthwise(const ql_conv2d_shape *s) {
    return s->groups == s->c && s->oc == s->c;
}

static int is_pointwise(const ql_conv2d_shape *s) {
    return s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 && s->pw == 0;
}

ql_status ql_conv2d_shape_init(ql_conv2d_shape *s) {
    if (s->n < 0 || s->h <= 0 || s->w <= 0 || s->c <= 0)
        return ql_error(QL_ESHAPE, "conv2d: bad input shape (N,H,W,C) = (%d,%d,%d,%d)",
                        s->n, s->h, s->w, s->c);
    if (s->oc <= 0 || s->kh <= 0 || s->kw <= 0)
        return ql_error(QL_ESHAPE, "conv2d: bad out_channels %d or kernel %dx%d", s->oc, s->kh, s->kw);
    if (s->sh <= 0 || s->sw <= 0 || s->dh <= 0 || s->dw <= 0)
        return ql_error(QL_EINVAL, "conv2d: stride (%d,%d) and dilation (%d,%d) must be positive",
                        s->sh, s->sw, s->dh, s->dw);
    if (s->ph < 0 || s->pw < 0)
        return ql_error(QL_EINVAL, "conv2d: negative padding (%d,%d)", s->ph, s->pw);
    if (s->groups <= 0 || s->c % s->groups || s->oc % s->groups)
        return ql_error(QL_ESHAPE, "conv2d: groups %d must divide in_channels %d and out_channels %d",
                        s->groups, s->c, s->oc);
    int64_t ekh = (int64_t)s->dh * (s->kh - 1) + 1, ekw = (int64_t)s->dw * (s->kw - 1) + 1;
    int64_t ph2 = (int64_t)s->h + 2 * (int64_t)s->ph, pw2 = (int64_t)s->w + 2 * (int64_t)s->pw;
    if (ekh > ph2 || ekw > pw2)
        return ql_error(QL_ESHAPE, "conv2d: kernel %dx%d (dilation %d,%d) larger than padded input %lldx%lld",
                        s->kh, s->kw, s->dh, s->dw, (long long)ph2, (long long)pw2);
    int64_t oh = (ph2 - ekh) / s->sh + 1, ow = (pw2 - ekw) / s->sw + 1;
    int64_t k = (int64_t)s->kh * s->kw * (s->c / s->groups);
    if (oh > INT_MAX || ow > INT_MAX || k > INT_MAX / 4 ||
        (int64_t)s->n * s->h * s->w > INT_MAX || (int64_t)s->n * oh * ow > INT_MAX)
        return ql_error(QL_ESHAPE, "conv2d: shape too large");
    s->oh = (int)oh;
    s->ow = (int)ow;
    return QL_OK;
}

static int64_t kgroup(const ql_conv2d_shape *s) {
    return (int64_t)s->kh * s->kw * (s->c / s->groups);
}

static int64_t chunk_rows(const ql_conv2d_shape *s) {
    int64_t total = (int64_t)s->n * s->oh * s->ow, r = WS_BUDGET / kgroup(s);
    if (r < MIN_CHUNK_ROWS) r = MIN_CHUNK_ROWS;
    return r < total ? r : total;
}

size_t ql_conv2d_workspace(const ql_conv2d_shape *s) {
    if (is_depthwise(s)) return 2 * (size_t)s->kh * s->kw * s->c;
    if (is_pointwise(s)) return 0;
    return (size_t)(chunk_rows(s) * kgroup(s));
}

// x (N,H,W,C), group g, rows r0 + [i0, i1) -> cols rows [i0, i1) of (nr, KH*KW*Cg)
static void im2col_rows(const ql_conv2d_shape *s, const float *x, int g, int64_t r0, int64_t i0,
                        int64_t i1, float *cols) {
    const int cg = s->c / s->groups;
    const int64_t kg = kgroup(s);
    for (int64_t i = i0; i < i1; i++) {
        int64_t r = r0 + i;
        int ow = (int)(r % s->ow), oh = (int)(r / s->ow % s->oh);
        int64_t n = r / ((int64_t)s->ow * s->oh);
        float *dst = cols + i * kg;
        for (int ki = 0; ki < s->kh; ki++) {
            int ih = oh * s->sh - s->ph + ki * s->dh;
            if (ih < 0 || ih >= s->h) {
                memset(dst, 0, sizeof(float) * s->kw * cg);
                dst += s->kw * cg;
                continue;
            }
            const float *xrow = x + ((n * s->h + ih) * s->w) * s->c + (int64_t)g * cg;
            int iw0 = ow * s->sw - s->pw;
            if (s->groups == 1 && s->dw == 1 && iw0 >= 0 && iw0 + s->kw <= s->w) {
                // the kernel row reads adjacent whole pixels: one copy
                memcpy(dst, xrow + (int64_t)iw0 * s->c, sizeof(float) * s->kw * cg);
                dst += s->kw * cg;
                continue;
            }
            for (int kj = 0; kj < s->kw; kj++, dst += cg) {
                int iw = ow * s->sw - s->pw + kj * s->dw;
                if (iw < 0 || iw >= s->w) memset(dst, 0, sizeof(float) * cg);
                else if (cg == 1) dst[0] = xrow[(int64_t)iw * s->c];
                else memcpy(dst, xrow + (int64_t)iw * s->c, sizeof(float) * cg);
            }
        }
    }
}

// x (N,H,W,C), group g, rows [r0, r0+nr) -> cols (nr, KH*KW*Cg)
static void im2col(const ql_conv2d_shape *s, const float *x, int g, int64_t r0, int64_t nr,
                   float *cols) {
    if (!ql_ops_parallel(nr * kgroup(s), QL_OPS_PAR_WORK)) { im2col_rows(s, x, g, r0, 0, nr, cols); return; }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(nr, 1, &lo, &hi);
        im2col_rows(s, x, g, r0, lo, hi, cols);
    }
}

// dx (N,H,W,C) group g += scatter of dcols (nr, KH*KW*Cg) for rows [r0, r0+nr),
// input rows (n_lo + t / H, t % H) for tasks t in [t0, t1). Written as a gather
// over input pixels so threads never write the same place.
static void col2im_add_tasks(const ql_conv2d_shape *s, const float *dcols, int g, int64_t r0,
                             int64_t nr, int64_t t0, int64_t t1, float *dx) {
    const int cg = s->c / s->groups;
    const int64_t kg = kgroup(s), ohw = (int64_t)s->oh * s->ow, r1 = r0 + nr, n_lo = r0 / ohw;
    for (int64_t task = t0; task < t1; task++) {
        int64_t n = n_lo + task / s->h;
        int ih = (int)(task % s->h);
        // output rows of image n covered by this chunk -> useful input rows
        int64_t plo = r0 - n * ohw, phi = r1 - 1 - n * ohw;
        if (plo < 0) plo = 0;
        if (phi > ohw - 1) phi = ohw - 1;
        int64_t oh_lo = plo / s->ow, oh_hi = phi / s->ow;
        if (ih < oh_lo * s->sh - s->ph || ih > oh_hi * s->sh - s->ph + (int64_t)(s->kh - 1) * s->dh)
            continue;
        for (int iw = 0; iw < s->w; iw++) {
            float *d = dx + ((n * s->h + ih) * s->w + iw) * s->c + (int64_t)g * cg;
            for (int ki = 0; ki < s->kh; ki++) {
                int th = ih + s->ph - ki * s->dh;
                if (th < 0) break;
                if (th % s->sh || th / s->sh >= s->oh) continue;
                for (int kj = 0; kj < s->kw; kj++) {
                    int tw = iw + s->pw - kj * s->dw;
                    if (tw < 0) break;
                    if (tw % s->sw || tw / s->sw >= s->ow) continue;
                    int64_t r = (n * s->oh + th / s->sh) * s->ow + tw / s->sw;
                    if (r < r0 || r >= r1) continue;
                    const float *src = dcols + (r - r0) * kg + (int64_t)(ki * s->kw + kj) * cg;
                    #pragma omp simd
                    for (int c = 0; c < cg; c++) d[c] += src[c];
                }
            }
        }
    }
}

static void col2im_add(const ql_conv2d_shape *s, const float *dcols, int g, int64_t r0,
                       int64_t nr, float *dx) {
    const int64_t ohw = (int64_t)s->oh * s->ow, r1 = r0 + nr;
    const int64_t tasks = ((r1 - 1) / ohw - r0 / ohw + 1) * s->h;
    if (!ql_ops_parallel(nr * kgroup(s), QL_OPS_PAR_WORK)) {
        col2im_add_tasks(s, dcols, g, r0, nr, 0, tasks, dx);
        return;
    }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(tasks, 1, &lo, &hi);
        col2im_add_tasks(s, dcols, g, r0, nr, lo, hi, dx);
    }
}

void ql_conv2d_forward(const ql_conv2d_shape *s, const float *x, const float *w,
                       const float *b, float *y, float *ws) {
    if (is_depthwise(s)) { ql_conv2d_dw_forward(s, x, w, b, y, ws); return; }
    const int cg = s->c / s->groups, ocg = s->oc / s->groups;
    const int64_t kg = kgroup(s), total = (int64_t)s->n * s->oh * s->ow;
    if (total == 0) return;
    if (is_pointwise(s)) {
        // y_g (M,OCg) = x_g (M,Cg) w_g^T
        for (int g = 0; g < s->groups; g++)
            ql_ops_gemm_nt(total, ocg, cg, x + (int64_t)g * cg, s->c, w + (int64_t)g * ocg * cg, cg,
                           y + (int64_t)g * ocg, s->oc);
        if (b) ql_ops_add_rows(total, s->oc, b, y, s->oc);
        return;
    }
    const int64_t rows = chunk_rows(s);
    for (int64_t r0 = 0; r0 < total; r0 += rows) {
        int64_t nr = total - r0 < rows ? total - r0 : rows;
        float *yc = y + r0 * s->oc;
        for (int g = 0; g < s->groups; g++) {
            im2col(s, x, g, r0, nr, ws);
            // y_g (nr,OCg) = cols (nr,Kg) w_g^T, w_g (OCg,Kg)
            ql_ops_gemm_nt(nr, ocg, (int)kg, ws, (int)kg, w + (int64_t)g * ocg * kg, (int)kg,
                           yc + (int64_t)g * ocg, s->oc);
        }
        if (b) ql_ops_add_rows(nr, s->oc, b, yc, s->oc);
    }
}

void ql_conv2d_backward(const ql_conv2d_shape *s, const float *x, const float *w,
                        const float *dy, float *dx, float *dw, float *db, float *ws) {
    if (is_depthwise(s)) { ql_conv2d_dw_backward(s, x, w, dy, dx, dw, db, ws); return; }
    const int cg = s->c / s->groups, ocg = s->oc / s->groups;
    const int64_t kg = kgroup(s), total = (int64_t)s->n * s->oh * s->ow;
    if (dx) memset(dx, 0, sizeof(float) * (size_t)s->n * s->h * s->w * s->c);
    if (total == 0) return;
    if (db) ql_ops_colsum_add(total, s->oc, dy, s->oc, db);
    if (is_pointwise(s)) {
        for (int g = 0; g < s->groups; g++) {
            const float *dyg = dy + (int64_t)g * ocg, *wg = w + (int64_t)g * ocg * cg;
            if (dw)  // dw_g (OCg,Cg) += dy_g^T x_g
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ocg, cg, (int)total, 1.0f,
                            dyg, s->oc, x + (int64_t)g * cg, s->c, 1.0f,
                            dw + (int64_t)g * ocg * cg, cg);
            if (dx)  // dx_g (M,Cg) = dy_g w_g
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)total, cg, ocg, 1.0f,
                            dyg, s->oc, wg, cg, 0.0f, dx + (int64_t)g * cg, s->c);
        }
        return;
    }
    if (!dx && !dw) return;
    const int64_t rows = chunk_rows(s);
    for (int64_t r0 = 0; r0 < total; r0 += rows) {
        int64_t nr = total - r0 < rows ? total - r0 : rows;
        for (int g = 0; g < s->groups; g++) {
            const float *dyg = dy + r0 * s->oc + (int64_t)g * ocg, *wg = w + (int64_t)g * ocg * kg;
            if (dw) {  // dw_g (OCg,Kg) += dy_g^T (OCg,nr) cols (nr,Kg)
                im2col(s, x, g, r0, nr, ws);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ocg, (int)kg, (int)nr, 1.0f,
                            dyg, s->oc, ws, (int)kg, 1.0f, dw + (int64_t)g * ocg * kg, (int)kg);
            }
            if (dx) {  // dcols (nr,Kg) = dy_g (nr,OCg) w_g (OCg,Kg), then scatter-add
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)kg, ocg, 1.0f,
                            dyg, s->oc, wg, (int)kg, 0.0f, ws, (int)kg);
                col2im_add(s, ws, g, r0, nr, dx);
            }
        }
    }
}

// OIHW (OC,IC,KH,KW) -> OHWI (OC,KH,KW,IC)
void ql_conv_weight_oihw_to_ohwi(const float *src, float *dst, int oc, int ic, int kh, int kw) {
    int64_t hw = (int64_t)kh * kw;
    for (int64_t o = 0; o < oc; o++)
        for (int64_t i = 0; i < ic; i++)
            for (int64_t p = 0; p < hw; p++)
                dst[(o * hw + p) * ic + i] = src[(o * ic + i) * hw + p];
}

// OHWI (OC,KH,KW,IC) -> OIHW (OC,IC,KH,KW)
void ql_conv_weight_ohwi_to_oihw(const float *src, float *dst, int oc, int ic, int kh, int kw) {
    int64_t hw = (int64_t)kh * kw;
    for (int64_t o = 0; o < oc; o++)
        for (int64_t i = 0; i < ic; i++)
            for (int64_t p = 0; p < hw; p++)
                dst[(o * ic + i) * hw + p] = src[(o * hw + p) * ic + i];
}
