/* Observers: PyTorch 1.13 numbers from data/fixtures/observers.safetensors
 * (scripts/fixtures/make_observer_fixtures.py) for minmax, moving average,
 * per-channel and histogram observers after each cumulative batch; quant
 * ranges; percentile / entropy / mse choices on data with outliers; the
 * entropy search against a plain reference (ReLU6, Gaussian); freeze,
 * degenerate inputs, bad options, clone independence, no leaks. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include "test.h"
#include "qlab/alloc.h"
#include "qlab/observer.h"
#include "qlab/rng.h"
#include "qlab/safetensors.h"

static ql_st_file *open_fixture(void) {
    static const char *paths[] = { "data/fixtures/observers.safetensors",
                                   "../data/fixtures/observers.safetensors",
                                   "../../data/fixtures/observers.safetensors" };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        ql_st_file *f = NULL;
        if (ql_st_read(paths[i], &f) == QL_OK) return f;
    }
    fprintf(stderr, "  cannot read observers.safetensors: %s\n", ql_last_error());
    return NULL;
}

static ql_tensor *fx_get(const ql_st_file *f, const char *name) {
    const ql_st_entry *e = ql_st_find(f, name);
    ql_tensor *t = NULL;
    if (!e || ql_st_tensor(f, e, &t) != QL_OK) {
        fprintf(stderr, "  fixture entry %s missing\n", name);
        return NULL;
    }
    return t;
}

/* Compares an observer's state with <cfg>.after<k>.* ; hist: also compare
 * the histogram's own min/max (torch's min_val/max_val of HistogramObserver). */
static void check_against(const ql_st_file *f, const ql_observer *o, const char *cfg, int k,
                          double scale_tol, int hist) {
    char name[128];
    const char *fields[] = { "min", "max", "scale", "zero_point" };
    ql_tensor *t[4] = { 0 };
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.after%d.%s", cfg, k, fields[i]);
        t[i] = fx_get(f, name);
    }
    if (!t[0] || !t[1] || !t[2] || !t[3]) { CHECK(0); goto out; }
    int C = ql_observer_channels(o);
    CHECK_MSG(C == t[2]->numel, "%s after %d: %d channels, torch %lld", cfg, k, C, (long long)t[2]->numel);
    if (C != t[2]->numel) goto out;
    float *scale = malloc(sizeof(float) * C);
    int32_t *zp = malloc(sizeof(int32_t) * C);
    CHECK_OK(ql_observer_qparams(o, scale, zp));
    const float *tmn = ql_f32(t[0]), *tmx = ql_f32(t[1]), *tsc = ql_f32(t[2]);
    const int32_t *tzp = (const int32_t *)t[3]->data;
    for (int c = 0; c < C; c++) {
        float lo, hi;
        if (hist) {
            const float *counts; int bins;
            CHECK_OK(ql_observer_histogram(o, &counts, &bins, &lo, &hi));
        } else {
            CHECK_OK(ql_observer_minmax(o, c, &lo, &hi));
        }
        CHECK_MSG(lo == tmn[c] && hi == tmx[c], "%s after %d ch %d: min/max %.9g %.9g, torch %.9g %.9g",
                  cfg, k, c, lo, hi, tmn[c], tmx[c]);
        double rel = fabs((double)scale[c] - tsc[c]) / fabs((double)tsc[c]);
        CHECK_MSG(rel <= scale_tol, "%s after %d ch %d: scale %.9g, torch %.9g (rel %.2e)",
                  cfg, k, c, scale[c], tsc[c], rel);
        CHECK_MSG(zp[c] == tzp[c], "%s after %d ch %d: zero point %d, torch %d", cfg, k, c, zp[c], tzp[c]);
    }
    free(scale); free(zp);
out:
    for (int i = 0; i < 4; i++) ql_tensor_free(t[i]);
}

static ql_observer *make(ql_observer_kind kind, ql_dtype dt, int sym, int rr) {
    ql_observer_opts o;
    ql_observer_opts_default(&o, kind);
    o.dtype = dt; o.symmetric = sym; o.reduce_range = rr;
    ql_observer *ob = ql_observer_new(&o);
    if (!ob) fprintf(stderr, "  ql_observer_new: %s\n", ql_last_error());
    return ob;
}

TEST(observer_fixture_per_tensor) {
    int64_t mem0 = ql_mem_current();
    ql_st_file *f = open_fixture();
    CHECK(f != NULL);
    if (!f) return;
    struct { const char *cfg; ql_observer_kind kind; ql_dtype dt; int sym, rr; float c; } cfgs[] = {
        { "minmax.u8", QL_OBS_MINMAX, QL_DTYPE_U8, 0, 0, 0 },
        { "minmax.u8rr", QL_OBS_MINMAX, QL_DTYPE_U8, 0, 1, 0 },
        { "minmax.s8sym", QL_OBS_MINMAX, QL_DTYPE_S8, 1, 0, 0 },
        { "minmax.s8symrr", QL_OBS_MINMAX, QL_DTYPE_S8, 1, 1, 0 },
        { "minmax.u8sym", QL_OBS_MINMAX, QL_DTYPE_U8, 1, 0, 0 },
        { "ma.u8", QL_OBS_MOVING_AVG, QL_DTYPE_U8, 0, 0, 0.01f },
        { "ma.s8sym", QL_OBS_MOVING_AVG, QL_DTYPE_S8, 1, 0, 0.25f },
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
        ql_observer *o = make(cfgs[i].kind, cfgs[i].dt, cfgs[i].sym, cfgs[i].rr);
        CHECK(o != NULL);
        if (!o) continue;
        if (cfgs[i].c > 0) {   /* options are fixed at creation: make it again */
            ql_observer_opts op = *ql_observer_options(o);
            op.averaging_constant = cfgs[i].c;
            ql_observer_free(o);
            o = ql_observer_new(&op);
        }
        for (int k = 1; k <= 4; k++) {
            char name[32];
            snprintf(name, sizeof name, "input.batch%d", k);
            ql_tensor *x = fx_get(f, name);
            CHECK(x != NULL);
            if (!x) break;
            CHECK_OK(ql_observer_observe(o, x));
            check_against(f, o, cfgs[i].cfg, k, 1e-6, 0);
            ql_tensor_free(x);
        }
        ql_observer_free(o);
    }
    ql_st_free(f);
    CHECK(ql_mem_current() == mem0);
}

TEST(observer_fixture_per_channel) {
    int64_t mem0 = ql_mem_current();
    ql_st_file *f = open_fixture();
    CHECK(f != NULL);
    if (!f) return;
    struct { const char *cfg; ql_observer_kind kind; ql_dtype dt; int sym, axis; float c; } cfgs[] = {
        { "pc.s8sym", QL_OBS_MINMAX, QL_DTYPE_S8, 1, 0, 0 },
        { "pc.u8.ax1", QL_OBS_MINMAX, QL_DTYPE_U8, 0, 1, 0 },
        { "mapc.s8sym", QL_OBS_MOVING_AVG, QL_DTYPE_S8, 1, 0, 0.1f },
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
        ql_observer_opts op;
        ql_observer_opts_default(&op, cfgs[i].kind);
        op.dtype = cfgs[i].dt; op.symmetric = cfgs[i].sym; op.per_channel = 1; op.ch_axis = cfgs[i].axis;
        if (cfgs[i].c > 0) op.averaging_constant = cfgs[i].c;
        ql_observer *o = ql_observer_new(&op);
        CHECK(o != NULL);
        if (!o) continue;
        for (int k = 1; k <= 2; k++) {
            char name[32];
            snprintf(name, sizeof name, "input.weight%d", k);
            ql_tensor *w = fx_get(f, name);
            CHECK(w != NULL);
            if (!w) break;
            CHECK_OK(ql_observer_observe(o, w));
            check_against(f, o, cfgs[i].cfg, k, 1e-6, 0);
            ql_tensor_free(w);
        }
        ql_observer_free(o);
    }
    ql_st_free(f);
    CHECK(ql_mem_current() == mem0);
}

/* HistogramObserver, both torch 1.13 exactly (torch113_histc) and with the
 * int() truncation of the counting range removed (our default, torch >= 2.0). */
TEST(observer_fixture_histogram) {
    int64_t mem0 = ql_mem_current();
    ql_st_file *f = open_fixture();
    CHECK(f != NULL);
    if (!f) return;
    struct { const char *cfg; ql_dtype dt; int sym, rr, compat; } cfgs[] = {
        { "hist.u8", QL_DTYPE_U8, 0, 0, 0 },
        { "hist.u8rr", QL_DTYPE_U8, 0, 1, 0 },
        { "hist.s8sym", QL_DTYPE_S8, 1, 0, 0 },
        { "hist113.u8", QL_DTYPE_U8, 0, 0, 1 },
        { "hist113.u8rr", QL_DTYPE_U8, 0, 1, 1 },
        { "hist113.s8sym", QL_DTYPE_S8, 1, 0, 1 },
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
        ql_observer_opts op;
        ql_observer_opts_default(&op, QL_OBS_HISTOGRAM);
        op.dtype = cfgs[i].dt; op.symmetric = cfgs[i].sym; op.reduce_range = cfgs[i].rr;
        op.torch113_histc = cfgs[i].compat;
        ql_observer *o = ql_observer_new(&op);
        CHECK(o != NULL);
        if (!o) continue;
        for (int k = 1; k <= 4; k++) {
            char name[64];
            snprintf(name, sizeof name, "input.batch%d", k);
            ql_tensor *x = fx_get(f, name);
            CHECK(x != NULL);
            if (!x) break;
            CHECK_OK(ql_observer_observe(o, x));
            check_against(f, o, cfgs[i].cfg, k, 1e-4, 1);
            snprintf(name, sizeof name, "%s.after%d.histogram", cfgs[i].cfg, k);
            const ql_st_entry *e = ql_st_find(f, name);
            if (e) {
                ql_tensor *h = fx_get(f, name);
                const float *counts; int bins; float lo, hi;
                CHECK_OK(ql_observer_histogram(o, &counts, &bins, &lo, &hi));
                CHECK(bins == 2048 && h && h->numel == 2048);
                if (h && counts && bins == 2048) {
                    double md = 0;
                    for (int j = 0; j < bins; j++) md = fmax(md, fabs((double)counts[j] - ql_f32(h)[j]));
                    CHECK_MSG(md == 0, "%s: histogram differs from torch by up to %g", name, md);
                }
                ql_tensor_free(h);
            }
            ql_tensor_free(x);
        }
        ql_observer_free(o);
    }
    ql_st_free(f);
    CHECK(ql_mem_current() == mem0);
}

TEST(observer_qrange) {
    for (int dt = 0; dt < 2; dt++)
        for (int bits = 2; bits <= 8; bits++)
            for (int rr = 0; rr < 2; rr++) {
                ql_observer_opts o;
                ql_observer_opts_default(&o, QL_OBS_MINMAX);
                o.dtype = dt ? QL_DTYPE_S8 : QL_DTYPE_U8;
                o.bits = bits; o.reduce_range = rr;
                int32_t qmin, qmax;
                ql_observer_qrange(&o, &qmin, &qmax);
                int b = bits - rr;
                if (dt) CHECK(qmin == -(1 << (b - 1)) && qmax == (1 << (b - 1)) - 1);
                else CHECK(qmin == 0 && qmax == (1 << b) - 1);
                ql_observer *ob = ql_observer_new(&o);
                CHECK_MSG((ob != NULL) == (b >= 2), "bits %d rr %d dtype %d: %s", bits, rr, dt, ql_last_error());
                ql_observer_free(ob);
            }
    ql_observer_opts o;
    ql_observer_opts_default(&o, QL_OBS_MINMAX);
    int32_t qmin, qmax;
    ql_observer_qrange(&o, &qmin, &qmax);              CHECK(qmin == 0 && qmax == 255);
    o.reduce_range = 1; ql_observer_qrange(&o, &qmin, &qmax); CHECK(qmin == 0 && qmax == 127);
    o.dtype = QL_DTYPE_S8; ql_observer_qrange(&o, &qmin, &qmax); CHECK(qmin == -64 && qmax == 63);
    o.reduce_range = 0; ql_observer_qrange(&o, &qmin, &qmax); CHECK(qmin == -128 && qmax == 127);
    o.bits = 4; ql_observer_qrange(&o, &qmin, &qmax);   CHECK(qmin == -8 && qmax == 7);
}

TEST(observer_qparams_from_range) {
    float s; int32_t z;
    ql_qparams_from_range(-1.0f, 3.0f, 0, 255, 0, QL_DTYPE_U8, &s, &z);
    CHECK(s == 4.0f / 255.0f && z == 64);               /* round(-1 / (4/255)) = round(-63.75) = -64 */
    ql_qparams_from_range(-1.0f, 3.0f, 0, 255, 1, QL_DTYPE_U8, &s, &z);
    CHECK(s == 3.0f / 127.5f && z == 128);
    ql_qparams_from_range(-1.0f, 3.0f, -128, 127, 1, QL_DTYPE_S8, &s, &z);
    CHECK(s == 3.0f / 127.5f && z == 0);
    ql_qparams_from_range(-1.0f, 3.0f, 0, 15, 1, QL_DTYPE_U8, &s, &z);   /* 4-bit u8 symmetric: midpoint 7 */
    CHECK(z == 7);
    ql_qparams_from_range(0.0f, 0.0f, 0, 255, 0, QL_DTYPE_U8, &s, &z);
    CHECK(s == FLT_EPSILON && z == 0);
    ql_qparams_from_range(2.0f, 5.0f, 0, 255, 0, QL_DTYPE_U8, &s, &z);  /* range always holds 0 */
    CHECK(s == 5.0f / 255.0f && z == 0);
    ql_qparams_from_range(-5.0f, -2.0f, -128, 127, 0, QL_DTYPE_S8, &s, &z);
    CHECK(s == 5.0f / 255.0f && z == 127);
}

/* n normal values, plus nout outliers at +-big (alternating), written into a new tensor. */
static ql_tensor *outlier_data(int64_t n, int nout, float big, int relu) {
    ql_tensor *t = ql_tensor_new(QL_DTYPE_F32, 1, &n);
    float *x = ql_f32(t);
    for (int64_t i = 0; i < n; i++) {
        float v = ql_rng_normal(ql_rng_global());
        x[i] = relu && v < 0 ? 0 : v;
    }
    for (int i = 0; i < nout; i++) x[(i * 7919) % n] = (relu || i % 2 == 0) ? big : -big;
    return t;
}

/* Mean squared error of quantize-dequantize of x with (s, z) in [qmin, qmax]. */
static double quant_mse(const ql_tensor *t, float s, int32_t z, int32_t qmin, int32_t qmax) {
    const float *x = ql_f32(t);
    double e = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        float q = nearbyintf(x[i] / s) + (float)z;
        q = q < qmin ? (float)qmin : q > qmax ? (float)qmax : q;
        double d = x[i] - (q - z) * (double)s;
        e += d * d;
    }
    return e / t->numel;
}

/* One million normal (or ReLU'd normal) values and two outliers at +-100:
 * rare enough that clipping them lowers the squared error. */
static void calib_case(int relu, int sym) {
    ql_tensor *x = outlier_data(1 << 20, 2, 100.0f, relu);
    ql_observer_kind kinds[] = { QL_OBS_MINMAX, QL_OBS_HISTOGRAM, QL_OBS_PERCENTILE, QL_OBS_ENTROPY, QL_OBS_MSE };
    double mse[5] = { 0 };
    float his[5] = { 0 };
    for (int k = 0; k < 5; k++) {
        ql_observer *o = make(kinds[k], sym ? QL_DTYPE_S8 : QL_DTYPE_U8, sym, 0);
        CHECK(o != NULL);
        if (!o) continue;
        CHECK_OK(ql_observer_observe(o, x));
        float lo, hi, s; int32_t z, qmin, qmax;
        CHECK_OK(ql_observer_range(o, 0, &lo, &hi));
        CHECK_OK(ql_observer_qparams(o, &s, &z));
        ql_observer_qrange(ql_observer_options(o), &qmin, &qmax);
        mse[k] = quant_mse(x, s, z, qmin, qmax);
        his[k] = hi;
        const char *kn = ql_observer_kind_name(kinds[k]);
        CHECK_MSG(lo <= hi && (relu && !(sym && kinds[k] > QL_OBS_HISTOGRAM) ? lo >= 0 : lo < 0), "%s relu %d sym %d: range [%g, %g]", kn, relu, sym, lo, hi);
        if (sym) CHECK_MSG(lo == -hi || kinds[k] <= QL_OBS_HISTOGRAM, "%s: symmetric range [%g, %g]", kn, lo, hi);
        /* minmax keeps the outliers; torch's L2 search stops early on such data
         * and keeps (nearly) all of it; percentile and entropy clip to the bulk;
         * mse clips where rounding and clipping errors balance (t ~ 28 and ~ 75
         * for these two outliers: squared error weighs them heavily) */
        float limit = kinds[k] <= QL_OBS_HISTOGRAM ? 100.01f : kinds[k] == QL_OBS_PERCENTILE ? 10.0f
                    : kinds[k] == QL_OBS_ENTROPY ? 30.0f : 80.0f;
        CHECK_MSG(hi <= limit && hi > 2.0f, "%s relu %d sym %d: hi %g (limit %g)", kn, relu, sym, hi, limit);
        if (kinds[k] == QL_OBS_MINMAX) CHECK(hi == 100.0f);
        ql_observer_free(o);
    }
    CHECK_MSG(mse[4] < mse[0] * (relu ? 0.8 : 0.5), "relu %d sym %d: mse observer's error %g vs minmax %g", relu, sym, mse[4], mse[0]);
    for (int k = 1; k < 4; k++)
        CHECK_MSG(mse[4] <= mse[k] * 1.02, "relu %d sym %d: mse %g worse than %s's %g (hi %g vs %g)", relu, sym,
                  mse[4], ql_observer_kind_name(kinds[k]), mse[k], his[4], his[k]);
    ql_tensor_free(x);
}

TEST(observer_calibration_clips_outliers) {
    int64_t mem0 = ql_mem_current();
    calib_case(0, 0);
    calib_case(0, 1);
    calib_case(1, 0);
    calib_case(1, 1);
    CHECK(ql_mem_current() == mem0);
}

/* A plain KL search written apart from observer_calib.c, from TensorRT's
 * description (Migacz, GTC 2017) as NVIDIA's pytorch-quantization codes it:
 * h = the counts (non-negative data with an exact 0: the |x| histogram over
 * [0, A]), bin 0 set to bin 1; for every i in [levels, bins]: P = h[0, i)
 * with the count beyond i added to P[i-1]; level of bin k = floor(k*levels/i),
 * each level's count of h[0, i) spread evenly over its non-empty bins: Q;
 * empty bins of P and Q get 1e-4 taken evenly from the others (as ONNX
 * Runtime's smooth_distribution); KL(P||Q) of the normalised two. Returns the
 * i of the smallest KL, the largest such i on ties. */
static int ref_kl_bin(const float *counts, int nb, int levels) {
    double *h = malloc(sizeof(double) * nb * 3), *p = h + nb, *q = h + 2 * nb;
    double *lsum = calloc(levels, sizeof(double));
    int *lnz = calloc(levels, sizeof(int)), best = nb;
    for (int k = 0; k < nb; k++) h[k] = counts[k];
    h[0] = h[1];
    double best_kl = INFINITY;
    for (int i = nb; i >= levels; i--) {
        double out = 0;
        for (int k = i; k < nb; k++) out += h[k];
        memset(lsum, 0, sizeof(double) * levels);
        memset(lnz, 0, sizeof(int) * levels);
        for (int k = 0; k < i; k++) {
            int l = (int)((int64_t)k * levels / i);
            lsum[l] += h[k];
            lnz[l] += h[k] > 0;
        }
        int zp = 0, zq = 0;
        for (int k = 0; k < i; k++) {
            int l = (int)((int64_t)k * levels / i);
            p[k] = h[k] + (k == i - 1 ? out : 0);
            q[k] = h[k] > 0 ? lsum[l] / lnz[l] : 0;
            zp += p[k] == 0; zq += q[k] == 0;
        }
        if (zp == i || zq == i) continue;
        double tp = 1e-4 * zp / (i - zp), tq = 1e-4 * zq / (i - zq), sp = 0, sq = 0, kl = 0;
        int bad = 0;
        for (int k = 0; k < i; k++) {
            p[k] = p[k] == 0 ? 1e-4 : p[k] - tp;
            q[k] = q[k] == 0 ? 1e-4 : q[k] - tq;
            bad |= p[k] <= 0 || q[k] <= 0;
            sp += p[k]; sq += q[k];
        }
        if (bad) continue;
        for (int k = 0; k < i; k++) kl += p[k] / sp * log((p[k] / sp) / (q[k] / sq));
        if (kl < best_kl) { best_kl = kl; best = i; }
    }
    free(h); free(lsum); free(lnz);
    return best;
}

/* The entropy observer's top on x (min 0), and the reference's: hist top * i / bins. */
static void entropy_case(const ql_tensor *x, ql_dtype dt, int sym, int levels, float *top, float *ref_top) {
    ql_observer *o = make(QL_OBS_ENTROPY, dt, sym, 0);
    CHECK(o != NULL);
    *top = *ref_top = NAN;
    if (!o) return;
    CHECK_OK(ql_observer_observe(o, x));
    float lo, hi, hlo, hhi;
    const float *counts; int bins;
    CHECK_OK(ql_observer_range(o, 0, &lo, &hi));
    CHECK_OK(ql_observer_histogram(o, &counts, &bins, &hlo, &hhi));
    CHECK(hlo == 0.0f && lo == (sym ? -hi : 0.0f));
    *top = hi;
    *ref_top = (float)((double)hhi * ref_kl_bin(counts, bins, levels) / bins);
    ql_observer_free(o);
}

/* ReLU6 outputs: half of them exactly 0 (the ReLU) and 5 % exactly 6 (the
 * saturation). Clipping below 6 moves that spike into P's last bin, where Q
 * has almost nothing: the KL minimum keeps 6. Before the fix, levels were
 * groups of floor(i/256) bins with the rest in the last one and bin 0 (the
 * zeros) was merged with its neighbours: [0, 6*511/2048 = 1.497] at sigma 1. */
TEST(observer_entropy_relu6) {
    int64_t mem0 = ql_mem_current(), n = 1 << 20;
    ql_tensor *t = ql_tensor_new(QL_DTYPE_F32, 1, &n);
    float *x = ql_f32(t);
    const float sigmas[] = { 0.5f, 1.0f, 2.0f };
    for (int s = 0; s < 3; s++) {
        ql_rng r;
        ql_rng_seed(&r, 11);
        for (int64_t i = 0; i < n; i++) {
            float v = ql_rng_normal(&r) * sigmas[s];
            x[i] = i % 20 == 0 ? 6.0f : v < 0 ? 0.0f : v > 6 ? 6.0f : v;
        }
        float top, ref;
        entropy_case(t, QL_DTYPE_U8, 0, 256, &top, &ref);
        CHECK_MSG(top >= 5.9f, "relu6 sigma %g: entropy range [0, %g], the spike at 6 clipped", sigmas[s], top);
        CHECK_MSG(top == ref, "relu6 sigma %g: entropy top %.9g, reference %.9g", sigmas[s], top, ref);
    }
    ql_tensor_free(t);
    CHECK(ql_mem_current() == mem0);
}

/* |N(0,1)| (2^20 values, one exact 0), symmetric s8: TensorRT's own setting,
 * 128 levels on a 2048-bin |x| histogram. A numpy version of the reference
 * (vectorised, run on this histogram as read back from the observer) gives
 * bin 1693 of 2048 over [0, 5.494]: t = 4.5416 sigma. The KL is flat out
 * there (t = 4.90 is within 1 %), so besides the exact comparison only a band
 * is asked. */
TEST(observer_entropy_gaussian) {
    int64_t mem0 = ql_mem_current(), n = 1 << 20;
    ql_tensor *t = ql_tensor_new(QL_DTYPE_F32, 1, &n);
    float *x = ql_f32(t);
    ql_rng r;
    ql_rng_seed(&r, 7);
    for (int64_t i = 0; i < n; i++) x[i] = fabsf(ql_rng_normal(&r));
    x[0] = 0.0f;
    float top, ref;
    entropy_case(t, QL_DTYPE_S8, 1, 128, &top, &ref);
    CHECK_MSG(top > 4.0f && top < 5.0f, "N(0,1): entropy threshold %g, expected 4..5 sigma", top);
    CHECK_MSG(top == ref, "N(0,1): entropy threshold %.9g, reference %.9g", top, ref);
    ql_tensor_free(t);
    CHECK(ql_mem_current() == mem0);
}

/* Per-channel mse (4-bit s8 symmetric weights): C channels of m values,
 * channel c scaled by (c+1)/C. m <= bins searches the values themselves,
 * m > bins a histogram of them. */
static void mse_per_channel_case(int C, int m) {
    int64_t shp[2] = { C, m };
    ql_tensor *w = ql_tensor_new(QL_DTYPE_F32, 2, shp);
    float *x = ql_f32(w);
    for (int64_t i = 0; i < w->numel; i++) x[i] = ql_rng_normal(ql_rng_global()) * (float)(i / m + 1) / C;
    ql_observer_opts op;
    ql_observer_opts_default(&op, QL_OBS_MSE);
    op.dtype = QL_DTYPE_S8; op.symmetric = 1; op.per_channel = 1; op.bits = 4;
    ql_observer *o = ql_observer_new(&op);
    op.kind = QL_OBS_MINMAX;
    ql_observer *mm = ql_observer_new(&op);
    CHECK(o && mm);
    CHECK_OK(ql_observer_observe(o, w));
    CHECK_OK(ql_observer_observe(mm, w));
    CHECK(ql_observer_channels(o) == C);
    float *s = malloc(sizeof(float) * C * 2), *sm = s + C;
    int32_t *z = malloc(sizeof(int32_t) * C * 2), *zm = z + C;
    CHECK_OK(ql_observer_qparams(o, s, z));
    CHECK_OK(ql_observer_qparams(mm, sm, zm));
    ql_tensor *ch = ql_tensor_new(QL_DTYPE_F32, 1, (int64_t[]){ m });
    for (int c = 0; c < C; c++) {
        memcpy(ql_f32(ch), x + (int64_t)c * m, sizeof(float) * m);
        double e = quant_mse(ch, s[c], z[c], -8, 7), em = quant_mse(ch, sm[c], zm[c], -8, 7);
        CHECK_MSG(e < em * 0.9, "m %d channel %d: mse %g, minmax %g", m, c, e, em);
        CHECK(z[c] == 0 && s[c] < sm[c]);
    }
    ql_tensor_free(ch);
    free(s); free(z);
    ql_observer_free(o); ql_observer_free(mm);
    ql_tensor_free(w);
}

TEST(observer_mse_per_channel) {
    int64_t mem0 = ql_mem_current();
    mse_per_channel_case(8, 576);
    mse_per_channel_case(4, 4608);
    CHECK(ql_mem_current() == mem0);
}

/* Counting matches torch.histc's float division exactly, for a bin count
 * that is not a power of two, with values on and next to the edges. */
TEST(observer_histogram_counts_exact) {
    int64_t n = 100003;
    ql_tensor *t = ql_tensor_new(QL_DTYPE_F32, 1, &n);
    float *x = ql_f32(t);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(ql_rng_uniform(ql_rng_global()) * 7.3 - 2.1);
    x[0] = -2.1f; x[1] = 5.2f;
    for (int k = 0; k < 1000; k++) x[2 + k] = -2.1f + k * (7.3f / 1000.0f);   /* near every edge */
    ql_observer_opts op;
    ql_observer_opts_default(&op, QL_OBS_HISTOGRAM);
    op.bins = 1000;
    ql_observer *o = ql_observer_new(&op);
    CHECK_OK(ql_observer_observe(o, t));
    const float *counts; int bins; float lo, hi;
    CHECK_OK(ql_observer_histogram(o, &counts, &bins, &lo, &hi));
    CHECK(bins == 1000 && lo == -2.1f && hi == 5.2f);
    int *ref = calloc(1000, sizeof(int));
    for (int64_t i = 0; i < n; i++) {
        int64_t p = (int64_t)((x[i] - lo) / (hi - lo) * 1000.0f);
        if (p == 1000) p = 999;
        ref[p]++;
    }
    int bad = 0;
    double tot = 0;
    for (int k = 0; k < bins; k++) { bad += counts[k] != (float)ref[k]; tot += counts[k]; }
    CHECK_MSG(bad == 0, "%d bins differ from the division formula", bad);
    CHECK(tot == (double)n);
    free(ref);
    ql_observer_free(o);
    ql_tensor_free(t);
}

TEST(observer_freeze_reset_clone) {
    int64_t mem0 = ql_mem_current();
    ql_tensor *a = outlier_data(5000, 0, 0, 0), *b = outlier_data(5000, 2, 50.0f, 0);
    for (int k = 0; k < QL_OBS_COUNT; k++) {
        ql_observer *o = make((ql_observer_kind)k, QL_DTYPE_U8, 0, 0);
        CHECK(o != NULL);
        if (!o) continue;
        CHECK(ql_observer_count(o) == 0);
        CHECK_OK(ql_observer_observe(o, a));
        float s0, s1, s2; int32_t z0, z1, z2;
        CHECK_OK(ql_observer_qparams(o, &s0, &z0));
        ql_observer *c = ql_observer_clone(o);
        CHECK(c != NULL);
        ql_observer_freeze(o, 1);
        CHECK(ql_observer_frozen(o));
        CHECK_OK(ql_observer_observe(o, b));           /* ignored */
        CHECK(ql_observer_count(o) == 1);
        CHECK_OK(ql_observer_qparams(o, &s1, &z1));
        CHECK(s1 == s0 && z1 == z0);
        ql_observer_freeze(o, 0);
        CHECK_OK(ql_observer_observe(o, b));
        CHECK(ql_observer_count(o) == 2);
        float lo, hi;
        CHECK_OK(ql_observer_minmax(o, 0, &lo, &hi));
        CHECK_MSG(k == QL_OBS_MOVING_AVG ? hi < 50.0f : hi == 50.0f, "%s: max %g", ql_observer_kind_name(k), hi);
        /* the clone did not see b */
        CHECK_OK(ql_observer_qparams(c, &s2, &z2));
        CHECK(s2 == s0 && z2 == z0 && ql_observer_count(c) == 1);
        CHECK_OK(ql_observer_minmax(c, 0, &lo, &hi));
        CHECK(hi < 50.0f);
        ql_observer_reset(o);
        CHECK(ql_observer_count(o) == 0);
        CHECK(ql_observer_qparams(o, &s1, &z1) == QL_ESTATE);
        CHECK_OK(ql_observer_observe(o, a));
        CHECK_OK(ql_observer_qparams(o, &s1, &z1));
        CHECK_MSG(s1 == s0 && z1 == z0, "%s: after reset %g %d, first %g %d", ql_observer_kind_name(k), s1, z1, s0, z0);
        ql_observer_free(o);
        ql_observer_free(c);
    }
    ql_tensor_free(a); ql_tensor_free(b);
    CHECK(ql_mem_current() == mem0);
}

TEST(observer_degenerate_inputs) {
    int64_t mem0 = ql_mem_current();
    int64_t n = 1000;
    for (int k = 0; k < QL_OBS_COUNT; k++) {
        for (int sym = 0; sym < 2; sym++) {
            ql_observer *o = make((ql_observer_kind)k, sym ? QL_DTYPE_S8 : QL_DTYPE_U8, sym, 0);
            CHECK(o != NULL);
            if (!o) continue;
            const char *kn = ql_observer_kind_name(k);
            float s, lo, hi; int32_t z;
            CHECK(ql_observer_qparams(o, &s, &z) == QL_ESTATE);   /* nothing seen yet */
            CHECK(ql_observer_range(o, 0, &lo, &hi) == QL_ESTATE);
            ql_tensor *t = ql_tensor_new(QL_DTYPE_F32, 1, &n);     /* all zeros */
            CHECK_OK(ql_observer_observe(o, t));
            CHECK_OK(ql_observer_range(o, 0, &lo, &hi));
            CHECK_MSG(lo == 0 && hi == 0, "%s zeros: range [%g, %g]", kn, lo, hi);
            CHECK_OK(ql_observer_qparams(o, &s, &z));
            CHECK_MSG(s == FLT_EPSILON && z == (sym ? 0 : 0), "%s zeros: %g %d", kn, s, z);
            /* one value, repeated: the histogram restarts (as torch) and the range is that value */
            for (int64_t i = 0; i < n; i++) ql_f32(t)[i] = 3.0f;
            ql_observer_reset(o);
            CHECK_OK(ql_observer_observe(o, t));
            CHECK_OK(ql_observer_range(o, 0, &lo, &hi));
            CHECK_MSG(lo == 3.0f && hi == 3.0f, "%s 3s: range [%g, %g]", kn, lo, hi);
            CHECK_OK(ql_observer_qparams(o, &s, &z));
            CHECK_MSG(fabs(s - 3.0 / (sym ? 127.5 : 255)) < 1e-7 && z == 0, "%s 3s: %g %d", kn, s, z);
            /* NaN / Inf: an error, and the state is untouched */
            ql_f32(t)[17] = NAN;
            CHECK(ql_observer_observe(o, t) == QL_EINVAL);
            CHECK(strstr(ql_last_error(), "NaN") != NULL);
            ql_f32(t)[17] = -INFINITY;
            CHECK(ql_observer_observe(o, t) == QL_EINVAL);
            CHECK(ql_observer_count(o) == 1);
            CHECK_OK(ql_observer_range(o, 0, &lo, &hi));
            CHECK(lo == 3.0f && hi == 3.0f);
            const float *counts; int bins; float hlo, hhi;
            CHECK_OK(ql_observer_histogram(o, &counts, &bins, &hlo, &hhi));
            CHECK(counts != NULL && hlo == 3.0f && hhi == 3.0f);
            /* after a single-valued start the histogram restarts from the next batch (torch) */
            {
                ql_observer *r = ql_observer_clone(o);
                int64_t m = 100;
                ql_tensor *y = ql_tensor_new(QL_DTYPE_F32, 1, &m);
                for (int64_t i = 0; i < m; i++) ql_f32(y)[i] = (float)i - 20;
                CHECK_OK(ql_observer_observe(r, y));
                CHECK_OK(ql_observer_histogram(r, &counts, &bins, &hlo, &hhi));
                double tot = 0;
                for (int j = 0; j < bins; j++) tot += counts[j];
                CHECK(tot == 100 && hlo == -20.0f && hhi == 79.0f);
                CHECK_OK(ql_observer_minmax(r, 0, &lo, &hi));
                CHECK(k == QL_OBS_MOVING_AVG ? (lo > -20.0f && hi < 79.0f) : (lo == -20.0f && hi == 79.0f));
                ql_tensor_free(y);
                ql_observer_free(r);
            }
            /* too wide for float32 */
            ql_f32(t)[17] = -3e38f; ql_f32(t)[18] = 3e38f;
            CHECK(ql_observer_observe(o, t) == QL_EINVAL);
            ql_tensor_free(t);
            /* empty and wrong dtype */
            int64_t zero = 0;
            ql_tensor *e = ql_tensor_new(QL_DTYPE_F32, 1, &zero);
            if (e) { CHECK(ql_observer_observe(o, e) == QL_EINVAL); ql_tensor_free(e); }
            ql_tensor *u = ql_tensor_new(QL_DTYPE_U8, 1, &n);
            CHECK(ql_observer_observe(o, u) == QL_EINVAL);
            ql_tensor_free(u);
            CHECK(ql_observer_count(o) == 1);
            ql_observer_free(o);
        }
    }
    /* a single element */
    ql_observer *o = make(QL_OBS_HISTOGRAM, QL_DTYPE_U8, 0, 0);
    int64_t one = 1;
    ql_tensor *t = ql_tensor_new(QL_DTYPE_F32, 1, &one);
    ql_f32(t)[0] = -2.5f;
    CHECK_OK(ql_observer_observe(o, t));
    float s; int32_t z;
    CHECK_OK(ql_observer_qparams(o, &s, &z));
    CHECK(s == 2.5f / 255.0f && z == 255);
    ql_tensor_free(t);
    ql_observer_free(o);
    CHECK(ql_mem_current() == mem0);
}

TEST(observer_bad_options) {
    int64_t mem0 = ql_mem_current();
    ql_observer_opts o;
    ql_observer_opts_default(&o, QL_OBS_MINMAX);
    o.bits = 1;  CHECK(ql_observer_new(&o) == NULL);
    o.bits = 9;  CHECK(ql_observer_new(&o) == NULL);
    CHECK(strstr(ql_last_error(), "bits") != NULL);
    o.bits = 8; o.dtype = QL_DTYPE_F32; CHECK(ql_observer_new(&o) == NULL);
    o.dtype = QL_DTYPE_S32; CHECK(ql_observer_new(&o) == NULL);
    o.dtype = QL_DTYPE_U8; o.symmetric = 1; o.reduce_range = 1; CHECK(ql_observer_new(&o) == NULL);
    ql_observer_kind no_pc[] = { QL_OBS_HISTOGRAM, QL_OBS_PERCENTILE, QL_OBS_ENTROPY };
    for (int i = 0; i < 3; i++) {
        ql_observer_opts_default(&o, no_pc[i]);
        o.per_channel = 1;
        CHECK(ql_observer_new(&o) == NULL);
        CHECK(strstr(ql_last_error(), "per-channel") != NULL);
    }
    ql_observer_opts_default(&o, QL_OBS_MOVING_AVG); o.averaging_constant = 0; CHECK(ql_observer_new(&o) == NULL);
    ql_observer_opts_default(&o, QL_OBS_PERCENTILE); o.percentile = 30; CHECK(ql_observer_new(&o) == NULL);
    ql_observer_opts_default(&o, QL_OBS_HISTOGRAM); o.bins = 0; CHECK(ql_observer_new(&o) == NULL);
    o.kind = QL_OBS_COUNT; o.bins = 2048; CHECK(ql_observer_new(&o) == NULL);
    /* names */
    ql_observer_kind k;
    for (int i = 0; i < QL_OBS_COUNT; i++) {
        CHECK(ql_observer_kind_from_name(ql_observer_kind_name(i), &k) == 0 && k == (ql_observer_kind)i);
    }
    CHECK(ql_observer_kind_from_name("nonsense", &k) != 0);
    /* per-channel shape errors */
    ql_observer_opts_default(&o, QL_OBS_MINMAX);
    o.per_channel = 1; o.ch_axis = 3; o.symmetric = 1; o.dtype = QL_DTYPE_S8;
    ql_observer *ob = ql_observer_new(&o);
    CHECK(ob && ql_observer_channels(ob) == 0);
    ql_tensor *t = ql_tensor_new4(QL_DTYPE_F32, 2, 3, 4, 5);
    for (int64_t i = 0; i < t->numel; i++) ql_f32(t)[i] = (float)(i % 7) - 3;
    CHECK_OK(ql_observer_observe(ob, t));
    CHECK(ql_observer_channels(ob) == 5);
    ql_tensor *u = ql_tensor_new4(QL_DTYPE_F32, 2, 3, 4, 6);
    CHECK(ql_observer_observe(ob, u) == QL_ESHAPE);
    int64_t s2[2] = { 4, 5 };
    ql_tensor *v = ql_tensor_new(QL_DTYPE_F32, 2, s2);
    CHECK(ql_observer_observe(ob, v) == QL_ESHAPE);        /* axis 3 of a 2-d tensor */
    float lo, hi;
    CHECK(ql_observer_minmax(ob, 5, &lo, &hi) == QL_EINVAL);
    ql_tensor_free(t); ql_tensor_free(u); ql_tensor_free(v);
    ql_observer_free(ob);
    /* ch_axis -1: NHWC activations */
    ql_observer_opts_default(&o, QL_OBS_MOVING_AVG);
    o.per_channel = 1; o.ch_axis = -1;
    ob = ql_observer_new(&o);
    t = ql_tensor_new4(QL_DTYPE_F32, 2, 2, 2, 3);
    for (int64_t i = 0; i < t->numel; i++) ql_f32(t)[i] = (float)(i % 3) * (i & 1 ? 1.0f : -1.0f);
    CHECK_OK(ql_observer_observe(ob, t));
    CHECK(ql_observer_channels(ob) == 3);
    CHECK_OK(ql_observer_minmax(ob, 2, &lo, &hi));
    CHECK(lo == -2.0f && hi == 2.0f);
    ql_tensor_free(t);
    ql_observer_free(ob);
    CHECK(ql_mem_current() == mem0);
}

/* Histogram updates are a fast linear pass: 40 batches of 1M values. */
TEST(observer_histogram_speed) {
    int64_t n = 1 << 20;
    ql_tensor *t = outlier_data(n, 0, 0, 1);
    ql_observer *o = make(QL_OBS_HISTOGRAM, QL_DTYPE_U8, 0, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int b = 0; b < 40; b++) {
        ql_f32(t)[b] = 1.0f + 0.2f * b;        /* the range keeps growing: combines every batch */
        CHECK_OK(ql_observer_observe(o, t));
    }
    float s; int32_t z;
    CHECK_OK(ql_observer_qparams(o, &s, &z));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    printf("       histogram observer: 40 x 1M values in %.3f s (%.2f ns/value)\n", sec, sec / (40.0 * n) * 1e9);
    CHECK(sec < 10);
    ql_observer_free(o);
    ql_tensor_free(t);
}
