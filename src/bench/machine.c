/* The machine record: CPU (cpuid), ISA levels, threads, OpenBLAS's build and
 * core, kernel and compiler. Environment variables are read by the caller
 * (ql_machine_env_vars lists those that matter). */
#include <cpuid.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include "qlab/machine.h"
#include "qlab/threads.h"

char *openblas_get_config(void);     /* from cblas.h; declared here as threads.c does */
char *openblas_get_corename(void);
int   openblas_get_num_threads(void);

const char *const ql_machine_env_vars[] = {"OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                           "OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "QLAB_ISA",
                                           "OPENBLAS_VERBOSE", "QLAB_FP32", "QLAB_QGEMM_PACK", "OMP_WAIT_POLICY", NULL};

static void trim(char *s) {
    size_t n = strlen(s), i = 0;
    while (n && s[n - 1] == ' ') s[--n] = 0;
    while (s[i] == ' ') i++;
    memmove(s, s + i, n - i + 1);
}

// OpenBLAS core names -> the widest vectors their SGEMM kernels use
static ql_isa core_isa(const char *core) {
    static const char *const avx512[] = {"skylakex", "cooperlake", "sapphirerapids", "zen4", NULL};
    static const char *const avx2[] = {"haswell", "zen", "skylake", "excavator", NULL};
    char low[32];
    size_t i;
    for (i = 0; core[i] && i + 1 < sizeof low; i++) low[i] = (char)(core[i] | 0x20);
    low[i] = 0;
    for (i = 0; avx512[i]; i++) if (!strcmp(low, avx512[i])) return QL_ISA_AVX512;
    for (i = 0; avx2[i]; i++) if (!strcmp(low, avx2[i])) return QL_ISA_AVX2;
    return QL_ISA_SCALAR;
}

void ql_machine_get(ql_machine *m) {
    unsigned r[12] = {0}, a, b, c, d;
    memset(m, 0, sizeof *m);
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(m->vendor, &b, 4); memcpy(m->vendor + 4, &d, 4); memcpy(m->vendor + 8, &c, 4);
    }
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int fam = (a >> 8) & 15, mod = (a >> 4) & 15;
        if (fam == 15) fam += (a >> 20) & 255;
        if (fam >= 6) mod += ((a >> 16) & 15) << 4;
        m->family = fam; m->model = mod; m->stepping = a & 15;
    }
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
        for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        memcpy(m->cpu_model, r, 48);
        m->cpu_model[48] = 0;
        trim(m->cpu_model);
    }
    if (!m->cpu_model[0]) snprintf(m->cpu_model, sizeof m->cpu_model, "unknown");
    m->cores = ql_cores();
    m->threads = ql_threads_get();
    m->isa_best = ql_isa_best();
    m->isa_active = ql_isa_active();
    snprintf(m->openblas_config, sizeof m->openblas_config, "%s", openblas_get_config());
    snprintf(m->openblas_core, sizeof m->openblas_core, "%s", openblas_get_corename());
    trim(m->openblas_config);
    trim(m->openblas_core);
    m->openblas_isa = core_isa(m->openblas_core);
    if (m->openblas_isa > m->isa_best) m->openblas_isa = m->isa_best;
    m->openblas_threads = openblas_get_num_threads();
    struct utsname u;
    if (uname(&u) == 0) snprintf(m->kernel, sizeof m->kernel, "%.64s %.64s %.32s", u.sysname, u.release, u.machine);
    snprintf(m->compiler, sizeof m->compiler, "%s", __VERSION__);
}
