/* The top-k rule: ties go to the lower class index (torch.argmax / topk),
 * a NaN ranks above every number and a NaN label logit is never right, and
 * the counts against a reference (agreement, flips) on known rows. */
#include <math.h>
#include "test.h"
#include "qlab/topk.h"

TEST(topk_ties_go_to_the_lower_index) {
    const float row[6] = {0.5f, 2.0f, -1.0f, 2.0f, 0.5f, 1.0f};
    ql_topk t = ql_topk_row(row, 6, 1);
    CHECK(t.pred == 1 && t.rank == 0 && t.tied);
    t = ql_topk_row(row, 6, 3);            // tied with a lower index: second
    CHECK(t.pred == 1 && t.rank == 1);
    t = ql_topk_row(row, 6, 0);            // 2.0, 2.0, 1.0 above; 0.5 at index 4 after it
    CHECK(t.rank == 3);
    t = ql_topk_row(row, 6, 4);
    CHECK(t.rank == 4);
    t = ql_topk_row(row, 6, 2);
    CHECK(t.rank == 5);
    const float clear[3] = {0.1f, 0.3f, 0.2f};
    t = ql_topk_row(clear, 3, 2);
    CHECK(t.pred == 1 && t.rank == 1 && !t.tied);
    const float all_equal[4] = {1, 1, 1, 1};
    for (int y = 0; y < 4; y++) CHECK(ql_topk_row(all_equal, 4, y).rank == y);
    CHECK(ql_topk_row(all_equal, 4, -1).rank == 4 && ql_topk_row(all_equal, 4, 9).rank == 4);
}

TEST(topk_nan_is_never_right) {
    const float row[4] = {1.0f, NAN, 3.0f, NAN};
    ql_topk t = ql_topk_row(row, 4, 1);
    CHECK(t.pred == 1 && t.rank == 4 && t.tied);   // argmax is the first NaN, as in PyTorch; still no hit
    t = ql_topk_row(row, 4, 2);                     // both NaNs rank above 3.0
    CHECK(t.rank == 2);
    const float inf[3] = {-INFINITY, INFINITY, INFINITY};
    t = ql_topk_row(inf, 3, 2);
    CHECK(t.pred == 1 && t.rank == 1 && t.tied);
}

TEST(topk_counts_agreement_and_flips) {
    // rows: model / reference logits, labels 0, 1, 2, 0
    const float m[4 * 3] = {1, 0, 0,   0, 1, 0,   1, 1, 0,   0, 0, 1};
    const float r[4 * 3] = {1, 0, 0,   1, 0, 0,   0, 0, 1,   0, 0, 1};
    const int32_t y[4] = {0, 1, 2, 0};
    ql_topk_counts k = {0};
    ql_topk_count(&k, m, r, 4, 3, y);
    CHECK(k.n == 4 && k.ref_rows == 4);
    CHECK(k.top1 == 2 && k.top5 == 4 && k.ties == 1);
    CHECK(k.ref_top1 == 2);                       // the reference is right on rows 0 and 2
    CHECK(k.agree == 2);                          // rows 0 and 3
    CHECK(k.ref_right_wrong == 1 && k.ref_wrong_right == 1);   // row 2 lost, row 1 gained
    CHECK(k.top1 - k.ref_top1 == k.ref_wrong_right - k.ref_right_wrong);
    ql_topk_counts none = {0};
    ql_topk_count(&none, m, NULL, 4, 3, NULL);
    CHECK(none.n == 4 && none.top1 == 0 && none.ref_rows == 0 && none.ties == 1);
}
