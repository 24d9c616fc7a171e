/* CPU feature detection (cpuid + xgetbv) and the ISA chosen for our kernels.
 * QLAB_ISA=scalar|avx2|avx512 forces a level (never above what the CPU has). */
#ifndef QLAB_CPU_H
#define QLAB_CPU_H

typedef struct {
    int avx2, fma, f16c;
    int avx512f, avx512bw, avx512vl, avx512_vnni, avx512_bf16;
    int avx_vnni;
} ql_cpu_features;

typedef enum { QL_ISA_SCALAR = 0, QL_ISA_AVX2 = 1, QL_ISA_AVX512 = 2 } ql_isa;

const ql_cpu_features *ql_cpu(void);
ql_isa      ql_isa_best(void);       /* what the CPU supports */
ql_isa      ql_isa_active(void);     /* after QLAB_ISA / ql_isa_force */
void        ql_isa_force(ql_isa isa);/* clamps to ql_isa_best() */
const char *ql_isa_name(ql_isa isa);

#endif
