/* .qlm files: the safetensors header, the graph JSON in its metadata and the
 * parameters, through ql_model_load; a model that loads is also saved to
 * JSON again (the writer sees what the reader let through). */
#include <unistd.h>
#include "fuzz.h"
#include "qlab/alloc.h"
#include "qlab/graph.h"
#include "qlab/model_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file("m.qlm", data, size);
    if (!path) return 0;
    ql_graph *g = NULL;
    if (ql_model_load(path, &g) == QL_OK) {
        char *j = ql_graph_to_json(g);
        ql_free(j);
        ql_graph_free(g);
    }
    unlink(path);
    return 0;
}
