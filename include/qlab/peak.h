/* The core's measured peak: short, independent instruction streams timed on
 * the calling thread (one core), per ISA level. FP32 is multiply-add
 * (FMA where the level has it); INT8 is u8 x s8 -> s32 dot products in the
 * instruction sequence our INT8 GEMM uses at that level:
 *   scalar  one multiply and one add per MAC, no vectors (the reference)
 *   avx2    vfmadd231ps ymm; vpmaddubsw + vpmaddwd(ones) + vpaddd ymm (32 MACs)
 *   avx512  vfmadd231ps zmm; vpdpbusd zmm (64 MACs)
 *   amx     vfmadd231ps zmm; tdpbusd on 16 x 64 tiles (16,384 MACs)
 * Rates are GMAC/s (one FMA = one MAC). */
#ifndef QLAB_PEAK_H
#define QLAB_PEAK_H
#include "cpu.h"
#include "error.h"

typedef struct {
    ql_isa isa;
    double fp32_gmacs;   /* multiply-adds per second / 1e9, one core */
    double int8_gmacs;   /* u8 x s8 products accumulated in s32, per second / 1e9 */
    double seconds;      /* wall time spent measuring both streams */
} ql_peak;

/* Measures one level (<= ql_isa_best(), else QL_EUNSUPPORTED). Each stream
 * is timed for about 5/3 target_ms of its thread's CPU time (best of 5 runs after
 * a calibration run; time the scheduler gives to other processes does not count);
 * target_ms <= 0 means the default, 15 ms. */
ql_status ql_peak_measure(ql_isa isa, double target_ms, ql_peak *out);

/* Every level the CPU has, scalar first; returns the count (<= QL_ISA_COUNT) or -1. */
int ql_peak_measure_all(double target_ms, ql_peak out[QL_ISA_COUNT]);

#endif
