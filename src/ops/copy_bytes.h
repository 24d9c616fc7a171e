/* Short copies, shared by the FP32 and INT8 convs' gathers. */
#ifndef QLAB_COPY_BYTES_H
#define QLAB_COPY_BYTES_H
#include <stdint.h>
#include <string.h>

/* n bytes through overlapping word copies: im2col's runs (2..200 bytes) are
 * too short for a call to memcpy to pay, and gcc turns a plain byte loop
 * into one. */
static inline void ql_copy_bytes(uint8_t *d, const uint8_t *s, int64_t n) {
    if (n < 4) {
        for (int64_t i = 0; i < n; i++) d[i] = s[i];
        return;
    }
    if (n < 8) {
        uint32_t a, b;
        memcpy(&a, s, 4); memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4); memcpy(d + n - 4, &b, 4);
        return;
    }
    if (n <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8); memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8); memcpy(d + n - 8, &b, 8);
        return;
    }
    if (n >= 256) { memcpy(d, s, (size_t)n); return; }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) memcpy(d + i, s + i, 16);
    if (i < n) memcpy(d + n - 16, s + n - 16, 16);
}

#endif
