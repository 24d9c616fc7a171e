/* u8 x s8 -> s32 GEMM with packed weights: packing, the blocked driver
 * shared by every ISA, and the public entry points. The micro-kernels live in
 * qgemm_ref.c (scalar), qgemm_avx2.c and qgemm_avx512.c.
 *
 * Blocking (GotoBLAS style): a task is MC rows x a range of NR-wide panels;
 * for each K block the task packs its rows of A once, then for each panel
 * (whose K-block slice stays in L1) runs the micro-kernel over all row groups.
 * Tasks are spread over OpenMP threads: over M when M is large, over N
 * (column ranges) when M is small (batch 1: M = 1..49). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qops/qops_internal.h"

static const ql_qgemm_impl *impl_for(ql_isa isa, int a_max) {
    ql_isa best = ql_isa_best();
    if (isa > best) isa = best;   // never run instructions the CPU lacks
    if (isa == QL_ISA_AMX) return &ql_qgemm_impl_amx;
    if (isa == QL_ISA_AVX512) return &ql_qgemm_impl_avx512;
    // AVX2: maddubs for 7-bit activations, s16 madd when they use all 8 bits
    if (isa == QL_ISA_AVX2) return a_max <= 127 ? &ql_qgemm_impl_avx2 : &ql_qgemm_impl_avx2_s16;
    return &ql_qgemm_impl_scalar;
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// W (N,K) s8 -> panels of NR columns, steps of KSTEP values (layout in qops_internal.h)
ql_qgemm_packed *ql_qgemm_pack(const int8_t *w, int n, int k, ql_isa isa, int a_max) {
    if (n <= 0 || k < 0 || (!w && k > 0)) {
        ql_error(QL_EINVAL, "qgemm_pack: bad weight shape (%d,%d)", n, k);
        return NULL;
    }
    const ql_qgemm_impl *im = impl_for(isa, a_max);
    ql_qgemm_packed *p = ql_malloc(sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->n = n; p->k = k; p->impl = im;
    int ka = im->kalign > 1 ? im->kalign : 1;
    p->ksteps = cdiv(cdiv(k, im->kstep), ka) * ka;
    p->npanels = cdiv(n, im->nr);
    size_t wbytes = (size_t)(p->npanels * p->ksteps) * im->nr * 4;
    p->w = ql_malloc(wbytes ? wbytes : 1);
    p->colsum = ql_malloc(sizeof(int32_t) * (size_t)n);
    if (!p->w || !p->colsum) { ql_qgemm_packed_free(p); return NULL; }
    p->bytes = sizeof *p + wbytes + sizeof(int32_t) * (size_t)n;
    const int nr = im->nr, ks = im->kstep;
    for (int64_t pn = 0; pn < p->npanels; pn++)
        for (int64_t s = 0; s < p->ksteps; s++)
            for (int c = 0; c < nr; c++) {
                int64_t col = pn * nr + c, base = ((pn * p->ksteps + s) * nr + c) * 4;
                for (int j = 0; j < ks; j++) {
                    int64_t kk = s * ks + j;
                    int8_t v = (col < n && kk < k) ? w[col * k + kk] : 0;
                    if (ks == 2) {   // s16 pairs for madd
                        int16_t v16 = v;
                        memcpy(p->w + base + 2 * j, &v16, 2);
                    } else {
                        p->w[base + j] = (uint8_t)v;
                    }
                }
            }
    for (int col = 0; col < n; col++) {
        int32_t sum = 0;
        for (int kk = 0; kk < k; kk++) sum += w[(int64_t)col * k + kk];
        p->colsum[col] = sum;
    }
    return p;
}

void ql_qgemm_packed_free(ql_qgemm_packed *p) {
    if (!p) return;
    ql_free(p->w);
    ql_free(p->colsum);
    ql_free(p);
}

size_t ql_qgemm_packed_bytes(const ql_qgemm_packed *p) { return p ? p->bytes : 0; }
ql_isa ql_qgemm_packed_isa(const ql_qgemm_packed *p) { return p ? p->impl->isa : QL_ISA_SCALAR; }

// W[n][k] back from the packed layout (for the allocation-free fallback)
static int32_t packed_w(const ql_qgemm_packed *p, int64_t n, int64_t k) {
    const ql_qgemm_impl *im = p->impl;
    int64_t s = k / im->kstep, j = k % im->kstep, pn = n / im->nr, c = n % im->nr;
    const uint8_t *q = p->w + ((pn * p->ksteps + s) * im->nr + c) * 4;
    if (im->kstep == 2) { int16_t v; memcpy(&v, q + 2 * j, 2); return v; }
    return (int8_t)q[j];
}

void ql_qgemm_unpack(const ql_qgemm_packed *p, int8_t *w) {
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t k = 0; k < p->k; k++) w[n * p->k + k] = (int8_t)packed_w(p, n, k);
}

static int32_t col_off(const ql_qgemm_packed *p, const ql_qgemm_epilogue *e, int64_t n) {
    int32_t b = e->bias ? e->bias[n] : 0;
    return (int32_t)((uint32_t)b - (uint32_t)e->a_zero * (uint32_t)p->colsum[n]);
}

// When the workspace cannot be allocated: same results, one 1x1 tile at a time.
static void run_fallback(const ql_qgemm_packed *p, int64_t m, const uint8_t *a, int64_t lda,
                         const ql_qgemm_ctx *c0, const ql_qgemm_epilogue *e, void *y, int64_t ldy) {
    size_t es = c0->out == QL_QOUT_U8 ? 1 : 4;
    for (int64_t n = 0; n < p->n; n++) {
        int32_t off = col_off(p, e, n);
        float mult = e->mult ? e->mult[n] : 0.0f, fb = e->fbias ? e->fbias[n] : 0.0f;
        ql_qgemm_ctx c = *c0;   // arrays of this one column
        c.off = &off; c.mult = &mult; c.fbias = e->fbias ? &fb : NULL;
        for (int64_t i = 0; i < m; i++) {
            uint32_t acc = 0;
            for (int64_t k = 0; k < p->k; k++) acc += (uint32_t)(a[i * lda + k] * packed_w(p, n, k));
            int32_t v = (int32_t)acc;
            ql_qgemm_store_scalar(&c, 1, 1, &v, 1, 0, (char *)y + (size_t)(i * ldy + n) * es, ldy);
        }
    }
}

typedef struct {
    const ql_qgemm_packed *p;
    const ql_qgemm_impl *im;   /* p->impl, or the VNNI kernel on AMX-packed W (small M) */
    int64_t ksteps;            /* the steps im runs (p->ksteps, or K's own without AMX's padding) */
    const ql_qgemm_ctx *c;
    const uint8_t *a;
    int64_t m, lda, ldy, mc, ppc, nch, nkc, kcs;
    int64_t groups, nmb;       /* MR-row groups of M, spread evenly over nmb row blocks */
    int cols;                  /* tasks column range first: each thread its own share of W */
    char *y;
    size_t es;
    int direct;   /* the kernel reads A in place (K a multiple of 4) */
} job;

// rows [mb*mc, +mc) x panels [ch*ppc, +ppc), all K blocks
static void run_task(const job *j, int64_t task, uint8_t *abuf, int32_t *part) {
    const ql_qgemm_packed *p = j->p;
    const ql_qgemm_impl *im = j->im;
    const int MR = im->mr, NR = im->nr;
    int64_t mb = j->cols ? task % j->nmb : task / j->nch, ch = j->cols ? task / j->nmb : task % j->nch;
    int64_t m0 = mb * j->groups / j->nmb * MR, m1 = (mb + 1) * j->groups / j->nmb * MR;
    int64_t rows = (m1 < j->m ? m1 : j->m) - m0;
    int64_t p0 = ch * j->ppc, p1 = p0 + j->ppc < p->npanels ? p0 + j->ppc : p->npanels;
    int64_t groups = cdiv(rows, MR);
    for (int64_t kb = 0; kb < j->nkc; kb++) {
        int64_t s0 = kb * j->kcs, ns = j->ksteps - s0 < j->kcs ? j->ksteps - s0 : j->kcs;
        int flags = (kb == 0 ? QL_KFIRST : 0) | (kb == j->nkc - 1 ? QL_KLAST : 0);
        const uint8_t *ab = abuf;   /* A in place (row stride lda), or this block packed */
        if (j->direct) ab = j->a + m0 * j->lda + s0 * 4;
        else if (im->pack_a(j->a + m0 * j->lda, j->lda, (int)rows, p->k, s0, ns, abuf)) flags |= QL_AHIGH;
        for (int64_t pn = p0; pn < p1; pn++) {
            int nr = (int)(p->n - pn * NR < NR ? p->n - pn * NR : NR);
            const uint8_t *wp = p->w + (pn * p->ksteps + s0) * NR * 4;
            for (int64_t g = 0; g < groups; g++) {
                int mr = (int)(rows - g * MR < MR ? rows - g * MR : MR);
                int32_t *pt = part ? part + ((pn - p0) * groups + g) * MR * NR : NULL;
                char *yt = j->y + ((m0 + g * MR) * j->ldy + pn * NR) * (int64_t)j->es;
                int last = m0 + g * MR + mr == j->m ? QL_ALAST : 0;
                if (j->direct)
                    im->kernel_direct(mr, nr, ns, ab + g * MR * j->lda, j->lda, wp, pt, flags | last, j->c, pn * NR,
                                      yt, j->ldy, abuf);
                else
                    im->kernel(mr, nr, ns, ab + g * ns * MR * 4, wp, pt, flags, j->c, pn * NR, yt, j->ldy);
            }
        }
    }
}

/* In-place A where the kernel has it; QLAB_QGEMM_PACK=1 (or the tests,
 * through ql_qgemm_set_direct) keeps A packing everywhere. */
static int direct_mode = -1;
void ql_qgemm_set_direct(int on) { direct_mode = on; }
static int no_direct(void) {
    if (direct_mode < 0) { const char *e = getenv("QLAB_QGEMM_PACK"); direct_mode = !(e && *e == '1'); }
    return !direct_mode;
}

/* AMX computes 16 rows per A tile whatever M: below two tiles of rows the
 * VNNI kernel is faster (measured: M = 4 ran 2.5x faster on VNNI, M = 16
 * even). Its layout is AMX's, so it runs the same packed W, K's own steps. */
#define AMX_MIN_ROWS 32
static const ql_qgemm_impl *impl_for_rows(const ql_qgemm_packed *p, int64_t m, int64_t *ksteps) {
    *ksteps = p->ksteps;
    if (p->impl == &ql_qgemm_impl_amx && m < AMX_MIN_ROWS) {
        *ksteps = cdiv(p->k, 4);
        return &ql_qgemm_impl_avx512;
    }
    return p->impl;
}

static void run(const ql_qgemm_packed *p, int64_t m, const uint8_t *a, int64_t lda, void *y,
                int64_t ldy, const ql_qgemm_epilogue *e, ql_qout out) {
    if (m <= 0 || !p) return;
    int64_t ksteps;
    const ql_qgemm_impl *im = impl_for_rows(p, m, &ksteps);
    const int MR = im->mr, NR = im->nr;
    static const ql_qgemm_epilogue none = {0};
    if (!e) e = &none;
    ql_qgemm_ctx c = {.out = out, .y_zero = e->y_zero, .k = p->k};
    ql_qclamp_bounds(e->qmin, e->qmax, e->y_zero, &c.lo, &c.hi);

    // geometry: balanced row blocks; column ranges when rows alone give too few tasks
    int T = omp_in_parallel() ? 1 : omp_get_max_threads();
    if ((double)m * p->n * (p->k + 16) < (1 << 18)) T = 1;
    /* In place when every row read stays in A: kernels reading ksteps*4 bytes
     * per row (AMX) run into the next row, so lda + K must cover them. */
    int in_place = im->kalign > 1 ? lda + p->k >= ksteps * 4 : p->k % 4 == 0 || e->a_padded;
    job j = {.p = p, .im = im, .ksteps = ksteps, .c = &c, .a = a, .m = m, .lda = lda, .ldy = ldy, .y = y,
             .es = out == QL_QOUT_U8 ? 1 : 4, .direct = im->kernel_direct && in_place && !no_direct()};
    /* Row blocks of at most mc_max rows, spread by whole MR groups. Threads
     * split the rows, in a multiple of the threads' blocks so that every
     * thread gets the same rows (11 blocks of 96 rows on two threads left one
     * idle a twelfth of the time). From 64 rows on, with A the smaller
     * operand, they split the columns instead (each reads all of A and its
     * share of W): ResNet-18's last stage at batch 64, 64 rows against 512
     * columns, was as slow on two threads as on one while both read all of
     * W. Below 64 rows the row split measured faster (batch 1). */
    j.cols = T > 1 && m >= 64 && m < p->n;
    j.groups = cdiv(m, MR);
    int64_t nmb = cdiv(m, im->mc_max);
    if (T > 1 && !j.cols) nmb = cdiv(nmb, T) * T;
    if (nmb > j.groups) nmb = j.groups;
    j.nmb = nmb;
    j.mc = cdiv(j.groups, nmb) * MR;
    j.nch = 1;
    if (j.cols) j.nch = T < p->npanels ? T : p->npanels;   /* tasks column-major: one range per thread */
    else if (T > 1 && nmb < 2 * T) j.nch = cdiv(2 * T, nmb) < p->npanels ? cdiv(2 * T, nmb) : p->npanels;
    j.ppc = cdiv(p->npanels, j.nch);
    j.nch = cdiv(p->npanels, j.ppc);
    j.nkc = ksteps ? cdiv(ksteps, im->kc_steps) : 1;
    j.kcs = ksteps ? cdiv(ksteps, j.nkc) : 0;   // balanced K blocks
    int64_t ntasks = nmb * j.nch;
    if (T > ntasks) T = (int)ntasks;

    // one allocation: epilogue arrays, then per thread A block and partial sums
    int64_t npad = p->npanels * NR;
    size_t abytes = (size_t)(j.mc * j.kcs * 4 + 64) & ~(size_t)63;
    size_t pbytes = j.nkc > 1 ? (size_t)(j.mc * j.ppc * NR) * 4 : 0;
    size_t ebytes = ((size_t)npad * 12 + 63) & ~(size_t)63;
    char *buf = ql_malloc(ebytes + (size_t)T * (abytes + pbytes));
    if (!buf) { run_fallback(p, m, a, lda, &c, e, y, ldy); return; }
    int32_t *off = (int32_t *)buf;
    float *mult = (float *)(off + npad), *fbias = mult + npad;
    for (int64_t n = 0; n < npad; n++) {
        int in = n < p->n;
        off[n] = in ? col_off(p, e, n) : 0;
        mult[n] = in && e->mult ? e->mult[n] : 0.0f;
        fbias[n] = in && e->fbias ? e->fbias[n] : 0.0f;
    }
    c.off = off; c.mult = mult; c.fbias = e->fbias ? fbias : NULL;
    char *tbuf = buf + ebytes;

    #pragma omp parallel num_threads(T) if (T > 1)
    {
        int t = omp_get_thread_num();
        uint8_t *abuf = (uint8_t *)(tbuf + (size_t)t * (abytes + pbytes));
        int32_t *part = pbytes ? (int32_t *)(abuf + abytes) : NULL;
        if (im->begin) im->begin();
        #pragma omp for schedule(static)
        for (int64_t task = 0; task < ntasks; task++) run_task(&j, task, abuf, part);
        if (im->end) im->end();
    }
    ql_free(buf);
}

void ql_qgemm_u8(const ql_qgemm_packed *p, int64_t m, const uint8_t *a, int64_t lda,
                 uint8_t *y, int64_t ldy, const ql_qgemm_epilogue *e) {
    run(p, m, a, lda, y, ldy, e, QL_QOUT_U8);
}

void ql_qgemm_f32(const ql_qgemm_packed *p, int64_t m, const uint8_t *a, int64_t lda,
                  float *y, int64_t ldy, const ql_qgemm_epilogue *e) {
    run(p, m, a, lda, y, ldy, e, QL_QOUT_F32);
}

void ql_qgemm_s32(const ql_qgemm_packed *p, int64_t m, const uint8_t *a, int64_t lda,
                  int32_t *y, int64_t ldy, const ql_qgemm_epilogue *e) {
    run(p, m, a, lda, y, ldy, e, QL_QOUT_S32);
}
