/* The benchmark suite's engine side: measured peak per ISA level, the
 * machine record, MACs per image and the planned activation bytes. */
#include <string.h>
#include "test.h"
#include "qlab/alloc.h"
#include "qlab/graphstats.h"
#include "qlab/machine.h"
#include "qlab/peak.h"

ql_graph *test_build_lstm(void);   /* test_graph.c */
ql_tensor *test_random(int ndim, const int64_t *shape, float scale);

TEST(peak_positive_for_every_level_the_cpu_has) {
    ql_peak p[QL_ISA_COUNT];
    int n = ql_peak_measure_all(3, p);
    CHECK(n == (int)ql_isa_best() + 1);
    double total = 0;
    for (int i = 0; i < n; i++) {
        CHECK(p[i].isa == (ql_isa)i);
        CHECK_MSG(p[i].fp32_gmacs > 0.1 && p[i].int8_gmacs > 0.1, "%s: fp32 %.3g int8 %.3g GMAC/s",
                  ql_isa_name(p[i].isa), p[i].fp32_gmacs, p[i].int8_gmacs);
        CHECK(p[i].fp32_gmacs < 1e4 && p[i].int8_gmacs < 1e5);   // one core: no more than a few TMAC/s
        total += p[i].seconds;
        // vectors beat the scalar reference by far (8+ lanes); CPU time, so a busy machine does not matter
        if (i > 0) CHECK_MSG(p[i].int8_gmacs > 2 * p[0].int8_gmacs && p[i].fp32_gmacs > 2 * p[0].fp32_gmacs,
                             "%s %.3g/%.3g vs scalar %.3g/%.3g", ql_isa_name(p[i].isa), p[i].fp32_gmacs,
                             p[i].int8_gmacs, p[0].fp32_gmacs, p[0].int8_gmacs);
    }
    CHECK_MSG(total < 1.0, "peak took %.3f s", total);
}

TEST(peak_rejects_a_level_above_the_cpu) {
    ql_peak p;
    if (ql_isa_best() < QL_ISA_AVX512) {
        CHECK(ql_peak_measure(QL_ISA_AVX512, 1, &p) == QL_EUNSUPPORTED);
        CHECK(strstr(ql_last_error(), "avx512") != NULL);
    }
    if (ql_isa_best() < QL_ISA_AMX) {
        CHECK(ql_peak_measure(QL_ISA_AMX, 1, &p) == QL_EUNSUPPORTED);
        CHECK(strstr(ql_last_error(), "amx") != NULL);
    }
    CHECK(ql_peak_measure((ql_isa)7, 1, &p) == QL_EUNSUPPORTED);
}

TEST(machine_record) {
    ql_machine m;
    ql_machine_get(&m);
    CHECK(m.cpu_model[0] != 0);
    CHECK(m.cores >= 1 && m.threads >= 1);
    CHECK(m.isa_active <= m.isa_best && m.openblas_isa <= m.isa_best);
    CHECK(strstr(m.openblas_config, "OpenBLAS") != NULL);
    CHECK(m.openblas_core[0] != 0);
    CHECK(strstr(m.kernel, "Linux") != NULL);
    int has_coretype = 0;
    for (int i = 0; ql_machine_env_vars[i]; i++) has_coretype |= !strcmp(ql_machine_env_vars[i], "OPENBLAS_CORETYPE");
    CHECK(has_coretype);
}

TEST(macs_of_an_lstm_graph) {
    ql_graph *g = test_build_lstm();   // {5,4} -> lstm(6, 2 layers) -> proj 6 -> last -> fc 3
    int64_t by[QL_MACS_KINDS];
    // layer 0: 5 steps x 24 gates x (4 + 6); layer 1: 5 x 24 x (6 + 6); proj 5 x 6 x 6; fc 3 x 6
    CHECK(ql_graph_macs(g, by) == 1200 + 1440 + 180 + 18);
    CHECK(by[QL_MACS_F32] == 2838 && by[QL_MACS_INT8] == 0 && by[QL_MACS_NONE] == 0);
    ql_macs_kind k;
    CHECK(ql_node_macs(g, ql_graph_find(g, "act"), &k) == 0 && k == QL_MACS_NONE);
    ql_graph_free(g);
}

/* {8,8,3} -> conv 3x3 (4) -> depthwise 3x3 (groups 4) -> global avgpool -> fc 2 */
static ql_graph *conv_graph(void) {
    int64_t in[3] = {8, 8, 3};
    ql_graph *g = ql_graph_new(3, in);
    ql_attrs a;
    ql_attrs_default(&a);
    a.kernel[0] = a.kernel[1] = 3;
    a.padding[0] = a.padding[1] = 1;
    a.out_ch = 4;
    int x = 0;
    x = ql_graph_add(g, "conv1", QL_OP_CONV2D, &x, 1, &a);
    a.groups = 4;
    x = ql_graph_add(g, "dw", QL_OP_CONV2D, &x, 1, &a);
    x = ql_graph_add(g, "pool", QL_OP_GLOBAL_AVGPOOL, &x, 1, NULL);
    ql_attrs_default(&a);
    a.out_ch = 2;
    x = ql_graph_add(g, "fc", QL_OP_LINEAR, &x, 1, &a);
    CHECK_MSG(x > 0, "%s", ql_last_error());
    ql_graph_init_params(g, ql_rng_global());
    return g;
}

TEST(macs_of_convolutions_and_plan_bytes) {
    ql_graph *g = conv_graph();
    CHECK(ql_graph_macs(g, NULL) == 64 * 4 * 3 * 9 + 64 * 4 * 1 * 9 + 4 * 2);
    // conv1 and dw outputs (256 floats each) cannot share; pool reuses conv1's slot, fc dw's
    CHECK(ql_graph_plan_bytes(g, 1) == 2 * 256 * 4);
    CHECK(ql_graph_plan_bytes(g, 2) == 2 * 2 * 256 * 4);
    // the runtime holds at least the planned buffers after one forward
    int64_t shape[4] = {2, 8, 8, 3};
    ql_tensor *x = test_random(4, shape, 1);
    const ql_tensor *y;
    int64_t before = ql_mem_current();
    CHECK_OK(ql_graph_forward(g, x, &y, 0));
    CHECK(ql_mem_current() - before >= ql_graph_plan_bytes(g, 2));
    ql_tensor_free(x);
    ql_graph_free(g);
}
