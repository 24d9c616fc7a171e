/* The INT8 GEMM against OpenBLAS sgemm, one thread, side by side on the
 * GEMM shapes of ResNet-18 on 28x28 inputs (batch 64 and batch 1): packed
 * u8 x s8 with 7-bit activations (AVX2: maddubs), with 8-bit activations
 * (AVX2: s16 madd), and sgemm on the same sizes. Best of several rounds,
 * in GMAC/s, and the INT8 / FP32 ratio: the ceiling any INT8 model can
 * reach over FP32 on this CPU.
 *   make bench-qgemm            (builds build/bench_qgemm and runs it)
 *   build/bench_qgemm [rounds]  (QLAB_ISA=scalar|avx2|avx512 as in qlab) */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qlab/alloc.h"
#include "qlab/bench.h"
#include "qlab/qops.h"
#include "qlab/rng.h"
#include "qlab/threads.h"

typedef struct { const char *what; int m, n, k; } shape;

static const shape shapes[] = {
    {"conv1 7x7 b64", 12544, 64, 49},
    {"layer1 3x3 b64", 3136, 64, 576},
    {"layer2 3x3 b64", 1024, 128, 1152},
    {"layer3 3x3 b64", 256, 256, 2304},
    {"layer4 1x1-tap b64", 64, 512, 512},
    {"layer1 3x3 b1", 49, 64, 576},
    {"layer3 3x3 b1", 4, 256, 2304},
};

// best time (s) of `rounds` rounds of `reps` calls
#define BEST(var, rounds, reps, call)                                           \
    do {                                                                        \
        var = 1e30;                                                             \
        for (int r_ = 0; r_ < (rounds); r_++) {                                 \
            double t_ = ql_clock();                                             \
            for (int i_ = 0; i_ < (reps); i_++) { call; }                       \
            t_ = (ql_clock() - t_) / (reps);                                    \
            if (t_ < var) var = t_;                                             \
        }                                                                       \
    } while (0)

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    if (rounds < 1) { fprintf(stderr, "usage: %s [rounds >= 1]\n", argv[0]); return 2; }
    ql_threads_set(1);
    ql_isa isa = ql_isa_active();
    printf("INT8 GEMM (%s kernels) vs OpenBLAS sgemm, one thread, best of %d rounds\n", ql_isa_name(isa), rounds);
    printf("%-20s %6s %4s %5s %12s %12s %12s %9s\n", "shape", "M", "N", "K", "int8 a7", "int8 a8",
           "f32 sgemm", "a7/f32");
    ql_rng *g = ql_rng_global();
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const shape *sh = &shapes[s];
        size_t mk = (size_t)sh->m * sh->k, nk = (size_t)sh->n * sh->k, mn = (size_t)sh->m * sh->n;
        uint8_t *a7 = malloc(mk), *a8 = malloc(mk), *y = malloc(mn);
        int8_t *w = malloc(nk);
        float *af = malloc(sizeof(float) * mk), *wf = malloc(sizeof(float) * nk), *yf = malloc(sizeof(float) * mn);
        float *mult = malloc(sizeof(float) * sh->n);
        if (!a7 || !a8 || !y || !w || !af || !wf || !yf || !mult) { fprintf(stderr, "out of memory\n"); return 1; }
        for (size_t i = 0; i < mk; i++) {
            a8[i] = (uint8_t)ql_rng_below(g, 256);
            a7[i] = a8[i] & 127;
            af[i] = a7[i];
        }
        for (size_t i = 0; i < nk; i++) { w[i] = (int8_t)((int)ql_rng_below(g, 255) - 127); wf[i] = w[i]; }
        for (int j = 0; j < sh->n; j++) mult[j] = 1e-4f;
        ql_qgemm_packed *p7 = ql_qgemm_pack(w, sh->n, sh->k, isa, 127), *p8 = ql_qgemm_pack(w, sh->n, sh->k, isa, 255);
        if (!p7 || !p8) { fprintf(stderr, "pack: %s\n", ql_last_error()); return 1; }
        ql_qgemm_epilogue e = {.a_zero = 3, .mult = mult, .y_zero = 0, .qmin = 0, .qmax = 127};
        double macs = (double)sh->m * sh->n * sh->k;
        int reps = (int)(2e8 / macs) + 1;
        double t7, t8, tf;
        BEST(t7, rounds, reps, ql_qgemm_u8(p7, sh->m, a7, sh->k, y, sh->n, &e));
        BEST(t8, rounds, reps, ql_qgemm_u8(p8, sh->m, a8, sh->k, y, sh->n, &e));
        BEST(tf, rounds, reps, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, sh->m, sh->n, sh->k, 1.0f, af,
                                           sh->k, wf, sh->k, 0.0f, yf, sh->n));
        printf("%-20s %6d %4d %5d %7.1f GMAC %7.1f GMAC %7.1f GMAC %8.2fx\n", sh->what, sh->m, sh->n, sh->k,
               macs / t7 / 1e9, macs / t8 / 1e9, macs / tf / 1e9, tf / t7);
        ql_qgemm_packed_free(p7);
        ql_qgemm_packed_free(p8);
        free(a7); free(a8); free(y); free(w); free(af); free(wf); free(yf); free(mult);
    }
    return 0;
}
