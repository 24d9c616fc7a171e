/* Direct conv2d loops (NHWC activations, OIHW weights): the references the
 * fast conv kernels are tested against. */
#include <string.h>
#include "conv_ref.h"

// direct conv: x (N,H,W,C), w (OC,C/g,KH,KW) OIHW -> y (N,OH,OW,OC)
void conv_ref(const ql_conv2d_shape *s, const float *x, const float *w, const float *b,
                     float *y) {
    int cg = s->c / s->groups, ocg = s->oc / s->groups;
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int o = 0; o < s->oc; o++) {
                    double acc = b ? b[o] : 0;
                    int g = o / ocg;
                    for (int ci = 0; ci < cg; ci++)
                        for (int ki = 0; ki < s->kh; ki++)
                            for (int kj = 0; kj < s->kw; kj++) {
                                int ih = oh * s->sh - s->ph + ki * s->dh;
                                int iw = ow * s->sw - s->pw + kj * s->dw;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                                acc += (double)x[((n * s->h + ih) * s->w + iw) * s->c + g * cg + ci] *
                                       w[((o * cg + ci) * s->kh + ki) * s->kw + kj];
                            }
                    y[((n * s->oh + oh) * s->ow + ow) * s->oc + o] = (float)acc;
                }
}

// direct backward: dx overwritten, dw (OIHW) and db overwritten
void conv_ref_backward(const ql_conv2d_shape *s, const float *x, const float *w,
                              const float *dy, float *dx, float *dw, float *db) {
    int cg = s->c / s->groups, ocg = s->oc / s->groups;
    memset(dx, 0, sizeof(float) * s->n * s->h * s->w * s->c);
    memset(dw, 0, sizeof(float) * s->oc * cg * s->kh * s->kw);
    memset(db, 0, sizeof(float) * s->oc);
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int o = 0; o < s->oc; o++) {
                    float g = dy[((n * s->oh + oh) * s->ow + ow) * s->oc + o];
                    int grp = o / ocg;
                    db[o] += g;
                    for (int ci = 0; ci < cg; ci++)
                        for (int ki = 0; ki < s->kh; ki++)
                            for (int kj = 0; kj < s->kw; kj++) {
                                int ih = oh * s->sh - s->ph + ki * s->dh;
                                int iw = ow * s->sw - s->pw + kj * s->dw;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                                size_t xi = ((size_t)(n * s->h + ih) * s->w + iw) * s->c + grp * cg + ci;
                                size_t wi = ((size_t)(o * cg + ci) * s->kh + ki) * s->kw + kj;
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                }
}

