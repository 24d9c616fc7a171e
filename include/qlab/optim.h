/* Optimizers over a graph's trainable parameters, with PyTorch's update
 * rules (SGD with momentum / Nesterov / weight decay; Adam; AdamW), and one
 * training step (forward in training mode, cross-entropy, backward, update). */
#ifndef QLAB_OPTIM_H
#define QLAB_OPTIM_H
#include "graph.h"

typedef enum { QL_OPTIM_SGD = 0, QL_OPTIM_ADAM, QL_OPTIM_ADAMW } ql_optim_kind;

typedef struct {
    ql_optim_kind kind;
    float lr;
    float momentum, dampening;  /* SGD */
    int nesterov;               /* SGD */
    float weight_decay;
    float beta1, beta2, eps;    /* Adam(W) */
} ql_optim_opts;

void ql_optim_opts_default(ql_optim_opts *o, ql_optim_kind kind);  /* PyTorch's defaults */

typedef struct ql_optim ql_optim;
/* State buffers are created lazily for the graph's trainable parameters, by name. */
ql_optim *ql_optim_new(const ql_optim_opts *o);
void      ql_optim_free(ql_optim *o);
const ql_optim_opts *ql_optim_options(const ql_optim *o);
/* p -= update(p.grad) for every trainable parameter; bumps g->version. */
ql_status ql_optim_step(ql_optim *o, ql_graph *g, float lr);
int64_t   ql_optim_steps(const ql_optim *o);

/* State as named tensors ("<param>.momentum_buffer", "<param>.exp_avg",
 * "<param>.exp_avg_sq") plus the step count, for checkpoints. */
int        ql_optim_state_count(const ql_optim *o);
const char *ql_optim_state_name(const ql_optim *o, int i);
const ql_tensor *ql_optim_state_tensor(const ql_optim *o, int i);
ql_status  ql_optim_state_set(ql_optim *o, const char *name, const ql_tensor *t);
void       ql_optim_set_steps(ql_optim *o, int64_t steps);

/* One step on a batch: zero grads, forward (training), mean cross-entropy,
 * backward, optimizer update. Returns the loss and the number of correct
 * top-1 predictions. */
ql_status ql_train_step(ql_graph *g, ql_optim *o, const ql_tensor *x, const ql_tensor *labels,
                        float lr, float *loss, int64_t *correct);

#endif
