/* Graph engine: structure, whole-graph forward against the kernels composed
 * by hand, backward against finite differences, memory reuse, clone, errors. */
#include <stdlib.h>
#include <string.h>
#include "test.h"
#include "qlab/alloc.h"
#include "qlab/dataset.h"
#include "qlab/graph.h"
#include "qlab/ops.h"
#include "qlab/rng.h"

/* Shared with test_model_file.c. */
ql_graph *test_build_resnet(int with_bn);
ql_graph *test_build_lstm(void);
ql_tensor *test_random(int ndim, const int64_t *shape, float scale);

ql_tensor *test_random(int ndim, const int64_t *shape, float scale) {
    ql_tensor *t = ql_tensor_new(QL_DTYPE_F32, ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) ql_f32(t)[i] = scale * (2.0f * (float)ql_rng_uniform(ql_rng_global()) - 1.0f);
    return t;
}

static ql_attrs conv_a(int k, int s, int p, int oc, int bias) {
    ql_attrs a;
    ql_attrs_default(&a);
    a.kernel[0] = a.kernel[1] = k;
    a.stride[0] = a.stride[1] = s;
    a.padding[0] = a.padding[1] = p;
    a.out_ch = oc;
    a.bias = bias;
    return a;
}

static int add1(ql_graph *g, const char *name, ql_op_type op, int in, const ql_attrs *a) {
    int i = ql_graph_add(g, name, op, &in, 1, a);
    CHECK_MSG(i > 0, "adding %s: %s", name, ql_last_error());
    return i;
}

/* BN statistics and affine terms away from their identity defaults. */
static void randomize_bn(ql_graph *g) {
    ql_rng *r = ql_rng_global();
    for (int i = 0; i < g->nnodes; i++) {
        ql_node *n = &g->nodes[i];
        if (n->op != QL_OP_BATCHNORM2D) continue;
        for (int c = 0; c < n->a.in_ch; c++) {
            ql_f32(n->params[0].value)[c] = 0.5f + (float)ql_rng_uniform(r);
            ql_f32(n->params[1].value)[c] = (float)ql_rng_uniform(r) - 0.5f;
            ql_f32(n->params[2].value)[c] = 0.2f * ((float)ql_rng_uniform(r) - 0.5f);
            ql_f32(n->params[3].value)[c] = 0.5f + (float)ql_rng_uniform(r);
        }
    }
    g->version++;
}

/* {8,8,3}: conv-bn-relu, maxpool, one basic block with a 1x1 stride-2
 * downsample (torchvision names), global_avgpool, fc -> {5}. */
ql_graph *test_build_resnet(int with_bn) {
    int64_t in[3] = {8, 8, 3};
    ql_graph *g = ql_graph_new(3, in);
    ql_attrs a = conv_a(3, 1, 1, 8, !with_bn), bn, pool = conv_a(2, 2, 0, 0, 0), fc;
    ql_attrs_default(&bn);
    ql_attrs_default(&fc);
    fc.out_ch = 5;
    int x = add1(g, "conv1", QL_OP_CONV2D, 0, &a);
    if (with_bn) x = add1(g, "bn1", QL_OP_BATCHNORM2D, x, &bn);
    x = add1(g, "relu", QL_OP_RELU, x, NULL);
    int id = x = add1(g, "maxpool", QL_OP_MAXPOOL2D, x, &pool);
    a = conv_a(3, 2, 1, 16, !with_bn);
    x = add1(g, "layer1.0.conv1", QL_OP_CONV2D, x, &a);
    if (with_bn) x = add1(g, "layer1.0.bn1", QL_OP_BATCHNORM2D, x, &bn);
    x = add1(g, "layer1.0.relu", QL_OP_RELU, x, NULL);
    a = conv_a(3, 1, 1, 16, !with_bn);
    x = add1(g, "layer1.0.conv2", QL_OP_CONV2D, x, &a);
    if (with_bn) x = add1(g, "layer1.0.bn2", QL_OP_BATCHNORM2D, x, &bn);
    a = conv_a(1, 2, 0, 16, !with_bn);
    int d = add1(g, "layer1.0.downsample.0", QL_OP_CONV2D, id, &a);
    if (with_bn) d = add1(g, "layer1.0.downsample.1", QL_OP_BATCHNORM2D, d, &bn);
    int ins[2] = {x, d};
    x = ql_graph_add(g, "layer1.0.add", QL_OP_ADD, ins, 2, NULL);
    x = add1(g, "layer1.0.relu2", QL_OP_RELU, x, NULL);
    x = add1(g, "avgpool", QL_OP_GLOBAL_AVGPOOL, x, NULL);
    x = add1(g, "fc", QL_OP_LINEAR, x, &fc);
    CHECK_OK(ql_graph_set_output(g, x));
    ql_graph_init_params(g, ql_rng_global());
    randomize_bn(g);
    return g;
}

/* {5,4}: 2-layer LSTM (hidden 6), a per-step linear + relu, last step, fc -> {3}. */
ql_graph *test_build_lstm(void) {
    int64_t in[2] = {5, 4};
    ql_graph *g = ql_graph_new(2, in);
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = 6;
    a.layers = 2;
    int x = add1(g, "lstm", QL_OP_LSTM, 0, &a);
    ql_attrs_default(&a);
    a.out_ch = 6;
    x = add1(g, "proj", QL_OP_LINEAR, x, &a);
    x = add1(g, "act", QL_OP_RELU, x, NULL);
    x = add1(g, "last", QL_OP_SEQ_LAST, x, NULL);
    a.out_ch = 3;
    add1(g, "fc", QL_OP_LINEAR, x, &a);
    ql_graph_init_params(g, ql_rng_global());
    return g;
}

static float *P(ql_graph *g, const char *name) {
    ql_param *p = ql_graph_param(g, name);
    CHECK_MSG(p != NULL, "no parameter %s", name);
    return p ? ql_f32(p->value) : NULL;
}

/* ---- the kernels composed by hand ---------------------------------------- */

typedef struct { int n, h, w, c; float *d; } img;

static img m_conv(ql_graph *g, const char *name, img x) {
    const ql_attrs *a = &g->nodes[ql_graph_find(g, name)].a;
    ql_conv2d_shape s = {.n = x.n, .h = x.h, .w = x.w, .c = x.c, .oc = a->out_ch, .kh = a->kernel[0],
                         .kw = a->kernel[1], .sh = a->stride[0], .sw = a->stride[1], .ph = a->padding[0],
                         .pw = a->padding[1], .dh = 1, .dw = 1, .groups = 1};
    CHECK_OK(ql_conv2d_shape_init(&s));
    char wn[128], bn[128];
    snprintf(wn, sizeof wn, "%s.weight", name);
    snprintf(bn, sizeof bn, "%s.bias", name);
    size_t nw = (size_t)a->out_ch * a->in_ch * a->kernel[0] * a->kernel[1];
    float *w = malloc(nw * sizeof *w), *ws = malloc((ql_conv2d_workspace(&s) + 1) * sizeof *ws);
    ql_conv_weight_oihw_to_ohwi(P(g, wn), w, a->out_ch, a->in_ch, a->kernel[0], a->kernel[1]);
    img y = {x.n, s.oh, s.ow, a->out_ch, malloc((size_t)x.n * s.oh * s.ow * a->out_ch * sizeof(float))};
    ql_conv2d_forward(&s, x.d, w, a->bias ? P(g, bn) : NULL, y.d, ws);
    free(w);
    free(ws);
    return y;
}

static img m_bn(ql_graph *g, const char *name, img x) {
    char b[4][128];
    const char *suf[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) snprintf(b[i], sizeof b[i], "%s.%s", name, suf[i]);
    img y = x;
    y.d = malloc((size_t)x.n * x.h * x.w * x.c * sizeof(float));
    ql_batchnorm_forward_eval((int64_t)x.n * x.h * x.w, x.c, x.d, P(g, b[0]), P(g, b[1]), P(g, b[2]), P(g, b[3]),
                              1e-5f, y.d);
    return y;
}

static img m_relu(img x) {
    img y = x;
    int64_t n = (int64_t)x.n * x.h * x.w * x.c;
    y.d = malloc((size_t)n * sizeof(float));
    ql_relu_forward(n, x.d, y.d);
    return y;
}

static void forward_by_hand(ql_graph *g, const ql_tensor *xt, float *out, int with_bn) {
    img x = {(int)xt->shape[0], 8, 8, 3, ql_f32(xt)}, t[16];
    int k = 0;
    t[k++] = m_conv(g, "conv1", x);
    if (with_bn) { t[k] = m_bn(g, "bn1", t[k - 1]); k++; }
    t[k] = m_relu(t[k - 1]); k++;
    ql_pool2d_shape ps = {.n = x.n, .h = 8, .w = 8, .c = 8, .kh = 2, .kw = 2, .sh = 2, .sw = 2, .count_include_pad = 1};
    CHECK_OK(ql_pool2d_shape_init(&ps));
    img id = {x.n, 4, 4, 8, malloc((size_t)x.n * 4 * 4 * 8 * sizeof(float))};
    ql_maxpool2d_forward(&ps, t[k - 1].d, id.d, NULL);
    t[k++] = id;
    t[k] = m_conv(g, "layer1.0.conv1", id); k++;
    if (with_bn) { t[k] = m_bn(g, "layer1.0.bn1", t[k - 1]); k++; }
    t[k] = m_relu(t[k - 1]); k++;
    t[k] = m_conv(g, "layer1.0.conv2", t[k - 1]); k++;
    if (with_bn) { t[k] = m_bn(g, "layer1.0.bn2", t[k - 1]); k++; }
    img main = t[k - 1];
    t[k] = m_conv(g, "layer1.0.downsample.0", id); k++;
    if (with_bn) { t[k] = m_bn(g, "layer1.0.downsample.1", t[k - 1]); k++; }
    img sum = main;
    int64_t n = (int64_t)main.n * main.h * main.w * main.c;
    sum.d = malloc((size_t)n * sizeof(float));
    ql_add_forward(n, main.d, t[k - 1].d, sum.d);
    t[k++] = sum;
    t[k] = m_relu(sum); k++;
    float pooled[64 * 16];
    ql_global_avgpool_forward(x.n, 4, 16, t[k - 1].d, pooled);
    ql_linear_forward(x.n, 16, 5, pooled, P(g, "fc.weight"), P(g, "fc.bias"), out);
    for (int i = 0; i < k; i++) free(t[i].d);
}

TEST(graph_structure_and_names) {
    ql_graph *g = test_build_resnet(1);
    CHECK(g->nnodes == 16);
    CHECK(!strcmp(ql_op_name(QL_OP_GLOBAL_AVGPOOL), "global_avgpool"));
    ql_op_type op;
    CHECK(ql_op_from_name("seq_last", &op) == 0 && op == QL_OP_SEQ_LAST);
    CHECK(ql_op_from_name("conv3d", &op) == -1);
    for (int i = 0; i < QL_OP_COUNT; i++)
        CHECK(ql_op_from_name(ql_op_name((ql_op_type)i), &op) == 0 && op == (ql_op_type)i);
    ql_param *p = ql_graph_param(g, "layer1.0.downsample.0.weight");
    CHECK(p && p->value->ndim == 4 && p->value->shape[0] == 16 && p->value->shape[1] == 8 &&
          p->value->shape[2] == 1 && p->value->shape[3] == 1);
    CHECK(ql_graph_param(g, "conv1.bias") == NULL);   /* bias = 0 before BN */
    p = ql_graph_param(g, "bn1.running_var");
    CHECK(p && !p->trainable && p->value->numel == 8);
    CHECK(ql_graph_param(g, "bn1.num_batches_tracked") == NULL);
    p = ql_graph_param(g, "fc.weight");
    CHECK(p && p->value->shape[0] == 5 && p->value->shape[1] == 16 && p->trainable);
    const ql_node *n = &g->nodes[ql_graph_find(g, "fc")];
    CHECK(n->a.in_ch == 16 && n->out_ndim == 1 && n->out_shape[0] == 5);
    n = &g->nodes[ql_graph_find(g, "layer1.0.add")];
    CHECK(n->out_ndim == 3 && n->out_shape[0] == 2 && n->out_shape[1] == 2 && n->out_shape[2] == 16);
    /* conv 3*8*9 + 8*16*9 + 16*16*9 + 8*16; bn 2*(8+16+16+16); fc 16*5+5 */
    CHECK(ql_graph_param_count(g) == 216 + 1152 + 2304 + 128 + 112 + 85);
    CHECK(ql_graph_find(g, "nope") == -1 && ql_graph_find(g, "input") == 0);
    ql_graph_free(g);

    g = test_build_lstm();
    p = ql_graph_param(g, "lstm.weight_ih_l1");
    CHECK(p && p->value->shape[0] == 24 && p->value->shape[1] == 6);
    p = ql_graph_param(g, "lstm.weight_ih_l0");
    CHECK(p && p->value->shape[0] == 24 && p->value->shape[1] == 4);
    CHECK(ql_graph_param(g, "lstm.bias_hh_l1") != NULL);
    n = &g->nodes[ql_graph_find(g, "proj")];
    CHECK(n->out_ndim == 2 && n->out_shape[0] == 5 && n->out_shape[1] == 6);
    ql_graph_free(g);
}

TEST(graph_forward_matches_kernels) {
    for (int bn = 0; bn <= 1; bn++) {
        ql_graph *g = test_build_resnet(bn);
        int64_t xs[4] = {3, 8, 8, 3};
        ql_tensor *x = test_random(4, xs, 1.0f);
        const ql_tensor *out;
        CHECK_OK(ql_graph_forward(g, x, &out, 0));
        float want[3 * 5];
        forward_by_hand(g, x, want, bn);
        CHECK(out->ndim == 2 && out->shape[0] == 3 && out->shape[1] == 5);
        CHECK_MSG(ql_test_maxrel(ql_f32(out), want, 15) < 1e-5, "bn=%d: maxrel %g", bn,
                  ql_test_maxrel(ql_f32(out), want, 15));
        /* a flat (N, 192) input is viewed as (N,8,8,3) */
        int64_t fs[2] = {3, 192};
        ql_tensor *flat = ql_tensor_new(QL_DTYPE_F32, 2, fs);
        memcpy(flat->data, x->data, ql_tensor_bytes(x));
        CHECK_OK(ql_graph_forward(g, flat, &out, 0));
        CHECK(ql_test_maxrel(ql_f32(out), want, 15) < 1e-5);
        ql_tensor_free(flat);
        ql_tensor_free(x);
        ql_graph_free(g);
    }
}

TEST(graph_lstm_forward_matches_kernels) {
    ql_graph *g = test_build_lstm();
    int64_t xs[3] = {2, 5, 4};
    ql_tensor *x = test_random(3, xs, 1.0f);
    const ql_tensor *out;
    CHECK_OK(ql_graph_forward(g, x, &out, 0));
    ql_lstm_shape s = {2, 5, 4, 6, 2};
    const float *wi[2] = {P(g, "lstm.weight_ih_l0"), P(g, "lstm.weight_ih_l1")};
    const float *wh[2] = {P(g, "lstm.weight_hh_l0"), P(g, "lstm.weight_hh_l1")};
    const float *bi[2] = {P(g, "lstm.bias_ih_l0"), P(g, "lstm.bias_ih_l1")};
    const float *bh[2] = {P(g, "lstm.bias_hh_l0"), P(g, "lstm.bias_hh_l1")};
    ql_lstm_weights wt = {wi, wh, bi, bh};
    float h[2 * 5 * 6], p[2 * 5 * 6], r[2 * 5 * 6], last[2 * 6], want[2 * 3];
    float *ws = malloc((ql_lstm_workspace_floats(&s) + 1) * sizeof *ws);
    ql_lstm_forward(&s, ql_f32(x), &wt, h, NULL, ws);
    ql_linear_forward(10, 6, 6, h, P(g, "proj.weight"), P(g, "proj.bias"), p);
    ql_relu_forward(60, p, r);
    ql_seq_last_forward(2, 5, 6, r, last);
    ql_linear_forward(2, 6, 3, last, P(g, "fc.weight"), P(g, "fc.bias"), want);
    CHECK(out->ndim == 2 && out->shape[0] == 2 && out->shape[1] == 3);
    CHECK(ql_test_maxrel(ql_f32(out), want, 6) < 1e-5);
    /* (N,5,4,1) images are viewed as (N,5,4) sequences */
    int64_t is[4] = {2, 5, 4, 1};
    ql_tensor *x4 = ql_tensor_new(QL_DTYPE_F32, 4, is);
    memcpy(x4->data, x->data, ql_tensor_bytes(x));
    CHECK_OK(ql_graph_forward(g, x4, &out, 0));
    CHECK(ql_test_maxrel(ql_f32(out), want, 6) < 1e-5);
    free(ws);
    ql_tensor_free(x4);
    ql_tensor_free(x);
    ql_graph_free(g);
}

/* loss = sum(out * R) in double, from a training-mode forward. */
static double loss_of(ql_graph *g, const ql_tensor *x, const ql_tensor *r) {
    const ql_tensor *out;
    CHECK_OK(ql_graph_forward(g, x, &out, 1));
    double l = 0;
    for (int64_t i = 0; i < out->numel; i++) l += (double)ql_f32(out)[i] * ql_f32(r)[i];
    return l;
}

/* Central differences on a few elements of a parameter (or of x when name is NULL). */
static void check_fd(ql_graph *g, ql_tensor *x, const ql_tensor *r, const char *name, const int *idx, int nidx) {
    ql_param *p = name ? ql_graph_param(g, name) : NULL;
    float *v = name ? ql_f32(p->value) : ql_f32(x);
    const float *ana = name ? ql_f32(p->grad) : ql_f32(ql_graph_input_grad(g));
    const float eps = 6e-4f;   /* small enough not to cross relu/maxpool kinks */
    for (int k = 0; k < nidx; k++) {
        int i = idx[k];
        float keep = v[i], a = ana[i];
        v[i] = keep + eps; g->version++;
        double lp = loss_of(g, x, r);
        v[i] = keep - eps; g->version++;
        double lm = loss_of(g, x, r);
        v[i] = keep; g->version++;
        double num = (lp - lm) / (2.0 * eps);
        CHECK_MSG(fabs(num - a) <= 1e-2 * fmax(1.0, fabs(num)), "%s[%d]: numeric %.6g, backward %.6g",
                  name ? name : "input", i, num, (double)a);
    }
}

/* Fresh gradients of the loss at the current point. */
static void gradients(ql_graph *g, const ql_tensor *x, const ql_tensor *r) {
    const ql_tensor *out;
    ql_graph_zero_grad(g);
    CHECK_OK(ql_graph_forward(g, x, &out, 1));
    CHECK_OK(ql_graph_backward(g, r));
}

TEST(graph_backward_finite_differences) {
    ql_graph *g = test_build_resnet(1);
    int64_t xs[4] = {3, 8, 8, 3}, rs[2] = {3, 5};
    ql_tensor *x = test_random(4, xs, 1.0f), *r = test_random(2, rs, 1.0f);
    CHECK_OK(ql_graph_alloc_grads(g));
    CHECK_OK(ql_graph_set_input_grad(g, 1));
    gradients(g, x, r);
    const ql_tensor *ig = ql_graph_input_grad(g);
    CHECK(ig && ig->numel == x->numel);
    int i_in[] = {0, 17, 100, 191, 300, 575};
    int i_c1[] = {0, 5, 77, 215}, i_l2[] = {3, 999, 2303}, i_ds[] = {0, 64, 127}, i_fc[] = {0, 41, 79};
    int i_b[] = {0, 3, 7}, i_fb[] = {0, 4};
    check_fd(g, x, r, NULL, i_in, 6);
    check_fd(g, x, r, "conv1.weight", i_c1, 4);
    check_fd(g, x, r, "layer1.0.conv2.weight", i_l2, 3);
    check_fd(g, x, r, "layer1.0.downsample.0.weight", i_ds, 3);
    check_fd(g, x, r, "bn1.weight", i_b, 3);
    check_fd(g, x, r, "layer1.0.bn2.bias", i_b, 3);
    check_fd(g, x, r, "fc.weight", i_fc, 3);
    check_fd(g, x, r, "fc.bias", i_fb, 2);
    /* grads accumulate: a second backward doubles them */
    ql_param *fw = ql_graph_param(g, "fc.weight");
    float once = ql_f32(fw->grad)[7];
    const ql_tensor *out;
    CHECK_OK(ql_graph_forward(g, x, &out, 1));
    CHECK_OK(ql_graph_backward(g, r));
    CHECK_NEAR(ql_f32(fw->grad)[7], 2 * once, 1e-5);
    ql_tensor_free(x);
    ql_tensor_free(r);
    ql_graph_free(g);
}

TEST(graph_lstm_backward_finite_differences) {
    ql_graph *g = test_build_lstm();
    int64_t xs[3] = {3, 5, 4}, rs[2] = {3, 3};
    ql_tensor *x = test_random(3, xs, 1.0f), *r = test_random(2, rs, 1.0f);
    CHECK_OK(ql_graph_alloc_grads(g));
    CHECK_OK(ql_graph_set_input_grad(g, 1));
    gradients(g, x, r);
    int i_in[] = {0, 9, 33, 59}, i_ih0[] = {0, 50, 95}, i_hh1[] = {1, 70, 143}, i_b[] = {0, 11, 23};
    int i_p[] = {0, 20, 35}, i_pb[] = {0, 5};
    check_fd(g, x, r, NULL, i_in, 4);
    check_fd(g, x, r, "lstm.weight_ih_l0", i_ih0, 3);
    check_fd(g, x, r, "lstm.weight_hh_l1", i_hh1, 3);
    check_fd(g, x, r, "lstm.bias_hh_l0", i_b, 3);
    check_fd(g, x, r, "proj.weight", i_p, 3);
    check_fd(g, x, r, "proj.bias", i_pb, 2);
    ql_tensor_free(x);
    ql_tensor_free(r);
    ql_graph_free(g);
}

TEST(graph_inference_reuses_memory) {
    ql_graph *g = test_build_resnet(0);
    int64_t xs[4] = {4, 8, 8, 3}, x2s[4] = {2, 8, 8, 3};
    ql_tensor *x = test_random(4, xs, 1.0f), *x2 = test_random(4, x2s, 1.0f);
    const ql_tensor *out;
    /* training keeps every activation (no reuse); inference must agree bit for bit */
    CHECK_OK(ql_graph_forward(g, x, &out, 1));
    float keep[4 * 5];
    memcpy(keep, out->data, sizeof keep);
    for (int i = 0; i < g->nnodes; i++) CHECK(ql_graph_activation(g, i) != NULL);
    CHECK_OK(ql_graph_forward(g, x, &out, 0));
    CHECK(!memcmp(keep, out->data, sizeof keep));
    for (int i = 0; i < g->nnodes; i++) CHECK((ql_graph_activation(g, i) != NULL) == (i == g->output));
    /* steady state: the same batch again allocates nothing, nor does a smaller one */
    int64_t m1 = ql_mem_current();
    CHECK_OK(ql_graph_forward(g, x, &out, 0));
    CHECK(ql_mem_current() == m1);
    CHECK_OK(ql_graph_forward(g, x2, &out, 0));
    CHECK_OK(ql_graph_forward(g, x, &out, 0));
    CHECK(ql_mem_current() == m1);
    CHECK(!memcmp(keep, out->data, sizeof keep));
    /* reuse: inference holds less than training */
    ql_graph_release(g);
    int64_t m0 = ql_mem_current();
    CHECK_OK(ql_graph_forward(g, x, &out, 0));
    int64_t inf = ql_mem_current() - m0;
    ql_graph_release(g);
    CHECK(ql_mem_current() == m0);
    CHECK_OK(ql_graph_forward(g, x, &out, 1));
    int64_t tr = ql_mem_current() - m0;
    CHECK_MSG(inf < tr, "inference %lld bytes, training %lld", (long long)inf, (long long)tr);
    ql_graph_release(g);
    CHECK(ql_graph_activation(g, g->output) == NULL);
    /* profile mode */
    g->profile = 1;
    CHECK_OK(ql_graph_forward(g, x, &out, 0));
    double ms = 0;
    for (int i = 0; g->node_ms && i < g->nnodes; i++) ms += g->node_ms[i];
    CHECK(g->node_ms && ms > 0);
    ql_tensor_free(x);
    ql_tensor_free(x2);
    ql_graph_free(g);
}

TEST(graph_clone_is_deep) {
    ql_graph *g = test_build_resnet(1);
    int64_t xs[4] = {2, 8, 8, 3};
    ql_tensor *x = test_random(4, xs, 1.0f);
    const ql_tensor *out;
    CHECK_OK(ql_graph_forward(g, x, &out, 0));
    float a[10], b[10];
    memcpy(a, out->data, sizeof a);
    ql_graph *c = ql_graph_clone(g);
    CHECK(c && c->nnodes == g->nnodes && c->output == g->output);
    for (int i = 0; c && i < g->nnodes; i++) {
        CHECK(!strcmp(c->nodes[i].name, g->nodes[i].name) && c->nodes[i].name != g->nodes[i].name);
        CHECK(c->nodes[i].nparams == g->nodes[i].nparams && !memcmp(&c->nodes[i].a, &g->nodes[i].a, sizeof(ql_attrs)));
        for (int k = 0; k < g->nodes[i].nparams; k++) {
            ql_tensor *pv = g->nodes[i].params[k].value, *cv = c->nodes[i].params[k].value;
            CHECK(pv != cv && ql_tensor_same_shape(pv, cv) && !memcmp(pv->data, cv->data, ql_tensor_bytes(pv)));
        }
    }
    CHECK_OK(ql_graph_forward(c, x, &out, 0));
    memcpy(b, out->data, sizeof b);
    CHECK(!memcmp(a, b, sizeof a));
    /* changing the clone leaves the original alone */
    P(c, "conv1.weight")[0] += 1.0f;
    c->version++;
    CHECK_OK(ql_graph_forward(c, x, &out, 0));
    CHECK(memcmp(a, out->data, sizeof a) != 0);
    CHECK_OK(ql_graph_forward(g, x, &out, 0));
    CHECK(!memcmp(a, out->data, sizeof a));
    ql_graph_free(c);
    ql_tensor_free(x);
    ql_graph_free(g);
}

static void expect_bad_add(ql_graph *g, const char *name, ql_op_type op, const int *in, int nin,
                           const ql_attrs *a, const char *msg) {
    int before = g->nnodes;
    int r = ql_graph_add(g, name, op, in, nin, a);
    CHECK_MSG(r == -1 && g->nnodes == before, "adding %s should fail", name);
    CHECK_MSG(strstr(ql_last_error(), msg) != NULL, "error '%s' lacks '%s'", ql_last_error(), msg);
}

TEST(graph_rejects_bad_adds) {
    int64_t in[1] = {2048};
    ql_graph *g = ql_graph_new(1, in);
    ql_attrs a;
    ql_attrs_default(&a);
    a.in_ch = 512;
    a.out_ch = 10;
    int zero = 0;
    expect_bad_add(g, "fc", QL_OP_LINEAR, &zero, 1, &a, "node 'fc': linear expects 512 input features, got 2048");
    a.in_ch = 0;
    CHECK(ql_graph_add(g, "fc", QL_OP_LINEAR, &zero, 1, &a) == 1);
    expect_bad_add(g, "fc", QL_OP_RELU, &zero, 1, NULL, "duplicate node name 'fc'");
    int bad = 7;
    expect_bad_add(g, "r", QL_OP_RELU, &bad, 1, NULL, "input index 7");
    expect_bad_add(g, "r", QL_OP_RELU, &zero, 0, NULL, "relu takes 1 input, got 0");
    expect_bad_add(g, "in2", QL_OP_INPUT, NULL, 0, NULL, "one input node");
    expect_bad_add(g, "", QL_OP_RELU, &zero, 1, NULL, "empty");
    expect_bad_add(g, "c", QL_OP_CONV2D, &zero, 1, &a, "conv2d expects an {H,W,C} input, got (2048)");
    int two[2] = {0, 1};
    expect_bad_add(g, "sum", QL_OP_ADD, two, 2, NULL, "add inputs differ: (2048) from 'input' and (10) from 'fc'");
    expect_bad_add(g, "l", QL_OP_LSTM, &zero, 1, &a, "lstm expects a {T,F} input");
    ql_graph_free(g);

    int64_t im[3] = {8, 8, 6};
    g = ql_graph_new(3, im);
    ql_attrs c = conv_a(3, 1, 1, 8, 1);
    c.groups = 4;
    expect_bad_add(g, "c", QL_OP_CONV2D, &zero, 1, &c, "groups=4 must divide in_ch=6 and out_ch=8");
    c = conv_a(0, 1, 1, 8, 1);
    expect_bad_add(g, "c", QL_OP_CONV2D, &zero, 1, &c, "kernel must be >= 1");
    c = conv_a(3, 1, -1, 8, 1);
    expect_bad_add(g, "c", QL_OP_CONV2D, &zero, 1, &c, "padding must be >= 0");
    c = conv_a(3, 0, 1, 8, 1);
    expect_bad_add(g, "c", QL_OP_CONV2D, &zero, 1, &c, "stride must be >= 1");
    c = conv_a(3, 1, 1, 8, 1);
    c.in_ch = 3;
    expect_bad_add(g, "c", QL_OP_CONV2D, &zero, 1, &c, "conv2d expects 3 input channels, got 6");
    c = conv_a(11, 1, 1, 8, 1);
    expect_bad_add(g, "c", QL_OP_CONV2D, &zero, 1, &c, "larger than the padded input");
    c = conv_a(2, 2, 2, 0, 0);
    expect_bad_add(g, "p", QL_OP_MAXPOOL2D, &zero, 1, &c, "at most half the kernel");
    expect_bad_add(g, "f", QL_OP_LINEAR, &zero, 1, &a, "flatten or global_avgpool it first");
    expect_bad_add(g, "s", QL_OP_SEQ_LAST, &zero, 1, NULL, "seq_last expects a {T,H} input");
    ql_attrs b;
    ql_attrs_default(&b);
    b.eps = 0;
    expect_bad_add(g, "bn", QL_OP_BATCHNORM2D, &zero, 1, &b, "eps must be > 0");
    CHECK(ql_graph_set_output(g, 5) != QL_OK);
    /* depthwise and grouped convs are fine */
    c = conv_a(3, 1, 1, 6, 1);
    c.groups = 6;
    int dw = ql_graph_add(g, "dw", QL_OP_CONV2D, &zero, 1, &c);
    CHECK(dw == 1 && ql_graph_param(g, "dw.weight")->value->shape[1] == 1);
    ql_graph_free(g);
}

TEST(graph_forward_backward_errors) {
    ql_graph *g = test_build_resnet(1);
    int64_t bs[2] = {2, 100}, xs[4] = {2, 8, 8, 3};
    ql_tensor *bad = test_random(2, bs, 1.0f), *x = test_random(4, xs, 1.0f);
    const ql_tensor *out;
    CHECK(ql_graph_forward(g, bad, &out, 0) == QL_ESHAPE && out == NULL);
    CHECK_MSG(strstr(ql_last_error(), "(2,100)") && strstr(ql_last_error(), "(8,8,3)"), "%s", ql_last_error());
    int64_t ds[2] = {2, 5};
    ql_tensor *dout = test_random(2, ds, 1.0f);
    CHECK_OK(ql_graph_forward(g, x, &out, 0));
    CHECK(ql_graph_backward(g, dout) == QL_ESTATE);
    CHECK_OK(ql_graph_forward(g, x, &out, 1));
    CHECK(ql_graph_backward(g, bad) == QL_ESHAPE);
    CHECK_OK(ql_graph_backward(g, dout));   /* no grads allocated: nothing to do, still fine */
    ql_tensor_free(bad);
    ql_tensor_free(x);
    ql_tensor_free(dout);
    ql_graph_free(g);
}

static int cancel_at_two(void *ud, int64_t done, int64_t total, const char *label) {
    int *calls = ud;
    (*calls)++;
    return done >= 2;
}

TEST(graph_evaluate) {
    /* sample s lights pixel s%3; fc picks the lit pixel: class s%3 */
    enum { N = 10 };
    uint8_t images[N * 4] = {0};
    int32_t labels[N];
    for (int s = 0; s < N; s++) {
        images[s * 4 + s % 3] = 255;
        labels[s] = s < 7 ? s % 3 : (s + 1) % 3;
    }
    ql_dataset d = {.name = "toy", .n = N, .h = 2, .w = 2, .c = 1, .images = images, .labels = labels, .nclasses = 3};
    ql_loader_opts o;
    ql_loader_opts_default(&o);
    o.batch = 4;
    ql_loader *ld = ql_loader_new(&d, &o);
    int64_t in[3] = {2, 2, 1};
    ql_graph *g = ql_graph_new(3, in);
    ql_attrs a;
    ql_attrs_default(&a);
    a.out_ch = 3;
    int f = add1(g, "flatten", QL_OP_FLATTEN, 0, NULL);
    add1(g, "fc", QL_OP_LINEAR, f, &a);
    float *w = P(g, "fc.weight");
    for (int j = 0; j < 3; j++) w[j * 4 + j] = 1.0f;
    g->version++;
    ql_eval_result r;
    int calls = 0;
    ql_progress p = {cancel_at_two, &calls};
    ql_progress none = {NULL, NULL};
    CHECK_OK(ql_evaluate(g, NULL, ld, &none, &r));
    CHECK(r.n == N);
    CHECK_NEAR(r.top1, 70.0, 1e-9);
    CHECK_NEAR(r.top5, 100.0, 1e-9);
    double e = exp(1.0), want = (7 * -log(e / (e + 2)) + 3 * -log(1 / (e + 2))) / N;
    CHECK_NEAR(r.loss, want, 1e-5);
    CHECK(ql_evaluate(g, NULL, ld, &p, &r) == QL_ECANCEL && calls == 2);
    CHECK_OK(ql_evaluate(g, NULL, ld, NULL, &r));   /* and again from the start */
    CHECK(r.n == N);
    labels[3] = 7;
    CHECK(ql_evaluate(g, NULL, ld, NULL, &r) == QL_EINVAL && strstr(ql_last_error(), "label 7"));
    ql_graph_free(g);
    ql_loader_free(ld);
}

/* Inference fusion (conv absorbs its batchnorm and relu, add absorbs its relu)
 * gives what running every node alone gives, to float rounding, and leaves no
 * fused part's activation behind; keep_all and observing turn it off. */
TEST(graph_inference_fusion_matches_unfused) {
    ql_graph *g = test_build_resnet(1);
    int64_t xs[4] = {6, 8, 8, 3};
    ql_tensor *x = test_random(4, xs, 1.0f);
    const ql_tensor *out;
    g->no_fusion = 1;
    CHECK_OK(ql_graph_forward(g, x, &out, 0));
    float ref[6 * 5];
    memcpy(ref, out->data, sizeof ref);
    g->no_fusion = 0;
    CHECK_OK(ql_graph_forward(g, x, &out, 0));
    double d = 0, m = 1e-30;
    for (int i = 0; i < 6 * 5; i++) {
        d = fmax(d, fabs((double)ql_f32(out)[i] - ref[i]));
        m = fmax(m, fabs((double)ref[i]));
    }
    CHECK_MSG(d / m < 1e-5, "fused vs unfused: max |diff| %g of max |y| %g", d, m);
    for (int i = 0; i < g->nnodes; i++) CHECK((ql_graph_activation(g, i) != NULL) == (i == g->output));
    /* keep_all: every node's own value, the batchnorm's equal to the unfused run's */
    g->keep_all = 1;
    CHECK_OK(ql_graph_forward(g, x, &out, 0));
    for (int i = 1; i < g->nnodes; i++) CHECK(ql_graph_activation(g, i) != NULL);   /* 0 is the caller's x */
    int bn = -1;
    for (int i = 0; i < g->nnodes; i++) if (!strcmp(g->nodes[i].name, "bn1")) bn = i;
    CHECK(bn > 0 && ql_graph_activation(g, bn) != ql_graph_activation(g, bn - 1));
    for (int i = 0; i < 6 * 5; i++) CHECK(ql_f32(out)[i] == ref[i]);
    ql_tensor_free(x);
    ql_graph_free(g);
}
