/* FP32 convolution through oneDNN (Debian's libdnnl 2.6, the library PyTorch
 * links for the same job). oneDNN JIT-compiles its kernels for the ISA it
 * finds (AVX-512, AVX2, ...), so the FP32 speed does not depend on which
 * OpenBLAS core type the environment selects. Activations stay NHWC (our
 * layout; oneDNN's nhwc tag); weights are reordered once per weight version
 * into the blocked layout the primitive asks for.
 *
 * A plan holds the primitives of one node, by shape: creating a primitive
 * costs far more than running it at batch 1, so it is built once per
 * (shape, batch, direction) and kept. The im2col + OpenBLAS kernels in
 * conv2d.c stay the reference (QLAB_FP32=blas selects them at run time). */
#include <stdlib.h>
#include <string.h>
#include <dnnl.h>
#include <omp.h>
#include "qlab/alloc.h"
#include "qlab/cpu.h"
#include "ops/ops_internal.h"

#define PLAN_SLOTS 6   /* shapes kept per node: train and eval batches, the last partial batch */

enum { K_FWD_INF, K_FWD_TRAIN, K_BWD_DATA, K_BWD_WEIGHTS };

typedef struct {
    int used, kind, act, has_bias, oihw;
    int nthr;                               /* oneDNN splits the work when the primitive is made */
    ql_conv2d_shape s;
    uint64_t tick;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, bias, dst;      /* src/dst/bias wrap caller buffers (handles set per call) */
    dnnl_memory_t wuser;                    /* the caller's OHWI weights (forward, bwd data) */
    dnnl_primitive_t wreorder;              /* OHWI -> primitive's layout, or NULL when equal */
    dnnl_memory_t wblk;                     /* weights in the primitive's layout (owned), or NULL */
    const float *wsrc;                      /* pointer and version the blocked copy came from */
    float *dbias;                           /* backward weights: oneDNN's bias gradient (OC), added onto db */
    uint64_t wver;
} slot;

struct ql_conv_plan {
    slot s[PLAN_SLOTS];
    uint64_t tick;
};

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static int state;   /* 0 untried, 1 ready, -1 unavailable */

static int ready(void) {
    if (state) return state > 0;
    state = -1;
    const char *e = getenv("QLAB_FP32");
    if (e && !strcmp(e, "blas")) return 0;
    /* QLAB_ISA caps oneDNN too, so an AVX-512 machine can measure the AVX2 figures. */
    ql_isa isa = ql_isa_active();
    if (isa < QL_ISA_AVX2) dnnl_set_max_cpu_isa(dnnl_cpu_isa_sse41);
    else if (isa < QL_ISA_AVX512) dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2);
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) return 0;
    if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success) return 0;
    state = 1;
    return 1;
}

int ql_conv2d_dnnl_available(void) { return ready(); }

static void slot_clear(slot *t) {
    if (t->prim) dnnl_primitive_destroy(t->prim);
    if (t->wreorder) dnnl_primitive_destroy(t->wreorder);
    ql_free(t->dbias);
    dnnl_memory_t m[] = {t->src, t->wei, t->bias, t->dst, t->wuser, t->wblk};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (m[i]) dnnl_memory_destroy(m[i]);
    memset(t, 0, sizeof *t);
}

void ql_conv_plan_free(ql_conv_plan *p) {
    if (!p) return;
    for (int i = 0; i < PLAN_SLOTS; i++) slot_clear(&p->s[i]);
    free(p);
}

/* Logical dims: activations (N,C,H,W) with the nhwc tag; weights (O,I,H,W)
 * or, grouped, (G,O/G,I/G,H,W) with ohwi / gohwi. */
static void mds(const ql_conv2d_shape *s, int oihw, int any, dnnl_memory_desc_t *src,
                dnnl_memory_desc_t *wei, dnnl_memory_desc_t *bias, dnnl_memory_desc_t *dst) {
    dnnl_dims_t sd = {s->n, s->c, s->h, s->w}, dd = {s->n, s->oc, s->oh, s->ow}, bd = {s->oc};
    dnnl_memory_desc_init_by_tag(src, 4, sd, dnnl_f32, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(dst, 4, dd, dnnl_f32, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(bias, 1, bd, dnnl_f32, dnnl_x);
    if (s->groups == 1) {
        dnnl_dims_t wd = {s->oc, s->c, s->kh, s->kw};
        dnnl_memory_desc_init_by_tag(wei, 4, wd, dnnl_f32, any ? dnnl_format_tag_any : oihw ? dnnl_oihw : dnnl_ohwi);
    } else {
        dnnl_dims_t wd = {s->groups, s->oc / s->groups, s->c / s->groups, s->kh, s->kw};
        dnnl_memory_desc_init_by_tag(wei, 5, wd, dnnl_f32, any ? dnnl_format_tag_any : oihw ? dnnl_goihw : dnnl_gohwi);
    }
}

/* The convolution descriptor of one direction. */
static dnnl_status_t conv_desc(const ql_conv2d_shape *s, int kind, int has_bias, dnnl_convolution_desc_t *cd) {
    dnnl_memory_desc_t src, bias, dst, wany;
    mds(s, 0, 1, &src, &wany, &bias, &dst);
    dnnl_dims_t st = {s->sh, s->sw}, dl = {s->dh - 1, s->dw - 1}, pl = {s->ph, s->pw};
    /* right padding: whatever makes the output size come out (PyTorch floors) */
    dnnl_dims_t pr = {(int64_t)(s->oh - 1) * s->sh + (int64_t)(s->kh - 1) * s->dh + 1 - s->h - s->ph,
                      (int64_t)(s->ow - 1) * s->sw + (int64_t)(s->kw - 1) * s->dw + 1 - s->w - s->pw};
    const dnnl_memory_desc_t *bp = has_bias ? &bias : NULL;
    switch (kind) {
    case K_FWD_INF: case K_FWD_TRAIN:
        return dnnl_dilated_convolution_forward_desc_init(cd, kind == K_FWD_INF ? dnnl_forward_inference
                                                          : dnnl_forward_training, dnnl_convolution_direct,
                                                          &src, &wany, bp, &dst, st, dl, pl, pr);
    case K_BWD_DATA:
        return dnnl_dilated_convolution_backward_data_desc_init(cd, dnnl_convolution_direct, &src, &wany,
                                                                &dst, st, dl, pl, pr);
    default:
        return dnnl_dilated_convolution_backward_weights_desc_init(cd, dnnl_convolution_direct, &src, &wany,
                                                                   bp, &dst, st, dl, pl, pr);
    }
}

static dnnl_status_t make_pd(const ql_conv2d_shape *s, int kind, int act, int has_bias, dnnl_primitive_desc_t *pd) {
    dnnl_convolution_desc_t cd;
    dnnl_status_t st = conv_desc(s, kind, has_bias, &cd);
    if (st != dnnl_success) return st;
    dnnl_primitive_attr_t attr = NULL;
    if (act && (kind == K_FWD_INF || kind == K_FWD_TRAIN)) {
        dnnl_post_ops_t po;
        dnnl_post_ops_create(&po);
        if (act == 1) dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        else dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, 0.0f, 6.0f);
        dnnl_primitive_attr_create(&attr);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t hint = NULL;
    if (kind == K_BWD_DATA || kind == K_BWD_WEIGHTS) {   /* backward descs need the forward one */
        dnnl_convolution_desc_t fd;
        if ((st = conv_desc(s, K_FWD_TRAIN, has_bias, &fd)) != dnnl_success) return st;
        if ((st = dnnl_primitive_desc_create(&hint, &fd, NULL, engine, NULL)) != dnnl_success) return st;
    }
    st = dnnl_primitive_desc_create(pd, &cd, attr, engine, hint);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (hint) dnnl_primitive_desc_destroy(hint);
    return st;
}

static int mem(dnnl_memory_t *m, const dnnl_memory_desc_t *md, void *handle) {
    return dnnl_memory_create(m, md, engine, handle) == dnnl_success;
}

/* Builds slot t for (s, kind, act, bias): the primitive and its memories. */
static int slot_build(slot *t, const ql_conv2d_shape *s, int kind, int act, int has_bias, int oihw) {
    dnnl_primitive_desc_t pd;
    if (make_pd(s, kind, act, has_bias, &pd) != dnnl_success) return 0;
    t->used = 1; t->kind = kind; t->act = act; t->has_bias = has_bias; t->oihw = oihw; t->s = *s;
    dnnl_memory_desc_t src, wuser, bias, dst;
    mds(s, oihw, 0, &src, &wuser, &bias, &dst);
    int ok = dnnl_primitive_create(&t->prim, pd) == dnnl_success;
    /* the weights the primitive reads (forward, bwd data) or writes (bwd weights) */
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(
        pd, kind == K_BWD_WEIGHTS ? dnnl_query_diff_weights_md : dnnl_query_weights_md, 0);
    ok = ok && mem(&t->src, &src, DNNL_MEMORY_NONE) && mem(&t->dst, &dst, DNNL_MEMORY_NONE) &&
         mem(&t->wuser, &wuser, DNNL_MEMORY_NONE);
    if (ok && has_bias && kind != K_BWD_DATA) ok = mem(&t->bias, &bias, DNNL_MEMORY_NONE);
    if (ok && has_bias && kind == K_BWD_WEIGHTS) ok = (t->dbias = ql_malloc(sizeof(float) * (size_t)s->oc)) != NULL;
    /* Backward weights always goes through its own buffer: the reorder back to
     * the caller's layout adds onto the caller's gradient (a sum post-op), as
     * our gradients accumulate. Elsewhere only a layout change needs one. */
    int back = kind == K_BWD_WEIGHTS;
    if (ok && (back || !dnnl_memory_desc_equal(wmd, &wuser))) {
        dnnl_primitive_desc_t rpd;
        dnnl_primitive_attr_t rattr = NULL;
        if (back) {
            dnnl_post_ops_t po;
            dnnl_post_ops_create(&po);
            dnnl_post_ops_append_sum(po, 1.0f);
            dnnl_primitive_attr_create(&rattr);
            dnnl_primitive_attr_set_post_ops(rattr, po);
            dnnl_post_ops_destroy(po);
        }
        ok = mem(&t->wblk, wmd, DNNL_MEMORY_ALLOCATE);
        ok = ok && dnnl_reorder_primitive_desc_create(&rpd, back ? wmd : &wuser, engine,
                                                      back ? &wuser : wmd, engine, rattr) == dnnl_success;
        if (rattr) dnnl_primitive_attr_destroy(rattr);
        if (ok) {
            ok = dnnl_primitive_create(&t->wreorder, rpd) == dnnl_success;
            dnnl_primitive_desc_destroy(rpd);
        }
    }
    /* the primitive's scratchpad lives in the primitive (library mode) */
    dnnl_primitive_desc_destroy(pd);
    if (!ok) slot_clear(t);
    return ok;
}

static slot *find(ql_conv_plan **pp, const ql_conv2d_shape *s, int kind, int act, int has_bias, int oihw) {
    if (!ready()) return NULL;
    if (!*pp && !(*pp = calloc(1, sizeof **pp))) return NULL;
    ql_conv_plan *p = *pp;
    slot *lru = &p->s[0];
    int nthr = omp_get_max_threads();
    for (int i = 0; i < PLAN_SLOTS; i++) {
        slot *t = &p->s[i];
        if (t->used && t->kind == kind && t->act == act && t->has_bias == has_bias && t->oihw == oihw && t->nthr == nthr && !memcmp(&t->s, s, sizeof *s)) {
            t->tick = ++p->tick;
            return t;
        }
        if (!t->used || (lru->used && t->tick < lru->tick)) lru = t;
    }
    slot_clear(lru);
    if (!slot_build(lru, s, kind, act, has_bias, oihw)) return NULL;
    lru->nthr = nthr;
    lru->tick = ++p->tick;
    return lru;
}

static int run(dnnl_primitive_t prim, int n, const dnnl_exec_arg_t *args) {
    return dnnl_primitive_execute(prim, stream, n, args) == dnnl_success &&
           dnnl_stream_wait(stream) == dnnl_success;
}

/* Weights in the primitive's layout: reordered when the caller's copy moved or changed. */
static dnnl_memory_t weights_in(slot *t, const float *w, uint64_t wver) {
    dnnl_memory_set_data_handle(t->wuser, (void *)w);
    if (!t->wreorder) return t->wuser;
    if (t->wsrc != w || t->wver != wver || !wver) {
        dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, t->wuser}, {DNNL_ARG_TO, t->wblk}};
        if (!run(t->wreorder, 2, a)) return NULL;
        t->wsrc = w; t->wver = wver;
    }
    return t->wblk;
}

int ql_conv2d_dnnl_forward(ql_conv_plan **plan, const ql_conv2d_shape *s, int training, const float *x,
                           const float *w, int w_oihw, uint64_t wver, const float *b, int act, float *y) {
    if (s->n == 0) return 1;
    slot *t = find(plan, s, training ? K_FWD_TRAIN : K_FWD_INF, act, b != NULL, w_oihw);
    if (!t) return 0;
    dnnl_memory_t wm = weights_in(t, w, wver);
    if (!wm) return 0;
    dnnl_memory_set_data_handle(t->src, (void *)x);
    dnnl_memory_set_data_handle(t->dst, y);
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, t->src}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, t->dst}};
    int n = 3;
    if (b) {
        dnnl_memory_set_data_handle(t->bias, (void *)b);
        a[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, t->bias};
    }
    return run(t->prim, n, a);
}

int ql_conv2d_dnnl_backward(ql_conv_plan **plan, const ql_conv2d_shape *s, const float *x, const float *w,
                            int w_oihw, uint64_t wver, const float *dy, float *dx, float *dw, float *db) {
    if (s->n == 0) return 1;
    if (dx) {   /* dx = conv^T(dy, w), overwritten */
        slot *t = find(plan, s, K_BWD_DATA, 0, 0, w_oihw);
        if (!t) return 0;
        dnnl_memory_t wm = weights_in(t, w, wver);
        if (!wm) return 0;
        dnnl_memory_set_data_handle(t->dst, (void *)dy);
        dnnl_memory_set_data_handle(t->src, dx);
        dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, t->dst}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, t->src}};
        if (!run(t->prim, 3, a)) return 0;
    }
    if (dw || db) {   /* oneDNN overwrites its diff weights; the reorder back adds them onto dw */
        slot *t = find(plan, s, K_BWD_WEIGHTS, 0, db != NULL, w_oihw);
        if (!t) return 0;
        size_t nw = (size_t)s->oc * s->kh * s->kw * (s->c / s->groups);
        float *tw = dw ? NULL : ql_malloc(nw * sizeof(float));   /* db alone: somewhere to put dw */
        float *tb = t->dbias;
        int ok = dw || tw;
        if (ok) {
            dnnl_memory_set_data_handle(t->src, (void *)x);
            dnnl_memory_set_data_handle(t->dst, (void *)dy);
            dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, t->src}, {DNNL_ARG_DIFF_DST, t->dst},
                                    {DNNL_ARG_DIFF_WEIGHTS, t->wblk}};
            int n = 3;
            if (db) {
                dnnl_memory_set_data_handle(t->bias, tb);
                a[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, t->bias};
            }
            ok = run(t->prim, n, a);
            if (ok && dw) {
                dnnl_memory_set_data_handle(t->wuser, dw);
                dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, t->wblk}, {DNNL_ARG_TO, t->wuser}};
                ok = run(t->wreorder, 2, r);
            }
            if (ok && db) for (int i = 0; i < s->oc; i++) db[i] += tb[i];
        }
        ql_free(tw);
        if (!ok) return 0;
    }
    return 1;
}
