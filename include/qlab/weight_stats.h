/* What per-tensor vs per-channel weight scales cost, from the real weights:
 * the workbench's weight view and the lab's part 4. */
#ifndef QLAB_WEIGHT_STATS_H
#define QLAB_WEIGHT_STATS_H
#include "tensor.h"

typedef struct {
    int channels;
    float *min, *max;            /* (channels,) per output channel; caller frees with ql_free */
    double sqnr_per_channel_db;  /* symmetric, one scale per output channel */
    double sqnr_per_tensor_db;   /* symmetric, one scale for the tensor */
    double mse_per_channel, mse_per_tensor;
} ql_weight_stats;

// w (OC, ...) f32, bits 2..8 -> per-channel min / max and both SQNRs of symmetric s8 rounding
ql_status ql_weight_stats_compute(const ql_tensor *w, int bits, ql_weight_stats *out);
void ql_weight_stats_free(ql_weight_stats *s);

#endif
