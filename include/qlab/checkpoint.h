/* Training checkpoints: one safetensors file holding the model (as .qlm
 * does), the optimizer state ("optim/<name>"), the loader's generator and a
 * caller-defined state text (epoch, history), written atomically so an
 * interrupted run loses at most the epoch in progress. */
#ifndef QLAB_CHECKPOINT_H
#define QLAB_CHECKPOINT_H
#include "graph.h"
#include "optim.h"
#include "rng.h"

ql_status ql_checkpoint_save(const char *path, const ql_graph *g, const ql_optim *o,
                             const ql_rng *loader_rng, const char *state_text);
/* Restores parameters of g (names and shapes must match), the optimizer
 * state and the generator; *state_text is ql_malloc'ed (ql_free it). */
ql_status ql_checkpoint_load(const char *path, ql_graph *g, ql_optim *o, ql_rng *loader_rng,
                             char **state_text);

#endif
