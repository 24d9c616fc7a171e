/* CPU feature detection (cpuid + xgetbv) and the ISA chosen for our kernels.
 * QLAB_ISA=scalar|avx2|avx512|amx forces a level (never above what the CPU
 * has). amx is avx512 plus the AMX tile unit for the INT8 GEMM (TDPBUSD);
 * every other kernel runs its avx512 code there. */
#ifndef QLAB_CPU_H
#define QLAB_CPU_H

typedef struct {
    int avx2, fma, f16c;
    int avx512f, avx512bw, avx512vl, avx512_vnni, avx512_bf16;
    int avx_vnni;
    int amx_int8;   /* AMX-TILE + AMX-INT8, enabled by the OS and granted to this process */
} ql_cpu_features;

typedef enum { QL_ISA_SCALAR = 0, QL_ISA_AVX2 = 1, QL_ISA_AVX512 = 2, QL_ISA_AMX = 3 } ql_isa;
#define QL_ISA_COUNT 4

const ql_cpu_features *ql_cpu(void);
ql_isa      ql_isa_best(void);       /* what the CPU supports */
ql_isa      ql_isa_active(void);     /* after QLAB_ISA / ql_isa_force */
void        ql_isa_force(ql_isa isa);/* clamps to ql_isa_best() */
const char *ql_isa_name(ql_isa isa);
/* One core's L2 in bytes (sysconf; 1 MiB when the system does not say):
 * blocked kernels size their working sets by it. */
long        ql_cpu_l2_bytes(void);

#endif
