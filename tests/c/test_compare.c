/* The numeric comparison behind qlab.compare / qlab.sensitivity: SQNR, MSE
 * and max error sums (f32 and u8 read through its qparams), +inf for equal
 * tensors, accumulation over batches, and the logits KL / agreement. */
#include <math.h>
#include "test.h"
#include "qlab/compare.h"

static ql_tensor *vec(const float *v, int64_t n) {
    ql_tensor *t = ql_tensor_new(QL_DTYPE_F32, 1, &n);
    for (int64_t i = 0; i < n; i++) ql_f32(t)[i] = v[i];
    return t;
}

TEST(compare_identical_is_inf) {
    static const float x[4] = {1, -2, 3, 0.5f};
    ql_tensor *a = vec(x, 4), *b = vec(x, 4);
    ql_compare_sums s;
    ql_compare_init(&s);
    CHECK_OK(ql_compare_accumulate(&s, a, b));
    CHECK(isinf(ql_compare_sqnr_db(&s)) && ql_compare_sqnr_db(&s) > 0);
    CHECK(ql_compare_mse(&s) == 0 && s.max_abs == 0 && s.n == 4);
    ql_tensor_free(a); ql_tensor_free(b);
}

TEST(compare_f32_sums) {
    static const float x[4] = {1, -2, 3, 4}, y[4] = {1.5f, -2, 2, 4};
    ql_tensor *a = vec(x, 4), *b = vec(y, 4);
    ql_compare_sums s;
    ql_compare_init(&s);
    CHECK_OK(ql_compare_accumulate(&s, a, b));
    // sum x^2 = 30, sum e^2 = 0.25 + 1 = 1.25
    CHECK_NEAR(s.sum_ref2, 30, 1e-12);
    CHECK_NEAR(s.sum_err2, 1.25, 1e-12);
    CHECK_NEAR(ql_compare_sqnr_db(&s), 10 * log10(30 / 1.25), 1e-12);
    CHECK_NEAR(ql_compare_mse(&s), 1.25 / 4, 1e-12);
    CHECK_NEAR(s.max_abs, 1, 1e-12);
    // a second batch accumulates: same again leaves the SQNR, doubles n
    CHECK_OK(ql_compare_accumulate(&s, a, b));
    CHECK(s.n == 8);
    CHECK_NEAR(ql_compare_sqnr_db(&s), 10 * log10(30 / 1.25), 1e-12);
    ql_tensor_free(a); ql_tensor_free(b);
}

TEST(compare_u8_dequantizes) {
    // (N,H,W,C) = (1,1,2,2): u8 read as scale * (q - zp)
    static const float x[4] = {0.0f, 0.5f, -0.25f, 1.0f};
    ql_tensor *a = ql_tensor_new4(QL_DTYPE_F32, 1, 1, 2, 2), *q = ql_tensor_new4(QL_DTYPE_U8, 1, 1, 2, 2);
    for (int i = 0; i < 4; i++) ql_f32(a)[i] = x[i];
    q->scale = 0.25f;
    q->zero_point = 10;
    uint8_t *c = q->data;
    c[0] = 10; c[1] = 12; c[2] = 9; c[3] = 13;   /* 0, 0.5, -0.25, 0.75 */
    ql_compare_sums s;
    ql_compare_init(&s);
    CHECK_OK(ql_compare_accumulate(&s, a, q));
    CHECK_NEAR(s.sum_err2, 0.0625, 1e-12);
    CHECK_NEAR(s.max_abs, 0.25, 1e-12);
    CHECK_NEAR(ql_compare_sqnr_db(&s), 10 * log10((0.25 + 0.0625 + 1) / 0.0625), 1e-9);
    c[3] = 14;
    ql_compare_init(&s);
    CHECK_OK(ql_compare_accumulate(&s, a, q));
    CHECK(isinf(ql_compare_sqnr_db(&s)));
    ql_tensor_free(a); ql_tensor_free(q);
}

TEST(compare_f16_and_errors) {
    static const float x[3] = {1.0f, -2.0f, 0.5f};
    ql_tensor *a = vec(x, 3);
    int64_t n = 3;
    ql_tensor *h = ql_tensor_new(QL_DTYPE_F16, 1, &n);
    uint16_t *p = h->data;
    p[0] = 0x3c00; p[1] = 0xc000; p[2] = 0x3800;   /* 1, -2, 0.5 */
    ql_compare_sums s;
    ql_compare_init(&s);
    CHECK_OK(ql_compare_accumulate(&s, a, h));
    CHECK(s.sum_err2 == 0);
    ql_tensor *b = ql_tensor_new(QL_DTYPE_F32, 1, (int64_t[]){2});
    CHECK(ql_compare_accumulate(&s, a, b) == QL_ESHAPE);
    CHECK(ql_compare_accumulate(&s, h, a) == QL_EINVAL);   /* the reference must be f32 */
    ql_tensor_free(a); ql_tensor_free(h); ql_tensor_free(b);
}

TEST(compare_logits_kl_and_agreement) {
    // two rows of two classes; labels 0 and 1
    static const float r[4] = {2, 0, 0, 1}, q[4] = {0, 0, 0, 3};
    ql_tensor *a = ql_tensor_new4(QL_DTYPE_F32, 2, 2, 1, 1), *b = ql_tensor_new4(QL_DTYPE_F32, 2, 2, 1, 1);
    ql_tensor_reshape(a, 2, (int64_t[]){2, 2});
    ql_tensor_reshape(b, 2, (int64_t[]){2, 2});
    for (int i = 0; i < 4; i++) { ql_f32(a)[i] = r[i]; ql_f32(b)[i] = q[i]; }
    ql_tensor *y = ql_tensor_new(QL_DTYPE_S32, 1, (int64_t[]){2});
    ((int32_t *)y->data)[0] = 0; ((int32_t *)y->data)[1] = 1;
    ql_logit_sums s;
    ql_logit_sums_init(&s);
    CHECK_OK(ql_compare_logits(&s, a, b, y));
    // KL(p || q) by hand, row 1: p = softmax(2,0), q = (1/2, 1/2); row 2: p = softmax(0,1), q = softmax(0,3)
    double p0 = 1 / (1 + exp(-2.0)), p1 = 1 - p0;
    double kl1 = p0 * log(p0 / 0.5) + p1 * log(p1 / 0.5);
    double u0 = 1 / (1 + exp(1.0)), u1 = 1 - u0, v0 = 1 / (1 + exp(3.0)), v1 = 1 - v0;
    double kl2 = u0 * log(u0 / v0) + u1 * log(u1 / v1);
    CHECK_NEAR(s.kl, kl1 + kl2, 1e-9);
    CHECK(s.rows == 2);
    CHECK(s.agree == 2);          /* row 1: argmax of a tie is the first class */
    CHECK(s.correct_ref == 2 && s.correct_approx == 2);
    ql_logit_sums_init(&s);
    CHECK_OK(ql_compare_logits(&s, a, a, NULL));
    CHECK(s.kl == 0 && s.agree == 2 && s.correct_ref == 0);
    ql_tensor_free(a); ql_tensor_free(b); ql_tensor_free(y);
}
