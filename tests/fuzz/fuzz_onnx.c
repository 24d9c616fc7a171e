/* ONNX models (protobuf), through ql_onnx_load_mem; a graph that imports is
 * run once on zeros (shapes the importer accepted must execute), with an
 * allocation budget as a caller loading untrusted files would set. */
#include "fuzz.h"
#include "qlab/alloc.h"
#include "qlab/graph.h"
#include "qlab/onnx.h"
#include "qlab/threads.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int once;
    if (!once) { ql_threads_set(1); once = 1; }   /* one thread: an OpenMP team per input is all overhead here */
    ql_graph *g = NULL;
    ql_mem_set_budget((int64_t)256 << 20);
    ql_status st = ql_onnx_load_mem(data, size, &g, NULL);
    if (st == QL_OK) {
        int64_t shape[QL_MAX_DIMS + 1] = {1};
        for (int i = 0; i < g->nodes[0].out_ndim; i++) shape[i + 1] = g->nodes[0].out_shape[i];
        ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, g->nodes[0].out_ndim + 1, shape);
        const ql_tensor *y;
        if (x) (void)ql_graph_forward(g, x, &y, 0);
        ql_tensor_free(x);
        ql_graph_free(g);
    }
    ql_mem_set_budget(-1);
    return 0;
}
