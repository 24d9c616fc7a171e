/* One seeded generator for all randomness (qlab.seed(n)): xoshiro256**.
 * Objects that need their own stream (a loader's shuffle) take a ql_rng
 * seeded from the global one, so results do not depend on call interleaving. */
#ifndef QLAB_RNG_H
#define QLAB_RNG_H
#include <stdint.h>

typedef struct { uint64_t s[4]; } ql_rng;

void     ql_rng_seed(ql_rng *r, uint64_t seed);
uint64_t ql_rng_u64(ql_rng *r);
double   ql_rng_uniform(ql_rng *r);                 /* [0,1) */
float    ql_rng_normal(ql_rng *r);                  /* N(0,1), Box-Muller */
uint64_t ql_rng_below(ql_rng *r, uint64_t n);       /* uniform in [0,n), unbiased */
void     ql_rng_shuffle_i64(ql_rng *r, int64_t *a, int64_t n);

/* The global generator. */
void     ql_seed(uint64_t seed);
ql_rng  *ql_rng_global(void);

#endif
