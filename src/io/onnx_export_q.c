/* Quantized nodes exported in QDQ form (filled in below). */
#include "io/onnx_export.h"
ql_status ex_quant_node(onnx_ex *e, int i) {
    return ql_error(QL_EUNSUPPORTED, "export: quantized node '%s' not yet", e->g->nodes[i].name);
}
