/* An order-preserving map of non-NaN floats to unsigned keys, and back: a
 * bisection over floats (fake-quant's in-range interval) bisects the keys.
 * -inf and inf are the ends; NaNs fall outside. */
#ifndef QLAB_FLOAT_ORDER_H
#define QLAB_FLOAT_ORDER_H
#include <stdint.h>
#include <string.h>

static inline uint32_t ql_f2key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float ql_key2f(uint32_t k) {
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
