/* The graph JSON alone (the "qlab.graph" metadata entry), through
 * ql_graph_from_json; a graph that parses is written back and re-read. */
#include <stdlib.h>
#include <string.h>
#include "fuzz.h"
#include "qlab/alloc.h"
#include "qlab/graph.h"
#include "qlab/model_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    ql_graph *g = NULL;
    /* the caller's policy, as ql_model_load sets one from the file size: a
     * graph may claim as many parameters as it likes, not get the memory */
    ql_mem_set_budget((int64_t)256 << 20);
    ql_status st = ql_graph_from_json(s, &g);
    ql_mem_set_budget(-1);
    if (st == QL_OK) {
        char *j = ql_graph_to_json(g);
        ql_graph *h = NULL;
        if (j && ql_graph_from_json(j, &h) == QL_OK) ql_graph_free(h);
        ql_free(j);
        ql_graph_free(g);
    }
    free(s);
    return 0;
}
