/* The benchmark suite's C side from Lua (engine: src/bench/{peak,machine,graphstats,samples}.c):
 *   qlab.machine() -> {cpu_model, vendor, family, model, stepping, cores, threads, isa, isa_best,
 *                      openblas = {config, core, isa, threads}, env = {NAME = value | false},
 *                      kernel, compiler, qlab_version, lua_version, cjson_version}
 *   qlab.peak([{target_ms =, isa = "scalar"|"avx2"|"avx512"|"amx"}])
 *       -> {levels = {{isa, fp32_gmacs, int8_gmacs, seconds}, ...} scalar first, seconds}
 *   qlab.macs(model) -> {total, f32, int8, live = {total, f32, int8}, nodes = {{name, op, macs, live, kind}, ...}}
 *                       per image; live: only the taps that read the image, not its padding
 *   qlab.plan_bytes(model, batch) -> bytes of the planned activation buffers
 *   qlab._bench_samples(model, input, runs, warmup [, label [, progress]]) -> {ms, ...}
 *       progress(done, total, label) may return true to cancel (error "cancelled"). */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "lqlab.h"
#include "qlab/alloc.h"
#include "qlab/graphstats.h"
#include "qlab/machine.h"
#include "qlab/peak.h"
#include "qlab/samples.h"
#include "qlab/version.h"

static void set_str(lua_State *L, const char *k, const char *v) { lua_pushstring(L, v); lua_setfield(L, -2, k); }
static void set_int(lua_State *L, const char *k, lua_Integer v) { lua_pushinteger(L, v); lua_setfield(L, -2, k); }
static void set_num(lua_State *L, const char *k, double v) { lua_pushnumber(L, v); lua_setfield(L, -2, k); }

static int l_machine(lua_State *L) {
    ql_machine m;
    ql_machine_get(&m);
    lua_createtable(L, 0, 16);
    set_str(L, "cpu_model", m.cpu_model);
    set_str(L, "vendor", m.vendor);
    set_int(L, "family", m.family);
    set_int(L, "model", m.model);
    set_int(L, "stepping", m.stepping);
    set_int(L, "cores", m.cores);
    set_int(L, "threads", m.threads);
    set_str(L, "isa", ql_isa_name(m.isa_active));
    set_str(L, "isa_best", ql_isa_name(m.isa_best));
    lua_createtable(L, 0, 4);
    set_str(L, "config", m.openblas_config);
    set_str(L, "core", m.openblas_core);
    set_str(L, "isa", ql_isa_name(m.openblas_isa));
    set_int(L, "threads", m.openblas_threads);
    lua_setfield(L, -2, "openblas");
    lua_createtable(L, 0, 8);
    for (int i = 0; ql_machine_env_vars[i]; i++) {
        const char *v = getenv(ql_machine_env_vars[i]);
        if (v) lua_pushstring(L, v); else lua_pushboolean(L, 0);
        lua_setfield(L, -2, ql_machine_env_vars[i]);
    }
    lua_setfield(L, -2, "env");
    set_str(L, "kernel", m.kernel);
    set_str(L, "compiler", m.compiler);
    set_str(L, "qlab_version", QLAB_VERSION);
    set_str(L, "lua_version", LUA_RELEASE);
    set_str(L, "cjson_version", cJSON_Version());
    return 1;
}

static void push_peak(lua_State *L, const ql_peak *p) {
    lua_createtable(L, 0, 4);
    set_str(L, "isa", ql_isa_name(p->isa));
    set_num(L, "fp32_gmacs", p->fp32_gmacs);
    set_num(L, "int8_gmacs", p->int8_gmacs);
    set_num(L, "seconds", p->seconds);
}

static int l_peak(lua_State *L) {
    static const char *const keys[] = {"target_ms", "isa", NULL};
    lq_check_keys(L, 1, "peak", keys);
    double target = lq_opt_num(L, 1, "target_ms", 15);
    const char *isa = lq_opt_str(L, 1, "isa", NULL);
    ql_peak p[QL_ISA_COUNT];
    int n;
    if (isa) {
        ql_isa want;
        if (!strcmp(isa, "scalar")) want = QL_ISA_SCALAR;
        else if (!strcmp(isa, "avx2")) want = QL_ISA_AVX2;
        else if (!strcmp(isa, "avx512")) want = QL_ISA_AVX512;
        else if (!strcmp(isa, "amx")) want = QL_ISA_AMX;
        else return luaL_error(L, "peak: isa must be scalar, avx2, avx512 or amx, got '%s'", isa);
        LQ_TRY(L, ql_peak_measure(want, target, &p[0]));
        n = 1;
    } else if ((n = ql_peak_measure_all(target, p)) < 0) {
        return lq_fail(L, QL_EINVAL);
    }
    double secs = 0;
    lua_createtable(L, 0, 2);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) { push_peak(L, &p[i]); lua_rawseti(L, -2, i + 1); secs += p[i].seconds; }
    lua_setfield(L, -2, "levels");
    set_num(L, "seconds", secs);
    return 1;
}

static int l_macs(lua_State *L) {
    static const char *const kinds[] = {"none", "f32", "int8"};
    ql_graph *g = lq_check_model(L, 1);
    int64_t by[QL_MACS_KINDS];
    int64_t total = ql_graph_macs(g, by);
    lua_createtable(L, 0, 4);
    set_int(L, "total", total);
    set_int(L, "f32", by[QL_MACS_F32]);
    set_int(L, "int8", by[QL_MACS_INT8]);
    int64_t lby[QL_MACS_KINDS];
    int64_t live = ql_graph_live_macs(g, lby);
    lua_createtable(L, 0, 3);
    set_int(L, "total", live);
    set_int(L, "f32", lby[QL_MACS_F32]);
    set_int(L, "int8", lby[QL_MACS_INT8]);
    lua_setfield(L, -2, "live");
    lua_createtable(L, g->nnodes, 0);
    int k = 0;
    for (int i = 1; i < g->nnodes; i++) {
        ql_macs_kind kind;
        int64_t m = ql_node_macs(g, i, &kind);
        lua_createtable(L, 0, 4);
        set_str(L, "name", g->nodes[i].name);
        set_str(L, "op", ql_op_name(g->nodes[i].op));
        set_int(L, "macs", m);
        set_int(L, "live", ql_node_live_macs(g, i));
        set_str(L, "kind", kinds[kind]);
        lua_rawseti(L, -2, ++k);
    }
    lua_setfield(L, -2, "nodes");
    return 1;
}

static int l_plan_bytes(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    lua_Integer batch = luaL_checkinteger(L, 2);
    if (batch < 1) return luaL_error(L, "plan_bytes: batch must be >= 1");
    int64_t b = ql_graph_plan_bytes(g, batch);
    if (b < 0) return lq_fail(L, QL_ENOMEM);
    lua_pushinteger(L, b);
    return 1;
}

/* Progress into a Lua function: ud = {L, function index, error flag}. */
typedef struct { lua_State *L; int fn; int failed; } lua_progress;

static int call_progress(void *ud, int64_t done, int64_t total, const char *label) {
    lua_progress *p = ud;
    lua_State *L = p->L;
    lua_pushvalue(L, p->fn);
    lua_pushinteger(L, done);
    lua_pushinteger(L, total);
    lua_pushstring(L, label ? label : "");
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) { p->failed = 1; return 1; }   /* message left on the stack */
    int cancel = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return cancel;
}

static int l_bench_samples(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    ql_tensor *x = lq_check_tensor(L, 2);
    int runs = (int)luaL_checkinteger(L, 3), warmup = (int)luaL_optinteger(L, 4, 0);
    const char *label = luaL_optstring(L, 5, "timing");
    if (runs < 1 || runs > 1000000 || warmup < 0) return luaL_error(L, "_bench_samples: runs must be in 1..1e6, warmup >= 0");
    lua_progress lp = {L, 6, 0};
    ql_progress prog = {call_progress, &lp};
    int has_fn = lua_isfunction(L, 6);
    double *ms = ql_malloc(sizeof(double) * (size_t)runs);
    if (!ms) return lq_fail(L, QL_ENOMEM);
    lua_settop(L, 6);
    ql_status st = ql_bench_samples(g, x, runs, warmup, has_fn ? &prog : &lq_progress, label, ms);
    if (st == QL_OK) {
        lua_createtable(L, runs, 0);
        for (int i = 0; i < runs; i++) { lua_pushnumber(L, ms[i]); lua_rawseti(L, -2, i + 1); }
    }
    ql_free(ms);
    if (lp.failed) return lua_error(L);   /* the progress function's own error */
    if (st != QL_OK) return lq_fail(L, st);
    return 1;
}

void lq_open_machine(lua_State *L) {
    static const luaL_Reg fns[] = {{"machine", l_machine}, {"peak", l_peak}, {"macs", l_macs},
                                   {"plan_bytes", l_plan_bytes}, {"_bench_samples", l_bench_samples}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
