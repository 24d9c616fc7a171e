/* CPU features from cpuid/xgetbv; the active ISA level for our kernels. */
#include <cpuid.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "qlab/cpu.h"

static ql_cpu_features feat;
static int detected, forced = -1;

static unsigned long long xgetbv0(void) {
    unsigned a, d;
    __asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
    return ((unsigned long long)d << 32) | a;
}

/* Linux hands out the 8 KB tile state only on request (5.16+); a kernel
 * that refuses, or predates it, leaves AMX off. */
static int amx_granted(void) {
#ifdef SYS_arch_prctl
    const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return 0;
#endif
}

static void detect(void) {
    unsigned a, b, c, d;
    detected = 1;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    int ymm = 0, zmm = 0, tiles = 0;
    if (osxsave) {
        unsigned long long x = xgetbv0();
        ymm = (x & 6) == 6;
        zmm = (x & 0xe6) == 0xe6;
        tiles = (x & 0x60000) == 0x60000;   /* XTILECFG, XTILEDATA */
    }
    feat.fma = ((c >> 12) & 1) && ymm;
    feat.f16c = ((c >> 29) & 1) && ymm;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    feat.avx2 = avx && ymm && ((b >> 5) & 1);
    feat.avx512f = zmm && ((b >> 16) & 1);
    feat.avx512bw = feat.avx512f && ((b >> 30) & 1);
    feat.avx512vl = feat.avx512f && ((b >> 31) & 1);
    feat.avx512_vnni = feat.avx512f && ((c >> 11) & 1);
    feat.amx_int8 = tiles && ((d >> 24) & 1) && ((d >> 25) & 1) && amx_granted();
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        feat.avx_vnni = ymm && ((a >> 4) & 1);
        feat.avx512_bf16 = feat.avx512f && ((a >> 5) & 1);
    }
}

const ql_cpu_features *ql_cpu(void) {
    if (!detected) detect();
    return &feat;
}

long ql_cpu_l2_bytes(void) {
    static long l2;
    if (!l2) {
        long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
        l2 = v >= (64 << 10) ? v : 1 << 20;
    }
    return l2;
}

ql_isa ql_isa_best(void) {
    const ql_cpu_features *f = ql_cpu();
    if (f->avx512f && f->avx512bw && f->avx512vl && f->avx512_vnni) return f->amx_int8 ? QL_ISA_AMX : QL_ISA_AVX512;
    if (f->avx2 && f->fma) return QL_ISA_AVX2;
    return QL_ISA_SCALAR;
}

void ql_isa_force(ql_isa isa) {
    ql_isa best = ql_isa_best();
    forced = (int)(isa > best ? best : isa);
}

ql_isa ql_isa_active(void) {
    if (forced < 0) {
        const char *e = getenv("QLAB_ISA");
        ql_isa want = ql_isa_best();
        if (e && !strcmp(e, "scalar")) want = QL_ISA_SCALAR;
        else if (e && !strcmp(e, "avx2")) want = QL_ISA_AVX2;
        else if (e && !strcmp(e, "avx512")) want = QL_ISA_AVX512;
        else if (e && !strcmp(e, "amx")) want = QL_ISA_AMX;
        ql_isa_force(want);
    }
    return (ql_isa)forced;
}

const char *ql_isa_name(ql_isa isa) {
    return isa == QL_ISA_AMX ? "amx" : isa == QL_ISA_AVX512 ? "avx512" : isa == QL_ISA_AVX2 ? "avx2" : "scalar";
}
