/* ONNX in and out (protobuf-c over Debian's onnx.proto, generated at build time).
 *
 * Import maps an ONNX graph (opsets 7..21; FP32, QDQ and QOperator) onto qlab
 * nodes: NCHW in the file, NHWC inside; initializers become parameters of the
 * node they feed (a node is named after its weight, "conv1" for
 * "conv1.weight", else after the ONNX node). Export writes FP32 graphs as
 * plain ONNX and quantized graphs in QDQ form (opset 13). docs/onnx.md lists
 * the ops and patterns. Errors name the node, the op and the opset. */
#ifndef QLAB_ONNX_H
#define QLAB_ONNX_H
#include <stddef.h>
#include <stdint.h>
#include "graph.h"

/* How an ONNX tensor of the graph's input or output lies in qlab memory. */
typedef enum {
    QL_ONNX_PLAIN = 0,   /* same element order: ONNX (N, d1, ...) = qlab (N, d1, ...) */
    QL_ONNX_NCHW,        /* ONNX (N,C,H,W) = qlab (N,H,W,C) */
    QL_ONNX_C11,         /* ONNX (N,C,1,1) = qlab (N,C) */
    QL_ONNX_TNF,         /* ONNX (T,N,F) = qlab (N,T,F): a time-major sequence input */
} ql_onnx_layout;

/* A graph input fed a constant: the ONNX backend tests pass weights as inputs. */
typedef struct {
    const char *name;
    const ql_tensor *value;   /* ONNX layout; f32, u8, s8 or s32 */
} ql_onnx_binding;

typedef struct {
    const ql_onnx_binding *bind;    /* graph inputs to treat as initializers */
    int nbind;
    int simulate;                   /* QDQ run as written: FP32 ops between quantize / dequantize
                                       nodes (a fake-quant simulation), no INT8 kernels */
    int64_t opset;                  /* out: the default domain's opset */
    ql_onnx_layout in_layout, out_layout;   /* out */
    char input_name[128], output_name[128]; /* out: the ONNX names of the run-time input and the output */
} ql_onnx_import;

/* Reads a .onnx file into a new graph. opts may be NULL. */
ql_status ql_onnx_load(const char *path, ql_graph **out, ql_onnx_import *opts);
ql_status ql_onnx_load_mem(const uint8_t *buf, size_t len, ql_graph **out, ql_onnx_import *opts);

typedef struct {
    int all_outputs;     /* also list every node's value as a graph output (per-node comparisons) */
    int keep_fusable;    /* no Clip for 7-bit activations: ORT fuses every node into its INT8
                            kernels, but its codes then go past 127 where qlab's saturate */
} ql_onnx_export;

/* Writes g as ONNX (FP32, or QDQ for quantized nodes). opts may be NULL. */
ql_status ql_onnx_save(const ql_graph *g, const char *path, const ql_onnx_export *opts);

/* A serialized TensorProto file (the backend tests' input_0.pb ...) as a new
 * tensor in ONNX layout (f32, u8, s8, s32; f64 and s64 narrowed); *name gets
 * its name (ql_free it; may be NULL). */
ql_status ql_onnx_read_tensor(const char *path, ql_tensor **out, char **name);

/* ONNX layout <-> qlab layout of a batch (a new tensor; U8 keeps scale/zero). */
ql_tensor *ql_onnx_to_engine(const ql_tensor *t, ql_onnx_layout l);
ql_tensor *ql_onnx_from_engine(const ql_tensor *t, ql_onnx_layout l);

/* The ONNX backend test in dir (model.onnx + test_data_set_*): graph input 0
 * runs, the other inputs are bound as constants (the tests pass weights as
 * inputs); output 0 is compared with rtol = atol = 1e-3 (1 LSB for integer
 * outputs) on every data set. op gets the model's main op type, msg the
 * reason of a fail or unsupported. */
typedef enum { QL_ONNX_TEST_PASS = 0, QL_ONNX_TEST_FAIL, QL_ONNX_TEST_UNSUPPORTED } ql_onnx_test_result;
ql_onnx_test_result ql_onnx_run_test(const char *dir, char *op, size_t oplen, char *msg, size_t msglen);

#endif
