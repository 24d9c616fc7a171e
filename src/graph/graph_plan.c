/* Activation memory planning. Sizes are per sample, so one plan serves every
 * batch size; slots are reused best fit, and a graph run twice with the same
 * batch size maps every node to the same slot: no allocation in steady state. */
#include "graph/op.h"

int ql_plan_slots(int nitems, int nsteps, const int *start, const int *end,
                  const int64_t *size, int *slot, int64_t *slot_size, unsigned char *busy) {
    int nslots = 0;
    for (int i = 0; i < nitems; i++) { slot[i] = -1; busy[i] = 0; }
    for (int t = 0; t < nsteps; t++) {
        for (int i = 0; i < nitems; i++) {
            if (start[i] != t) continue;
            int best = -1, largest = -1;
            for (int s = 0; s < nslots; s++) {
                if (busy[s]) continue;
                if (slot_size[s] >= size[i] && (best < 0 || slot_size[s] < slot_size[best])) best = s;
                if (largest < 0 || slot_size[s] > slot_size[largest]) largest = s;
            }
            if (best < 0 && largest >= 0) best = largest;   /* grow a free slot rather than add one */
            if (best < 0) { best = nslots++; slot_size[best] = 0; }
            if (slot_size[best] < size[i]) slot_size[best] = size[i];
            busy[best] = 1;
            slot[i] = best;
        }
        /* Released after the step, so a step's output never shares its inputs' slots. */
        for (int i = 0; i < nitems; i++)
            if (slot[i] >= 0 && end[i] == t) busy[slot[i]] = 0;
    }
    return nslots;
}
