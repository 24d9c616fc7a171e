/* Quantized nodes that carry no weights: quantize / dequantize at precision
 * boundaries, and the u8 versions of add, max pool, global average pool,
 * relu and flatten. Inputs arrive as u8 tensors with their scale and zero
 * point; each node's output qparams are n->out_scale / n->out_zero. */
#include <string.h>
#include "qlab/qops.h"
#include "graph/op.h"

static ql_status no_backward(ql_op_ctx *c) {
    return ql_error(QL_EUNSUPPORTED, "node '%s': quantized ops have no backward; train the FP32 model "
                    "(or use QAT) before convert", c->n->name);
}

static ql_status same_u8(ql_node *n, const ql_node *const *in) {
    n->out_ndim = in[0]->out_ndim;
    memcpy(n->out_shape, in[0]->out_shape, sizeof n->out_shape);
    n->out_dtype = QL_DTYPE_U8;
    return QL_OK;
}

static ql_status need_u8(const ql_op_ctx *c, int k) {
    if (c->x[k]->dtype != QL_DTYPE_U8)
        return ql_error(QL_ESTATE, "node '%s': %s needs a u8 input, got %s", c->n->name, ql_op_name(c->n->op),
                        ql_dtype_name(c->x[k]->dtype));
    return QL_OK;
}

/* ---- quantize / dequantize -------------------------------------------- */
static ql_status quantize_forward(ql_op_ctx *c) {
    if (c->x[0]->dtype != QL_DTYPE_F32) return ql_error(QL_ESTATE, "node '%s': quantize needs an f32 input", c->n->name);
    ql_quantize_u8(c->y->numel, ql_f32(c->x[0]), c->n->out_scale, c->n->out_zero, c->n->out_qmin, c->n->out_qmax,
                   c->y->data);
    return QL_OK;
}

static ql_status dequantize_infer(ql_node *n, const ql_node *const *in) {
    n->out_ndim = in[0]->out_ndim;
    memcpy(n->out_shape, in[0]->out_shape, sizeof n->out_shape);
    return QL_OK;
}

static ql_status dequantize_forward(ql_op_ctx *c) {
    QL_TRY(need_u8(c, 0));
    ql_dequantize_u8(c->y->numel, c->x[0]->data, c->x[0]->scale, c->x[0]->zero_point, ql_f32(c->y));
    return QL_OK;
}

/* ---- qadd ----------------------------------------------------------------- */
static ql_status qadd_infer(ql_node *n, const ql_node *const *in) {
    QL_TRY(ql_op_add_def.infer(n, in));
    n->out_dtype = QL_DTYPE_U8;
    return QL_OK;
}

static ql_status qadd_forward(ql_op_ctx *c) {
    QL_TRY(need_u8(c, 0));
    QL_TRY(need_u8(c, 1));
    const ql_tensor *a = c->x[0], *b = c->x[1];
    int32_t lo, hi;
    ql_qout_bounds(c->n->a.act, c->n->out_scale, c->n->out_zero, c->n->out_qmin, c->n->out_qmax, &lo, &hi);
    ql_qadd_u8(c->y->numel, a->data, a->scale, a->zero_point, b->data, b->scale, b->zero_point,
               c->y->data, c->n->out_scale, c->n->out_zero, lo, hi);
    return QL_OK;
}

/* ---- pools ---------------------------------------------------------------- */
static ql_status qmaxpool_infer(ql_node *n, const ql_node *const *in) {
    QL_TRY(ql_op_maxpool2d_def.infer(n, in));
    n->out_dtype = QL_DTYPE_U8;
    return QL_OK;
}

static ql_status qmaxpool_forward(ql_op_ctx *c) {
    QL_TRY(need_u8(c, 0));
    const ql_attrs *a = &c->n->a;
    const int64_t *x = c->x[0]->shape;
    ql_pool2d_shape s = {.n = (int)c->batch, .h = (int)x[1], .w = (int)x[2], .c = (int)x[3], .kh = a->kernel[0],
                         .kw = a->kernel[1], .sh = a->stride[0], .sw = a->stride[1], .ph = a->padding[0],
                         .pw = a->padding[1], .ceil_mode = a->ceil_mode};
    QL_TRY(ql_pool2d_shape_init(&s));
    /* code 0 is the bottom of the range: padding never wins a window that
     * holds a real pixel, which PyTorch's padding rule guarantees */
    ql_qmaxpool_u8(&s, c->x[0]->data, c->y->data, 0);
    return QL_OK;
}

static ql_status qgavg_infer(ql_node *n, const ql_node *const *in) {
    QL_TRY(ql_op_global_avgpool_def.infer(n, in));
    n->out_dtype = QL_DTYPE_U8;
    return QL_OK;
}

static ql_status qgavg_forward(ql_op_ctx *c) {
    QL_TRY(need_u8(c, 0));
    const ql_tensor *x = c->x[0];
    ql_qglobal_avgpool_u8((int)c->batch, (int)(x->shape[1] * x->shape[2]), (int)x->shape[3], x->data, x->scale,
                          x->zero_point, c->y->data, c->n->out_scale, c->n->out_zero, c->n->out_qmin,
                          c->n->out_qmax);
    return QL_OK;
}

/* ---- qrelu: a clamp on the codes, same qparams in and out ------------------- */
static ql_status qrelu_forward(ql_op_ctx *c) {
    QL_TRY(need_u8(c, 0));
    int32_t lo, hi;
    ql_qrelu_bounds(c->n->a.act ? c->n->a.act : QL_ACT_RELU, c->x[0]->scale, c->x[0]->zero_point, &lo, &hi);
    const uint8_t *x = c->x[0]->data;
    uint8_t *y = c->y->data;
    for (int64_t i = 0; i < c->y->numel; i++) y[i] = (uint8_t)(x[i] < lo ? lo : x[i] > hi ? hi : x[i]);
    return QL_OK;
}

/* ---- qflatten: NCHW order, as the f32 flatten ------------------------------- */
static ql_status qflatten_infer(ql_node *n, const ql_node *const *in) {
    QL_TRY(ql_op_flatten_def.infer(n, in));
    n->out_dtype = QL_DTYPE_U8;
    return QL_OK;
}

static ql_status qflatten_forward(ql_op_ctx *c) {
    QL_TRY(need_u8(c, 0));
    const ql_tensor *x = c->x[0];
    const uint8_t *s = x->data;
    uint8_t *d = c->y->data;
    if (x->ndim != 4) { memcpy(d, s, (size_t)x->numel); return QL_OK; }
    int64_t h = x->shape[1], w = x->shape[2], ch = x->shape[3], hw = h * w;
    for (int64_t n = 0; n < c->batch; n++)
        for (int64_t p = 0; p < hw; p++)
            for (int64_t k = 0; k < ch; k++) d[n * hw * ch + k * hw + p] = s[(n * hw + p) * ch + k];
    return QL_OK;
}

const ql_op_def ql_op_quantize_def = {1, 1, same_u8, NULL, quantize_forward, no_backward, NULL};
const ql_op_def ql_op_dequantize_def = {1, 1, dequantize_infer, NULL, dequantize_forward, no_backward, NULL};
const ql_op_def ql_op_qadd_def = {2, 2, qadd_infer, NULL, qadd_forward, no_backward, NULL};
const ql_op_def ql_op_qmaxpool2d_def = {1, 1, qmaxpool_infer, NULL, qmaxpool_forward, no_backward, NULL};
const ql_op_def ql_op_qglobal_avgpool_def = {1, 1, qgavg_infer, NULL, qgavg_forward, no_backward, NULL};
const ql_op_def ql_op_qrelu_def = {1, 1, same_u8, NULL, qrelu_forward, no_backward, NULL};
const ql_op_def ql_op_qflatten_def = {1, 1, qflatten_infer, NULL, qflatten_forward, no_backward, NULL};
