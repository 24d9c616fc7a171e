/* The op table: one entry per ql_op_type, each defined in its op_*.c file. */
#include "qlab/alloc.h"
#include "graph/op.h"

static const ql_op_def *const table[QL_OP_COUNT] = {
    [QL_OP_INPUT] = &ql_op_input_def,
    [QL_OP_CONV2D] = &ql_op_conv2d_def,
    [QL_OP_BATCHNORM2D] = &ql_op_batchnorm2d_def,
    [QL_OP_RELU] = &ql_op_relu_def,
    [QL_OP_RELU6] = &ql_op_relu6_def,
    [QL_OP_MAXPOOL2D] = &ql_op_maxpool2d_def,
    [QL_OP_AVGPOOL2D] = &ql_op_avgpool2d_def,
    [QL_OP_GLOBAL_AVGPOOL] = &ql_op_global_avgpool_def,
    [QL_OP_LINEAR] = &ql_op_linear_def,
    [QL_OP_ADD] = &ql_op_add_def,
    [QL_OP_FLATTEN] = &ql_op_flatten_def,
    [QL_OP_LSTM] = &ql_op_lstm_def,
    [QL_OP_SEQ_LAST] = &ql_op_seq_last_def,
    [QL_OP_QUANTIZE] = &ql_op_quantize_def,
    [QL_OP_DEQUANTIZE] = &ql_op_dequantize_def,
    [QL_OP_QCONV2D] = &ql_op_qconv2d_def,
    [QL_OP_QLINEAR] = &ql_op_qlinear_def,
    [QL_OP_QADD] = &ql_op_qadd_def,
    [QL_OP_QMAXPOOL2D] = &ql_op_qmaxpool2d_def,
    [QL_OP_QGLOBAL_AVGPOOL] = &ql_op_qglobal_avgpool_def,
    [QL_OP_QRELU] = &ql_op_qrelu_def,
    [QL_OP_QFLATTEN] = &ql_op_qflatten_def,
    [QL_OP_FAKEQUANT] = &ql_op_fakequant_def,
    [QL_OP_CONV_BN] = &ql_op_conv_bn_def,
    [QL_OP_DLINEAR] = &ql_op_dlinear_def,
    [QL_OP_DLSTM] = &ql_op_dlstm_def,
    [QL_OP_F16LINEAR] = &ql_op_f16linear_def,
    [QL_OP_F16CONV2D] = &ql_op_f16conv2d_def,
    [QL_OP_F16LSTM] = &ql_op_f16lstm_def,
    [QL_OP_BF16LINEAR] = &ql_op_bf16linear_def,
    [QL_OP_BF16CONV2D] = &ql_op_bf16conv2d_def,
    [QL_OP_BF16LSTM] = &ql_op_bf16lstm_def,
};

const ql_op_def *ql_op_def_get(ql_op_type op) {
    return (unsigned)op < QL_OP_COUNT ? table[op] : NULL;
}

void ql_node_free_priv(ql_node *n) {
    if (!n->priv) return;
    const ql_op_def *d = ql_op_def_get(n->op);
    if (d && d->free_priv) d->free_priv(n->priv);
    else ql_free(n->priv);
    n->priv = NULL;
}
