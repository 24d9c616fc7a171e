/* Direct conv2d loops, the tests' reference (tests/c/conv_ref.c). */
#ifndef QLAB_TEST_CONV_REF_H
#define QLAB_TEST_CONV_REF_H
#include "qlab/ops.h"

/* x (N,H,W,C), w (OC,C/g,KH,KW) OIHW, b (OC) or NULL -> y (N,OH,OW,OC); double sums. */
void conv_ref(const ql_conv2d_shape *s, const float *x, const float *w, const float *b, float *y);
/* dx, dw (OIHW) and db overwritten. */
void conv_ref_backward(const ql_conv2d_shape *s, const float *x, const float *w, const float *dy,
                       float *dx, float *dw, float *db);
#endif
