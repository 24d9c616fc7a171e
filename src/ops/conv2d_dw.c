/* Depthwise conv2d (groups == c == oc), direct NHWC kernels: the inner loops
 * run over contiguous channels, with the weight transposed once to
 * (KH,KW,C) in the workspace so it is contiguous along C too.
 *
 * Forward and input-gradient are the same gather: each output vector is
 * init + sum of a * b (x and w, or dy and w) over the pixel's taps, which
 * form a grid (the kernel rows and columns that land inside the image, or
 * for dy those that divide by the stride), taken in (ki, kj) order and
 * accumulated in registers over blocks of CB channels; full 3x3 grids are
 * unrolled. The weight gradient sums dy * x along each row of output pixels
 * per tap, threads owning disjoint channel ranges (no partial buffers, and
 * the result does not depend on the thread count).
 *
 * The row kernels have AVX2 twins (ops_internal.h), in which the CB-channel
 * accumulators live in two ymm registers. */
#include <string.h>
#include "ops/ops_internal.h"

#define CB 16   /* channels per register block */

// w (C,KH,KW,1) -> wt (KH*KW, C)
static void transpose_w(const ql_conv2d_shape *s, const float *w, float *wt) {
    int kk = s->kh * s->kw;
    for (int c = 0; c < s->c; c++)
        for (int p = 0; p < kk; p++) wt[(int64_t)p * s->c + c] = w[(int64_t)c * kk + p];
}

/* The taps of one pixel form a grid: rows r < nr and columns q < nq, tap
 * (r, q) reading a[r] + ao + q*as and b[r] + bo + q*bs (then + channel). */
typedef struct {
    int nr, nq;
    const float **a, **b;
    int64_t ao, as, bo, bs;
} tap_grid;

// out (C) = init (or 0) + sum over the taps, in (r, q) order, of a * b
QL_OPS_INLINE void taps_dot(int C, const tap_grid *t, const float *init, float *out) {
    const int64_t as = t->as, bs = t->bs;
    const int nr = t->nr, nq = t->nq;
    int c = 0;
    for (; c + CB <= C; c += CB) {
        float acc[CB];
        if (init) {
            #pragma omp simd
            for (int j = 0; j < CB; j++) acc[j] = init[c + j];
        } else {
            #pragma omp simd
            for (int j = 0; j < CB; j++) acc[j] = 0.0f;
        }
        for (int r = 0; r < nr; r++) {
            const float *a0 = t->a[r] + t->ao + c, *b0 = t->b[r] + t->bo + c;
            for (int q = 0; q < nq; q++, a0 += as, b0 += bs) {
                #pragma omp simd
                for (int j = 0; j < CB; j++) acc[j] += a0[j] * b0[j];
            }
        }
        #pragma omp simd
        for (int j = 0; j < CB; j++) out[c + j] = acc[j];
    }
    for (; c < C; c++) {
        float acc = init ? init[c] : 0.0f;
        for (int r = 0; r < t->nr; r++)
            for (int q = 0; q < t->nq; q++) acc += t->a[r][t->ao + q * as + c] * t->b[r][t->bo + q * bs + c];
        out[c] = acc;
    }
}

// the same for a full 3x3 grid (the interior of 3x3 convs): rows a0..a2, b0..b2
// already offset to column 0, column strides as and bs
QL_OPS_INLINE void taps_dot_3x3(int C, const float *a0, const float *a1, const float *a2,
                                int64_t as, const float *b0, const float *b1, const float *b2,
                                int64_t bs, const float *init, float *out) {
    const float *a[3] = {a0, a1, a2}, *b[3] = {b0, b1, b2};
    int c = 0;
    for (; c + CB <= C; c += CB) {
        float acc[CB];
        #pragma omp simd
        for (int j = 0; j < CB; j++) acc[j] = init ? init[c + j] : 0.0f;
        // fixed trip counts: unrolled into nine vector multiply-adds, in the reference's order
        #pragma GCC unroll 3
        for (int r = 0; r < 3; r++) {
            #pragma GCC unroll 3
            for (int q = 0; q < 3; q++) {
                const float *ap = a[r] + q * as + c, *bp = b[r] + q * bs + c;
                #pragma omp simd
                for (int j = 0; j < CB; j++) acc[j] += ap[j] * bp[j];
            }
        }
        #pragma omp simd
        for (int j = 0; j < CB; j++) out[c + j] = acc[j];
    }
    for (; c < C; c++) {
        float acc = init ? init[c] : 0.0f;
        for (int r = 0; r < 3; r++)
            for (int q = 0; q < 3; q++) acc += a[r][q * as + c] * b[r][q * bs + c];
        out[c] = acc;
    }
}

// output row (n, oh): y (OW,C) = b + sum over the taps inside the image of x * wt
QL_OPS_INLINE void fwd_row(const ql_conv2d_shape *s, const float *x, const float *wt,
                           const float *b, int64_t n, int oh, float *y) {
    const int C = s->c, dw = s->dw;
    const float *xr[s->kh], *wr[s->kh];
    tap_grid t = {0, 0, xr, wr, 0, (int64_t)dw * C, 0, C};
    for (int ki = 0; ki < s->kh; ki++) {   // rows inside the image
        int ih = oh * s->sh - s->ph + ki * s->dh;
        if (ih < 0 || ih >= s->h) continue;
        xr[t.nr] = x + (n * s->h + ih) * s->w * C;
        wr[t.nr++] = wt + (int64_t)ki * s->kw * C;
    }
    for (int ow = 0; ow < s->ow; ow++) {
        // columns kj in [k0, k1) with 0 <= iw0 + kj*dw < W
        int iw0 = ow * s->sw - s->pw, k0 = iw0 < 0 ? (-iw0 + dw - 1) / dw : 0;
        int k1 = s->w - iw0 <= 0 ? 0 : (s->w - iw0 + dw - 1) / dw;
        if (k1 > s->kw) k1 = s->kw;
        t.nq = k1 > k0 ? k1 - k0 : 0;
        t.ao = (int64_t)(iw0 + k0 * dw) * C;
        t.bo = (int64_t)k0 * C;
        if (t.nr == 3 && t.nq == 3)
            taps_dot_3x3(C, xr[0] + t.ao, xr[1] + t.ao, xr[2] + t.ao, t.as, wr[0] + t.bo, wr[1] + t.bo,
                         wr[2] + t.bo, t.bs, b, y + (int64_t)ow * C);
        else
            taps_dot(C, &t, b, y + (int64_t)ow * C);
    }
}

// input row (n, ih): dx (W,C) = sum over the output pixels that read it of dy * wt
QL_OPS_INLINE void bwd_input_row(const ql_conv2d_shape *s, const float *dy, const float *wt,
                                 int64_t n, int ih, float *dx) {
    const int C = s->c;
    const float *gr[s->kh], *wr[s->kh];
    tap_grid t = {0, 0, gr, wr, 0, 0, 0, 0};
    for (int ki = 0; ki < s->kh; ki++) {   // rows of dy that read input row ih
        int th = ih + s->ph - ki * s->dh;
        if (th < 0) break;
        if (th % s->sh || th / s->sh >= s->oh) continue;
        gr[t.nr] = dy + (n * s->oh + th / s->sh) * s->ow * C;
        wr[t.nr++] = wt + (int64_t)ki * s->kw * C;
    }
    for (int iw = 0; iw < s->w; iw++) {
        // tap kj reads dy column (iw + pw - kj*dw) / sw when that divides and is
        // inside; the valid kj are evenly spaced: k0, k0 + step, ...
        int k0 = -1, step = 0, nq = 0;
        for (int kj = 0; kj < s->kw; kj++) {
            int tw = iw + s->pw - kj * s->dw;
            if (tw < 0) break;
            if (tw % s->sw || tw / s->sw >= s->ow) continue;
            if (nq == 0) k0 = kj;
            else if (nq == 1) step = kj - k0;
            nq++;
        }
        t.nq = nq;
        if (nq) {
            t.ao = (int64_t)((iw + s->pw - k0 * s->dw) / s->sw) * C;
            t.as = -(int64_t)(step * s->dw / s->sw) * C;
            t.bo = (int64_t)k0 * C;
            t.bs = (int64_t)step * C;
        }
        if (t.nr == 3 && t.nq == 3)
            taps_dot_3x3(C, gr[0] + t.ao, gr[1] + t.ao, gr[2] + t.ao, t.as, wr[0] + t.bo, wr[1] + t.bo,
                         wr[2] + t.bo, t.bs, NULL, dx + (int64_t)iw * C);
        else
            taps_dot(C, &t, NULL, dx + (int64_t)iw * C);
    }
}

// dwt (KH*KW, C) channels [c0, c1) += sum over output row (n, oh) of dy * x, per tap
QL_OPS_INLINE void bwd_weight_row(const ql_conv2d_shape *s, const float *x, const float *dy,
                                  int64_t n, int oh, int c0, int c1, float *dwt) {
    const int C = s->c;
    const float *g = dy + (n * s->oh + oh) * s->ow * C;
    for (int ki = 0; ki < s->kh; ki++) {
        int ih = oh * s->sh - s->ph + ki * s->dh;
        if (ih < 0 || ih >= s->h) continue;
        const float *xr = x + (n * s->h + ih) * s->w * C;
        for (int kj = 0; kj < s->kw; kj++) {
            // output columns whose tap kj lands inside the image: 0 <= ow*sw - pw + kj*dw < W
            int off = kj * s->dw - s->pw, lim = s->w - off;   // ow*sw >= -off and ow*sw < lim
            int o0 = off < 0 ? (-off + s->sw - 1) / s->sw : 0;
            int o1 = lim <= 0 ? 0 : (lim + s->sw - 1) / s->sw;
            if (o1 > s->ow) o1 = s->ow;
            float *acc_out = dwt + (int64_t)(ki * s->kw + kj) * C;
            int c = c0;
            for (; c + CB <= c1; c += CB) {
                float acc[CB];
                #pragma omp simd
                for (int j = 0; j < CB; j++) acc[j] = 0.0f;
                for (int ow = o0; ow < o1; ow++) {
                    const float *gp = g + (int64_t)ow * C + c;
                    const float *xp = xr + ((int64_t)ow * s->sw + off) * C + c;
                    #pragma omp simd
                    for (int j = 0; j < CB; j++) acc[j] += gp[j] * xp[j];
                }
                #pragma omp simd
                for (int j = 0; j < CB; j++) acc_out[c + j] += acc[j];
            }
            for (; c < c1; c++) {
                float acc = 0.0f;
                for (int ow = o0; ow < o1; ow++)
                    acc += g[(int64_t)ow * C + c] * xr[((int64_t)ow * s->sw + off) * C + c];
                acc_out[c] += acc;
            }
        }
    }
}

/* The row kernels over a range of rows, generic and AVX2. */
typedef struct {
    const ql_conv2d_shape *s;
    const float *a, *b, *bias;   /* fwd: x, wt, bias; bwd input: dy, wt; bwd weight: x, dy */
    float *out;
} dw_args;

static void fwd_rows_generic(const dw_args *p, int64_t t0, int64_t t1) {
    const ql_conv2d_shape *s = p->s;
    for (int64_t t = t0; t < t1; t++)
        fwd_row(s, p->a, p->b, p->bias, t / s->oh, (int)(t % s->oh), p->out + t * s->ow * s->c);
}

QL_OPS_AVX2 static void fwd_rows_avx2(const dw_args *p, int64_t t0, int64_t t1) {
    const ql_conv2d_shape *s = p->s;
    for (int64_t t = t0; t < t1; t++)
        fwd_row(s, p->a, p->b, p->bias, t / s->oh, (int)(t % s->oh), p->out + t * s->ow * s->c);
}

static void bwd_input_rows_generic(const dw_args *p, int64_t t0, int64_t t1) {
    const ql_conv2d_shape *s = p->s;
    for (int64_t t = t0; t < t1; t++)
        bwd_input_row(s, p->a, p->b, t / s->h, (int)(t % s->h), p->out + t * s->w * s->c);
}

QL_OPS_AVX2 static void bwd_input_rows_avx2(const dw_args *p, int64_t t0, int64_t t1) {
    const ql_conv2d_shape *s = p->s;
    for (int64_t t = t0; t < t1; t++)
        bwd_input_row(s, p->a, p->b, t / s->h, (int)(t % s->h), p->out + t * s->w * s->c);
}

// all output rows, channels [c0, c1)
static void bwd_weight_generic(const dw_args *p, int64_t c0, int64_t c1) {
    const ql_conv2d_shape *s = p->s;
    for (int64_t t = 0; t < (int64_t)s->n * s->oh; t++)
        bwd_weight_row(s, p->a, p->b, t / s->oh, (int)(t % s->oh), (int)c0, (int)c1, p->out);
}

QL_OPS_AVX2 static void bwd_weight_avx2(const dw_args *p, int64_t c0, int64_t c1) {
    const ql_conv2d_shape *s = p->s;
    for (int64_t t = 0; t < (int64_t)s->n * s->oh; t++)
        bwd_weight_row(s, p->a, p->b, t / s->oh, (int)(t % s->oh), (int)c0, (int)c1, p->out);
}

typedef void (*dw_range_fn)(const dw_args *p, int64_t lo, int64_t hi);

// fn over [0, n) items, split across threads in multiples of align when work is large
static void run_range(dw_range_fn fn, const dw_args *p, int64_t n, int64_t align, int64_t work) {
    if (n <= align || !ql_ops_parallel(work, QL_OPS_PAR_WORK)) { fn(p, 0, n); return; }
    #pragma omp parallel
    {
        int64_t lo, hi;
        ql_ops_thread_range(n, align, &lo, &hi);
        if (lo < hi) fn(p, lo, hi);
    }
}

// x (N,H,W,C), w (C,KH,KW,1), b (C) or NULL -> y (N,OH,OW,C)
void ql_conv2d_dw_forward(const ql_conv2d_shape *s, const float *x, const float *w,
                          const float *b, float *y, float *ws) {
    float *wt = ws;
    transpose_w(s, w, wt);
    dw_args p = {s, x, wt, b, y};
    int64_t rows = (int64_t)s->n * s->oh, work = rows * s->ow * s->c * s->kh * s->kw;
    run_range(ql_ops_use_avx2() ? fwd_rows_avx2 : fwd_rows_generic, &p, rows, 1, work);
}

void ql_conv2d_dw_backward(const ql_conv2d_shape *s, const float *x, const float *w,
                           const float *dy, float *dx, float *dw, float *db, float *ws) {
    const int C = s->c, kk = s->kh * s->kw;
    const int64_t work = (int64_t)s->n * s->oh * s->ow * C * kk;
    float *wt = ws, *dwt = ws + (int64_t)kk * C;
    int avx = ql_ops_use_avx2();
    if (db) ql_ops_colsum_add((int64_t)s->n * s->oh * s->ow, C, dy, C, db);
    if (dx) {   // dx (N,H,W,C) = gather of dy * w over the taps that read each input pixel
        transpose_w(s, w, wt);
        dw_args p = {s, dy, wt, NULL, dx};
        run_range(avx ? bwd_input_rows_avx2 : bwd_input_rows_generic, &p, (int64_t)s->n * s->h, 1, work);
    }
    if (dw) {   // dwt (KH*KW, C) = sum over output pixels of dy * x, then added to dw transposed
        memset(dwt, 0, sizeof(float) * (size_t)kk * C);
        dw_args p = {s, x, dy, NULL, dwt};
        run_range(avx ? bwd_weight_avx2 : bwd_weight_generic, &p, C, CB, work);
        for (int c = 0; c < C; c++)
            for (int t = 0; t < kk; t++) dw[(int64_t)c * kk + t] += dwt[(int64_t)t * C + c];
    }
}
