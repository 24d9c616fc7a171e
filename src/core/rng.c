/* xoshiro256** seeded through splitmix64; one global stream for qlab.seed. */
#include <math.h>
#include "qlab/rng.h"

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ql_rng_seed(ql_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ql_rng_u64(ql_rng *r) {
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return res;
}

double ql_rng_uniform(ql_rng *r) { return (ql_rng_u64(r) >> 11) * 0x1.0p-53; }

float ql_rng_normal(ql_rng *r) {
    double u1 = ql_rng_uniform(r), u2 = ql_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint64_t ql_rng_below(ql_rng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do x = ql_rng_u64(r); while (x >= lim);
    return x % n;
}

void ql_rng_shuffle_i64(ql_rng *r, int64_t *a, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ql_rng_below(r, (uint64_t)i + 1), t = a[i];
        a[i] = a[j]; a[j] = t;
    }
}

static ql_rng global = {{0x1234, 0x5678, 0x9abc, 0xdef0}};
void ql_seed(uint64_t seed) { ql_rng_seed(&global, seed); }
ql_rng *ql_rng_global(void) { return &global; }
