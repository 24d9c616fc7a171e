/* .qlm model files: a safetensors file whose tensors carry the PyTorch
 * state_dict names (PyTorch layouts) and whose __metadata__ entry
 * "qlab.graph" holds the graph as JSON:
 *   {"format":"qlab.graph","version":1,"input":[28,28,1],"output":"fc",
 *    "nodes":[{"name":"conv1","op":"conv2d","inputs":["input"],
 *              "attrs":{"kernel":[7,7],...},"precision":"f32"}, ...]} */
#ifndef QLAB_MODEL_FILE_H
#define QLAB_MODEL_FILE_H
#include "graph.h"

ql_status ql_model_save(const ql_graph *g, const char *path);
ql_status ql_model_load(const char *path, ql_graph **out);
/* Loads a bare safetensors state_dict into g by name. strict: every
 * parameter of g must be present and every tensor of the file used.
 * Shapes must match exactly; F32 only. *nloaded = tensors copied. */
ql_status ql_model_load_state_dict(ql_graph *g, const char *path, int strict, int *nloaded);

/* Graph structure <-> JSON text (malloc'ed with ql_malloc; ql_free it). */
char     *ql_graph_to_json(const ql_graph *g);
/* Builds the graph (nodes topologically sorted, cycles and dangling inputs
 * rejected); parameters are created zero-filled. */
ql_status ql_graph_from_json(const char *json, ql_graph **out);

#endif
