/* Output regions of a conv by live taps, shared by the FP32 convs
 * (conv2d_regions.c) and the INT8 ones (qops/qconv_regions.c).
 *
 * On small images most output pixels sit on a border, and im2col multiplies
 * their padding taps like any other: a 3x3 conv on 2x2 outputs does 9 taps
 * per pixel where 4 read the image, on 4x4 outputs 9 where 6.25 do. A
 * region is the set of output pixels that read the same rectangle of taps;
 * each gets W restricted to its rectangle and gathers only its live taps,
 * straight from the unpadded input, so padding is neither read nor
 * multiplied. Regions pay once each region's W serves enough rows (they
 * hold more weight bytes together than the conv): the callers take them
 * from a batch of a few images. */
#ifndef QLAB_CONV_REGIONS_H
#define QLAB_CONV_REGIONS_H
#include <stddef.h>
#include <stdint.h>
#include "qlab/ops.h"

#define QL_CONV_MAX_BANDS 6   /* per dimension: more means a large kernel on a tiny image */

typedef struct {
    int kh0, nkh, kw0, nkw;   /* live taps [kh0, kh0 + nkh) x [kw0, kw0 + nkw) */
    int npos;                 /* output pixels of one image in the region */
    int32_t *pos;             /* their indices oh * OW + ow */
    int64_t k;                /* nkh * nkw * C: one gathered row */
} ql_conv_region;

typedef struct {
    int n;
    ql_conv_region r[QL_CONV_MAX_BANDS * QL_CONV_MAX_BANDS];
} ql_conv_regions;

/* 1: g holds the regions of s (one group, no dilation) when they save at
 * least a tenth of its MACs; 0: not worth it; -1: out of memory. */
int ql_conv_regions_init(const ql_conv2d_shape *s, ql_conv_regions *g);
/* The threads that take whole images each through every region of s at
 * batch n (one fork per conv, each its own GEMMs on one thread), 1: one
 * pass whose GEMMs split the work (inside a team, fewer images than
 * threads, or little work). */
int ql_conv_regions_threads(const ql_conv2d_shape *s, int n);
void ql_conv_regions_release(ql_conv_regions *g);
/* W (OC, KH, KW, C) of es-byte elements -> dst (OC, nkh, nkw, C): the region's taps */
void ql_conv_region_weights(const ql_conv2d_shape *s, const ql_conv_region *r, const void *w, size_t es, void *dst);
/* Rows [r0, r0 + nr) of region r (row = image * npos + pixel) -> cols (row
 * stride ks elements, ks >= k; the elements past k are zeroed). par: split
 * the rows over the threads when there are enough (0 inside a team). */
void ql_conv_region_gather(const ql_conv2d_shape *s, const ql_conv_region *r, const void *x, size_t es, int64_t r0,
                           int64_t nr, void *cols, int64_t ks, int par);
/* Rows [r0, r0 + nr) of region r's outputs (tmp: row_bytes each) -> y at their pixels. */
void ql_conv_region_scatter(const ql_conv2d_shape *s, const ql_conv_region *r, const void *tmp, size_t row_bytes,
                            int64_t r0, int64_t nr, void *y, int par);

#endif
