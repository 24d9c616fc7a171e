/* The machine record: what a benchmark figure was measured on. */
#ifndef QLAB_MACHINE_H
#define QLAB_MACHINE_H
#include "cpu.h"

typedef struct {
    char cpu_model[64];        /* cpuid brand string, e.g. "Intel(R) Xeon(R) Processor" */
    char vendor[16];           /* "GenuineIntel", "AuthenticAMD" */
    int family, model, stepping;
    int cores;                 /* online logical CPUs */
    int threads;               /* qlab's thread count (OpenMP and OpenBLAS) */
    ql_isa isa_best, isa_active;
    char openblas_config[160]; /* openblas_get_config() */
    char openblas_core[32];    /* openblas_get_corename(): the kernels OpenBLAS runs */
    ql_isa openblas_isa;       /* the vector level of those kernels (for the FP32 peak) */
    int openblas_threads;
    char kernel[200];          /* uname: sysname release machine */
    char compiler[64];         /* __VERSION__ of the compiler that built qlab */
} ql_machine;

void ql_machine_get(ql_machine *m);

/* Environment variables that change what the kernels do; NULL-terminated. */
extern const char *const ql_machine_env_vars[];

#endif
