/* Measuring from Lua: qlab.clock, qlab.time_forward, qlab.memory, qlab.evaluate. */
#include "lqlab.h"
#include "qlab/alloc.h"
#include "qlab/bench.h"

static int l_clock(lua_State *L) { lua_pushnumber(L, ql_clock()); return 1; }

static int l_memory(lua_State *L) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, ql_mem_current()); lua_setfield(L, -2, "current");
    lua_pushinteger(L, ql_mem_peak()); lua_setfield(L, -2, "peak");
    lua_pushinteger(L, ql_mem_rss_peak()); lua_setfield(L, -2, "rss_peak");
    return 1;
}

static int l_reset_peak(lua_State *L) { ql_mem_reset_peak(); return 0; }

/* qlab.time_forward(model, {batch, runs, warmup, input}) -> {median, p95, mean, min, images_per_s} (ms) */
static int l_time_forward(lua_State *L) {
    static const char *const keys[] = {"batch", "runs", "warmup", "input", NULL};
    ql_graph *g = lq_check_model(L, 1);
    lq_check_keys(L, 2, "time_forward", keys);
    int batch = (int)lq_opt_int(L, 2, "batch", 1), runs = (int)lq_opt_int(L, 2, "runs", 100);
    int warmup = (int)lq_opt_int(L, 2, "warmup", 10);
    ql_tensor *x = NULL, *own = NULL;
    if (lua_istable(L, 2) && lua_getfield(L, 2, "input") != LUA_TNIL) {
        x = lq_check_tensor(L, -1);
    } else {
        if (batch < 1) return lq_error(L, "time_forward: batch must be >= 1");
        const ql_node *in = &g->nodes[0];
        int64_t shape[QL_MAX_DIMS] = {batch};
        for (int i = 0; i < in->out_ndim; i++) shape[i + 1] = in->out_shape[i];
        own = x = ql_tensor_new(QL_DTYPE_F32, in->out_ndim + 1, shape);
        if (!x) return lq_fail(L, QL_ENOMEM);
        for (int64_t i = 0; i < x->numel; i++) ql_f32(x)[i] = ql_rng_normal(ql_rng_global());
    }
    ql_timing t;
    ql_status st = ql_time_forward(g, x, runs, warmup, NULL, &t);
    ql_tensor_free(own);
    if (st != QL_OK) return lq_fail(L, st);
    lua_createtable(L, 0, 7);
    lua_pushnumber(L, t.median); lua_setfield(L, -2, "median");
    lua_pushnumber(L, t.p95); lua_setfield(L, -2, "p95");
    lua_pushnumber(L, t.mean); lua_setfield(L, -2, "mean");
    lua_pushnumber(L, t.min); lua_setfield(L, -2, "min");
    lua_pushnumber(L, t.images_per_s); lua_setfield(L, -2, "images_per_s");
    lua_pushinteger(L, t.runs); lua_setfield(L, -2, "runs");
    lua_pushinteger(L, t.batch); lua_setfield(L, -2, "batch");
    return 1;
}

/* qlab.profile(model, {batch, runs, warmup}) -> {{name, op, ms, share}} per node,
 * mean milliseconds per forward pass, in execution order. */
static int l_profile(lua_State *L) {
    static const char *const keys[] = {"batch", "runs", "warmup", NULL};
    ql_graph *g = lq_check_model(L, 1);
    lq_check_keys(L, 2, "profile", keys);
    int batch = (int)lq_opt_int(L, 2, "batch", 1), runs = (int)lq_opt_int(L, 2, "runs", 20);
    int warmup = (int)lq_opt_int(L, 2, "warmup", 3);
    if (batch < 1 || runs < 1 || warmup < 0) return lq_error(L, "profile: batch and runs must be >= 1");
    const ql_node *in = &g->nodes[0];
    int64_t shape[QL_MAX_DIMS] = {batch};
    for (int i = 0; i < in->out_ndim; i++) shape[i + 1] = in->out_shape[i];
    ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, in->out_ndim + 1, shape);
    if (!x) return lq_fail(L, QL_ENOMEM);
    for (int64_t i = 0; i < x->numel; i++) ql_f32(x)[i] = ql_rng_normal(ql_rng_global());
    const ql_tensor *y;
    ql_status st = QL_OK;
    for (int i = 0; i < warmup && st == QL_OK; i++) st = ql_graph_forward(g, x, &y, 0);
    g->profile = 1;
    if (st == QL_OK && g->node_ms) for (int i = 0; i < g->nnodes; i++) g->node_ms[i] = 0;
    for (int i = 0; i < runs && st == QL_OK; i++) st = ql_graph_forward(g, x, &y, 0);
    g->profile = 0;
    ql_tensor_free(x);
    if (st != QL_OK) return lq_fail(L, st);
    double total = 0;
    for (int i = 0; i < g->nnodes; i++) total += g->node_ms ? g->node_ms[i] : 0;
    lua_createtable(L, g->nnodes, 0);
    for (int i = 1; i < g->nnodes; i++) {
        double ms = g->node_ms ? g->node_ms[i] / runs : 0;
        lua_createtable(L, 0, 4);
        lua_pushstring(L, g->nodes[i].name); lua_setfield(L, -2, "name");
        lua_pushstring(L, ql_op_name(g->nodes[i].op)); lua_setfield(L, -2, "op");
        lua_pushnumber(L, ms); lua_setfield(L, -2, "ms");
        lua_pushnumber(L, total > 0 ? ms * runs / total : 0); lua_setfield(L, -2, "share");
        lua_rawseti(L, -2, i);
    }
    return 1;
}

/* qlab.evaluate(model, loader [, {reference = fp32}]) -> {top1, top5, loss, n, ties}, and with a
 * reference also {agree, ref_top1, flips = {lost, gained}}: agree in percent, flips in images. */
static int l_evaluate(lua_State *L) {
    static const char *const keys[] = {"reference", NULL};
    ql_graph *g = lq_check_model(L, 1);
    ql_loader *ld = lq_check_loader(L, 2);
    lq_check_keys(L, 3, "evaluate", keys);
    ql_graph *ref = NULL;
    if (lua_istable(L, 3) && lua_getfield(L, 3, "reference") != LUA_TNIL) {
        if (!luaL_testudata(L, -1, QL_MT_MODEL))
            return lq_error(L, "evaluate: reference must be a model, got %s", luaL_typename(L, -1));
        ref = lq_check_model(L, -1);
    }
    if (ref == g) return lq_error(L, "evaluate: the reference must be another model (clone it first)");
    ql_eval_result r;
    LQ_TRY(L, ql_evaluate(g, ref, ld, &lq_progress, &r));
    lua_createtable(L, 0, 9);
    lua_pushnumber(L, r.top1); lua_setfield(L, -2, "top1");
    lua_pushnumber(L, r.top5); lua_setfield(L, -2, "top5");
    lua_pushnumber(L, r.loss); lua_setfield(L, -2, "loss");
    lua_pushinteger(L, r.n); lua_setfield(L, -2, "n");
    lua_pushinteger(L, r.ties); lua_setfield(L, -2, "ties");
    if (r.has_ref) {
        lua_pushnumber(L, r.agree); lua_setfield(L, -2, "agree");
        lua_pushnumber(L, r.ref_top1); lua_setfield(L, -2, "ref_top1");
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, r.ref_right_wrong); lua_setfield(L, -2, "lost");
        lua_pushinteger(L, r.ref_wrong_right); lua_setfield(L, -2, "gained");
        lua_setfield(L, -2, "flips");
    }
    return 1;
}

void lq_open_bench(lua_State *L) {
    static const luaL_Reg fns[] = {{"clock", l_clock}, {"memory", l_memory}, {"reset_peak", l_reset_peak},
                                   {"time_forward", l_time_forward}, {"profile", l_profile}, {"evaluate", l_evaluate}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
