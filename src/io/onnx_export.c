/* ONNX export: the builder, FP32 nodes, and the model file (opset 13, IR 7).
 * Values carry the qlab node names, initializers the PyTorch parameter
 * names; images are NCHW in the file. Quantized nodes: onnx_export_q.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "qlab/alloc.h"
#include "io/onnx_export.h"

#define EX_OPSET 13

/* ---- builder ------------------------------------------------------------------- */

static int grow(onnx_ex *e, void *arr, int *cap, int need, size_t es) {
    void **a = arr;
    if (need <= *cap) return 1;
    int nc = *cap ? 2 * *cap : 64;
    while (nc < need) nc *= 2;
    void *p = realloc(*a, (size_t)nc * es);
    if (!p) { e->oom = 1; return 0; }
    *a = p;
    *cap = nc;
    return 1;
}

void *ex_alloc(onnx_ex *e, size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p || !grow(e, &e->mem, &e->capmem, e->nmem + 1, sizeof(void *))) { free(p); e->oom = 1; return NULL; }
    e->mem[e->nmem++] = p;
    return p;
}

char *ex_str(onnx_ex *e, const char *s) {
    char *d = ex_alloc(e, strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

char *ex_fmt(onnx_ex *e, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ex_str(e, buf);
}

Onnx__NodeProto *ex_node(onnx_ex *e, const char *op, const char *name, const char *const *in, int nin,
                         const char *const *out, int nout) {
    static const Onnx__NodeProto init = ONNX__NODE_PROTO__INIT;
    Onnx__NodeProto *n = ex_alloc(e, sizeof *n);
    char **i = ex_alloc(e, sizeof(char *) * (size_t)(nin + 1)), **o = ex_alloc(e, sizeof(char *) * (size_t)(nout + 1));
    if (!n || !i || !o || !grow(e, &e->node, &e->capnode, e->nnode + 1, sizeof *e->node)) return NULL;
    *n = init;
    n->op_type = ex_str(e, op);
    n->name = ex_str(e, name);
    n->domain = ex_str(e, "");
    for (int k = 0; k < nin; k++) i[k] = ex_str(e, in[k] ? in[k] : "");
    for (int k = 0; k < nout; k++) o[k] = ex_str(e, out[k]);
    n->n_input = (size_t)nin; n->input = i;
    n->n_output = (size_t)nout; n->output = o;
    e->node[e->nnode++] = n;
    return n;
}

static Onnx__AttributeProto *attr(onnx_ex *e, Onnx__NodeProto *n, const char *name, int type) {
    static const Onnx__AttributeProto init = ONNX__ATTRIBUTE_PROTO__INIT;
    if (!n) return NULL;
    Onnx__AttributeProto *a = ex_alloc(e, sizeof *a);
    Onnx__AttributeProto **arr = ex_alloc(e, sizeof *arr * (n->n_attribute + 1));
    if (!a || !arr) return NULL;
    *a = init;
    a->name = ex_str(e, name);
    a->has_type = 1;
    a->type = type;
    for (size_t k = 0; k < n->n_attribute; k++) arr[k] = n->attribute[k];
    arr[n->n_attribute++] = a;
    n->attribute = arr;
    return a;
}

void ex_attr_int(onnx_ex *e, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) { a->has_i = 1; a->i = v; }
}

void ex_attr_float(onnx_ex *e, Onnx__NodeProto *n, const char *name, float v) {
    Onnx__AttributeProto *a = attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) { a->has_f = 1; a->f = v; }
}

void ex_attr_ints(onnx_ex *e, Onnx__NodeProto *n, const char *name, const int64_t *v, int k) {
    Onnx__AttributeProto *a = attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *d = ex_alloc(e, sizeof *d * (size_t)k);
    if (!a || !d) return;
    if (k) memcpy(d, v, sizeof *d * (size_t)k);
    a->n_ints = (size_t)k;
    a->ints = d;
}

const char *ex_init(onnx_ex *e, const char *name, int dt, int ndim, const int64_t *dims, const void *data, size_t elem) {
    static const Onnx__TensorProto init = ONNX__TENSOR_PROTO__INIT;
    Onnx__TensorProto *t = ex_alloc(e, sizeof *t);
    int64_t *d = ex_alloc(e, sizeof *d * (size_t)(ndim + 1)), numel = 1;
    for (int k = 0; k < ndim; k++) numel *= dims[k];
    uint8_t *raw = ex_alloc(e, (size_t)numel * elem);
    if (!t || !d || !raw || !grow(e, &e->init, &e->capinit, e->ninit + 1, sizeof *e->init)) return NULL;
    *t = init;
    t->name = ex_str(e, name);
    if (ndim) memcpy(d, dims, sizeof *d * (size_t)ndim);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = dt;
    if (numel) memcpy(raw, data, (size_t)numel * elem);
    t->has_raw_data = 1;
    t->raw_data.len = (size_t)numel * elem;
    t->raw_data.data = raw;
    e->init[e->ninit++] = t;
    return t->name;
}

const char *ex_init_f32(onnx_ex *e, const char *name, int ndim, const int64_t *dims, const float *data) {
    return ex_init(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims, data, 4);
}

const char *ex_scalar_f32(onnx_ex *e, const char *name, float v) {
    return ex_init(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL, &v, 4);
}

const char *ex_scalar_u8(onnx_ex *e, const char *name, uint8_t v) {
    return ex_init(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 0, NULL, &v, 1);
}

const char *ex_i64s(onnx_ex *e, const char *name, int n, const int64_t *v) {
    int64_t d = n;
    return ex_init(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &d, v, 8);
}

void ex_act(onnx_ex *e, int act, const char *name, const char *x, const char *out) {
    if (act == QL_ACT_RELU) {
        ex_node(e, "Relu", name, &x, 1, &out, 1);
    } else if (act == QL_ACT_RELU6) {
        const char *in[3] = {x, ex_scalar_f32(e, ex_fmt(e, "%s.min", name), 0.0f),
                             ex_scalar_f32(e, ex_fmt(e, "%s.max", name), 6.0f)};
        ex_node(e, "Clip", name, in, 3, &out, 1);
    }
}

/* ---- FP32 nodes ------------------------------------------------------------------ */

static void window_attrs(onnx_ex *e, Onnx__NodeProto *n, const ql_attrs *a, int dil) {
    int64_t k[2] = {a->kernel[0], a->kernel[1]}, s[2] = {a->stride[0], a->stride[1]};
    int64_t p[4] = {a->padding[0], a->padding[1], a->padding[0], a->padding[1]}, d[2] = {a->dilation[0], a->dilation[1]};
    ex_attr_ints(e, n, "kernel_shape", k, 2);
    ex_attr_ints(e, n, "strides", s, 2);
    ex_attr_ints(e, n, "pads", p, 4);
    if (dil) ex_attr_ints(e, n, "dilations", d, 2);
}

void ex_conv_attrs(onnx_ex *e, Onnx__NodeProto *n, const ql_attrs *a) {
    window_attrs(e, n, a, 1);
    ex_attr_int(e, n, "group", a->groups);
}

/* PyTorch gate blocks i,f,g,o -> ONNX i,o,f,c: ONNX block t is PyTorch block from[t]. */
static const int lstm_from[4] = {0, 3, 1, 2};

static float *lstm_onnx_rows(onnx_ex *e, const float *src, int64_t h, int64_t cols) {
    float *d = ex_alloc(e, sizeof(float) * (size_t)(4 * h * cols));
    for (int t = 0; d && t < 4; t++)
        memcpy(d + t * h * cols, src + lstm_from[t] * h * cols, sizeof(float) * (size_t)(h * cols));
    return d;
}

/* Transpose -> LSTM per layer (Squeeze after each) -> Transpose: (N,T,F) -> (N,T,H). */
static ql_status ex_lstm(onnx_ex *e, int i) {
    const ql_node *n = &e->g->nodes[i];
    int64_t h = n->a.out_ch, perm[3] = {1, 0, 2}, one = 1;
    const char *x = e->vname[n->inputs[0]], *tm = ex_fmt(e, "%s.time_major", n->name);
    Onnx__NodeProto *t = ex_node(e, "Transpose", ex_fmt(e, "%s.transpose_in", n->name), &x, 1, &tm, 1);
    ex_attr_ints(e, t, "perm", perm, 3);
    const char *axes = ex_i64s(e, ex_fmt(e, "%s.squeeze_axes", n->name), 1, &one);
    int per = n->a.bias ? 4 : 2;
    for (int l = 0; l < n->a.layers; l++) {
        const ql_param *p = &n->params[l * per];
        int64_t f = p[0].value->shape[1], wd[3] = {1, 4 * h, f}, rd[3] = {1, 4 * h, h}, bd[2] = {1, 8 * h};
        float *w = lstm_onnx_rows(e, ql_f32(p[0].value), h, f), *r = lstm_onnx_rows(e, ql_f32(p[1].value), h, h);
        float *b = ex_alloc(e, sizeof(float) * (size_t)(8 * h));
        if (!w || !r || !b) return QL_ENOMEM;
        if (n->a.bias) {
            float *bi = lstm_onnx_rows(e, ql_f32(p[2].value), h, 1), *bh = lstm_onnx_rows(e, ql_f32(p[3].value), h, 1);
            if (!bi || !bh) return QL_ENOMEM;
            memcpy(b, bi, sizeof(float) * (size_t)(4 * h));
            memcpy(b + 4 * h, bh, sizeof(float) * (size_t)(4 * h));
        }
        const char *in[4] = {tm, ex_init_f32(e, ex_fmt(e, "%s.W_l%d", n->name, l), 3, wd, w),
                             ex_init_f32(e, ex_fmt(e, "%s.R_l%d", n->name, l), 3, rd, r),
                             ex_init_f32(e, ex_fmt(e, "%s.B_l%d", n->name, l), 2, bd, b)};
        const char *y = ex_fmt(e, "%s.Y_l%d", n->name, l), *ys = ex_fmt(e, "%s.seq_l%d", n->name, l);
        Onnx__NodeProto *ln = ex_node(e, "LSTM", n->a.layers == 1 ? n->name : ex_fmt(e, "%s.l%d", n->name, l), in, 4, &y, 1);
        ex_attr_int(e, ln, "hidden_size", h);
        const char *sq[2] = {y, axes};
        ex_node(e, "Squeeze", ex_fmt(e, "%s.squeeze_l%d", n->name, l), sq, 2, &ys, 1);
        tm = ys;
    }
    t = ex_node(e, "Transpose", ex_fmt(e, "%s.transpose_out", n->name), &tm, 1, (const char *const *)&e->vname[i], 1);
    ex_attr_ints(e, t, "perm", perm, 3);
    return QL_OK;
}

/* W^T (in,out) for a MatMul of a linear on a sequence. */
static const char *linear_wt(onnx_ex *e, const ql_node *n) {
    const ql_tensor *w = n->params[0].value;
    int64_t o = w->shape[0], k = w->shape[1], d[2] = {k, o};
    float *t = ex_alloc(e, sizeof(float) * (size_t)(o * k));
    if (!t) return NULL;
    for (int64_t r = 0; r < o; r++)
        for (int64_t c = 0; c < k; c++) t[c * o + r] = ql_f32(w)[r * k + c];
    return ex_init_f32(e, ex_fmt(e, "%s.weight_t", n->name), 2, d, t);
}

static const char *param(onnx_ex *e, const ql_param *p) {
    return ex_init_f32(e, p->name, p->value->ndim, p->value->shape, ql_f32(p->value));
}

ql_status ex_fp32_node(onnx_ex *e, int i) {
    const ql_node *n = &e->g->nodes[i];
    const char *x = n->ninputs ? e->vname[n->inputs[0]] : NULL, *y = e->vname[i];
    const char *pre = n->a.act ? ex_fmt(e, "%s.preact", n->name) : y;   /* before a fused activation */
    Onnx__NodeProto *o = NULL;
    switch (n->op) {
    case QL_OP_CONV2D: {
        const char *in[3] = {x, param(e, &n->params[0]), n->a.bias ? param(e, &n->params[1]) : NULL};
        ex_conv_attrs(e, o = ex_node(e, "Conv", n->name, in, n->a.bias ? 3 : 2, &pre, 1), &n->a);
        break;
    }
    case QL_OP_BATCHNORM2D: {
        const char *in[5] = {x};
        for (int k = 0; k < 4; k++) in[k + 1] = param(e, &n->params[k]);
        o = ex_node(e, "BatchNormalization", n->name, in, 5, &y, 1);
        ex_attr_float(e, o, "epsilon", n->a.eps);
        ex_attr_float(e, o, "momentum", 1.0f - n->a.momentum);
        break;
    }
    case QL_OP_RELU: o = ex_node(e, "Relu", n->name, &x, 1, &y, 1); break;
    case QL_OP_RELU6: ex_act(e, QL_ACT_RELU6, n->name, x, y); o = e->node[e->nnode - 1]; break;
    case QL_OP_MAXPOOL2D: case QL_OP_AVGPOOL2D: case QL_OP_QMAXPOOL2D:   /* MaxPool takes uint8 too */
        o = ex_node(e, n->op == QL_OP_AVGPOOL2D ? "AveragePool" : "MaxPool", n->name, &x, 1, &y, 1);
        window_attrs(e, o, &n->a, 0);
        ex_attr_int(e, o, "ceil_mode", n->a.ceil_mode);
        if (n->op == QL_OP_AVGPOOL2D) ex_attr_int(e, o, "count_include_pad", n->a.count_include_pad);
        break;
    case QL_OP_GLOBAL_AVGPOOL: {   /* (N,C,1,1), then flattened to qlab's (N,C) */
        const char *p4 = ex_fmt(e, "%s.4d", n->name);
        ex_node(e, "GlobalAveragePool", n->name, &x, 1, &p4, 1);
        o = ex_node(e, "Flatten", ex_fmt(e, "%s.flatten", n->name), &p4, 1, &y, 1);
        break;
    }
    case QL_OP_LINEAR:
        if (e->g->nodes[n->inputs[0]].out_ndim == 1) {
            const char *in[3] = {x, param(e, &n->params[0]), n->a.bias ? param(e, &n->params[1]) : NULL};
            o = ex_node(e, "Gemm", n->name, in, n->a.bias ? 3 : 2, &pre, 1);
            ex_attr_int(e, o, "transB", 1);
        } else {   /* (N,T,F): MatMul with W^T, then Add of the bias */
            const char *in[2] = {x, linear_wt(e, n)}, *mm = n->a.bias ? ex_fmt(e, "%s.matmul", n->name) : pre;
            o = ex_node(e, "MatMul", n->name, in, 2, &mm, 1);
            if (n->a.bias) {
                const char *ad[2] = {mm, param(e, &n->params[1])};
                o = ex_node(e, "Add", ex_fmt(e, "%s.bias_add", n->name), ad, 2, &pre, 1);
            }
        }
        break;
    case QL_OP_ADD: {
        const char *in[2] = {x, e->vname[n->inputs[1]]};
        o = ex_node(e, "Add", n->name, in, 2, &pre, 1);
        break;
    }
    case QL_OP_FLATTEN: case QL_OP_QFLATTEN: o = ex_node(e, "Flatten", n->name, &x, 1, &y, 1); break;
    case QL_OP_LSTM: return ex_lstm(e, i);
    case QL_OP_SEQ_LAST: {
        int64_t last = -1;
        const char *in[2] = {x, ex_init(e, ex_fmt(e, "%s.index", n->name), ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 0, NULL, &last, 8)};
        o = ex_node(e, "Gather", n->name, in, 2, &y, 1);
        ex_attr_int(e, o, "axis", 1);
        break;
    }
    default:
        return ql_error(QL_EUNSUPPORTED, "export: node '%s' (%s) has no ONNX form; export the FP32 model or the "
                        "converted INT8 one (dynamic, half-precision and QAT nodes stay in .qlm files)",
                        n->name, ql_op_name(n->op));
    }
    if (n->a.act && (n->op == QL_OP_CONV2D || n->op == QL_OP_LINEAR || n->op == QL_OP_ADD))
        ex_act(e, n->a.act, ex_fmt(e, "%s.act", n->name), pre, y);
    return e->oom || !o ? QL_ENOMEM : QL_OK;
}

/* ---- model ----------------------------------------------------------------------- */

static int is_quant(ql_op_type op) {
    return op >= QL_OP_QUANTIZE && op <= QL_OP_QFLATTEN;
}

/* A tensor value info: elem type, (N, per-sample dims in ONNX order). */
static Onnx__ValueInfoProto *value_info(onnx_ex *e, const char *name, const ql_node *n) {
    static const Onnx__ValueInfoProto vi0 = ONNX__VALUE_INFO_PROTO__INIT;
    static const Onnx__TypeProto tp0 = ONNX__TYPE_PROTO__INIT;
    static const Onnx__TypeProto__Tensor tt0 = ONNX__TYPE_PROTO__TENSOR__INIT;
    static const Onnx__TensorShapeProto sh0 = ONNX__TENSOR_SHAPE_PROTO__INIT;
    static const Onnx__TensorShapeProto__Dimension d0 = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    Onnx__ValueInfoProto *vi = ex_alloc(e, sizeof *vi);
    Onnx__TypeProto *tp = ex_alloc(e, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ex_alloc(e, sizeof *tt);
    Onnx__TensorShapeProto *sh = ex_alloc(e, sizeof *sh);
    int r = n->out_ndim + 1;
    Onnx__TensorShapeProto__Dimension **dims = ex_alloc(e, sizeof *dims * (size_t)r);
    if (!vi || !tp || !tt || !sh || !dims) return NULL;
    *vi = vi0; *tp = tp0; *tt = tt0; *sh = sh0;
    int64_t d[QL_MAX_DIMS + 1];
    d[0] = -1;
    if (n->out_ndim == 3) { d[1] = n->out_shape[2]; d[2] = n->out_shape[0]; d[3] = n->out_shape[1]; }
    else for (int k = 0; k < n->out_ndim; k++) d[k + 1] = n->out_shape[k];
    for (int k = 0; k < r; k++) {
        if (!(dims[k] = ex_alloc(e, sizeof **dims))) return NULL;
        *dims[k] = d0;
        if (k == 0) { dims[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM; dims[k]->dim_param = ex_str(e, "N"); }
        else { dims[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE; dims[k]->dim_value = d[k]; }
    }
    sh->n_dim = (size_t)r;
    sh->dim = dims;
    tt->has_elem_type = 1;
    tt->elem_type = n->out_dtype == QL_DTYPE_U8 ? ONNX__TENSOR_PROTO__DATA_TYPE__UINT8 : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = ex_str(e, name);
    vi->type = tp;
    return vi;
}

static ql_status write_model(onnx_ex *e, const char *path, const ql_onnx_export *opt) {
    const ql_graph *g = e->g;
    static const Onnx__ModelProto m0 = ONNX__MODEL_PROTO__INIT;
    static const Onnx__GraphProto g0 = ONNX__GRAPH_PROTO__INIT;
    static const Onnx__OperatorSetIdProto os0 = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__ModelProto m = m0;
    Onnx__GraphProto gp = g0;
    Onnx__OperatorSetIdProto os = os0, *osp = &os;
    os.domain = ex_str(e, "");
    os.has_version = 1;
    os.version = EX_OPSET;
    m.has_ir_version = 1;
    m.ir_version = 7;
    m.producer_name = ex_str(e, "qlab");
    m.n_opset_import = 1;
    m.opset_import = &osp;
    m.graph = &gp;
    gp.name = ex_str(e, "qlab");
    Onnx__ValueInfoProto *in = value_info(e, e->vname[0], &g->nodes[0]);
    int nout = 1;
    Onnx__ValueInfoProto **outs = ex_alloc(e, sizeof *outs * (size_t)(g->nnodes + 1));
    if (!in || !outs) return QL_ENOMEM;
    outs[0] = value_info(e, e->vname[g->output], &g->nodes[g->output]);
    for (int i = 1; opt && opt->all_outputs && i < g->nnodes; i++)
        if (i != g->output) outs[nout++] = value_info(e, e->vname[i], &g->nodes[i]);
    gp.n_input = 1; gp.input = &in;
    gp.n_output = (size_t)nout; gp.output = outs;
    gp.n_node = (size_t)e->nnode; gp.node = e->node;
    gp.n_initializer = (size_t)e->ninit; gp.initializer = e->init;
    if (e->oom) return QL_ENOMEM;
    size_t len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return QL_ENOMEM;
    onnx__model_proto__pack(&m, buf);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *fp = fopen(tmp, "wb");
    ql_status st = QL_OK;
    if (!fp) st = ql_error(QL_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    else {
        size_t w = fwrite(buf, 1, len, fp);
        if (fclose(fp) != 0 || w != len) st = ql_error(QL_EIO, "%s: write failed", tmp);
        if (st == QL_OK && rename(tmp, path) != 0) st = ql_error(QL_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
        if (st != QL_OK) remove(tmp);
    }
    free(buf);
    return st;
}

ql_status ql_onnx_save(const ql_graph *g, const char *path, const ql_onnx_export *opt) {
    onnx_ex e = {.g = g, .clip_narrow = !(opt && opt->keep_fusable)};
    ql_status st = QL_OK;
    e.vname = ex_alloc(&e, sizeof(char *) * (size_t)g->nnodes);
    e.qscale = ex_alloc(&e, sizeof(char *) * (size_t)g->nnodes);
    e.qzero = ex_alloc(&e, sizeof(char *) * (size_t)g->nnodes);
    for (int i = 0; e.vname && i < g->nnodes; i++) e.vname[i] = ex_str(&e, g->nodes[i].name);
    if (!e.vname || !e.qscale || !e.qzero || e.oom) st = QL_ENOMEM;
    for (int i = 1; st == QL_OK && i < g->nnodes; i++)
        st = is_quant(g->nodes[i].op) ? ex_quant_node(&e, i) : ex_fp32_node(&e, i);
    if (st == QL_OK && e.oom) st = QL_ENOMEM;
    if (st == QL_OK) st = write_model(&e, path, opt);
    for (int i = 0; i < e.nmem; i++) free(e.mem[i]);
    free(e.mem);
    free(e.node);
    free(e.init);
    return st == QL_OK ? QL_OK : ql_error_prefix(st, "saving %s", path);
}
