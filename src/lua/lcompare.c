/* Numeric comparison from Lua (the arithmetic is src/bench/compare.c; the
 * orchestration lua/qlab/sensitivity.lua):
 *   m:keep_activations(on) -> previous setting (inference keeps every output)
 *   qlab.compare_tensors(ref, approx [, sums]) -> sums
 *   qlab.compare_logits(ref, approx [, labels] [, acc]) -> acc
 *   qlab._compare_nodes(ref_model, model, pairs, sums)
 * sums = {sum_ref2, sum_err2, max_abs, n} (running, updated in place);
 * acc = {kl, rows, agree, ties, correct_ref, correct_approx}. */
#include "lqlab.h"
#include "qlab/compare.h"

static double get_num(lua_State *L, int idx, const char *k) {
    lua_getfield(L, idx, k);
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static void set_num(lua_State *L, int idx, const char *k, double v) { lua_pushnumber(L, v); lua_setfield(L, idx, k); }
static void set_int(lua_State *L, int idx, const char *k, int64_t v) { lua_pushinteger(L, v); lua_setfield(L, idx, k); }

/* sums table at idx (absolute) <-> ql_compare_sums */
static void read_sums(lua_State *L, int idx, ql_compare_sums *s) {
    s->sum_ref2 = get_num(L, idx, "sum_ref2");
    s->sum_err2 = get_num(L, idx, "sum_err2");
    s->max_abs = get_num(L, idx, "max_abs");
    s->n = (int64_t)get_num(L, idx, "n");
}

static void write_sums(lua_State *L, int idx, const ql_compare_sums *s) {
    set_num(L, idx, "sum_ref2", s->sum_ref2);
    set_num(L, idx, "sum_err2", s->sum_err2);
    set_num(L, idx, "max_abs", s->max_abs);
    set_int(L, idx, "n", s->n);
    set_num(L, idx, "sqnr_db", ql_compare_sqnr_db(s));
    set_num(L, idx, "mse", ql_compare_mse(s));
}

/* table at idx, or a new one pushed on top; returns its absolute index */
static int opt_table(lua_State *L, int idx) {
    if (lua_istable(L, idx)) return lua_absindex(L, idx);
    if (!lua_isnoneornil(L, idx)) luaL_typeerror(L, idx, "table");
    lua_newtable(L);
    return lua_gettop(L);
}

static int l_compare_tensors(lua_State *L) {
    ql_tensor *ref = lq_check_tensor(L, 1), *q = lq_check_tensor(L, 2);
    int t = opt_table(L, 3);
    ql_compare_sums s;
    read_sums(L, t, &s);
    LQ_TRY(L, ql_compare_accumulate(&s, ref, q));
    write_sums(L, t, &s);
    lua_pushvalue(L, t);
    return 1;
}

static int l_compare_logits(lua_State *L) {
    ql_tensor *ref = lq_check_tensor(L, 1), *q = lq_check_tensor(L, 2);
    ql_tensor *labels = lua_isnoneornil(L, 3) ? NULL : lq_check_tensor(L, 3);
    int t = opt_table(L, 4);
    ql_logit_sums s = {.kl = get_num(L, t, "kl"), .rows = (int64_t)get_num(L, t, "rows"),
                       .agree = (int64_t)get_num(L, t, "agree"), .ties = (int64_t)get_num(L, t, "ties"),
                       .correct_ref = (int64_t)get_num(L, t, "correct_ref"),
                       .correct_approx = (int64_t)get_num(L, t, "correct_approx")};
    LQ_TRY(L, ql_compare_logits(&s, ref, q, labels));
    set_num(L, t, "kl", s.kl);
    set_int(L, t, "rows", s.rows);
    set_int(L, t, "agree", s.agree);
    set_int(L, t, "ties", s.ties);
    set_int(L, t, "correct_ref", s.correct_ref);
    set_int(L, t, "correct_approx", s.correct_approx);
    lua_pushvalue(L, t);
    return 1;
}

/* After both models ran forward on the same batch with keep_activations on:
 * pairs[k] = {ref node index, node index} (the nodes() "index" fields);
 * sums[k] accumulates node vs reference node. Pairs whose output was not
 * computed (not needed for the model output) are left unchanged. */
static int l_compare_nodes(lua_State *L) {
    ql_graph *ref = lq_check_model(L, 1), *g = lq_check_model(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 3);
    for (lua_Integer k = 1; k <= n; k++) {
        lua_geti(L, 3, k);
        lua_geti(L, -1, 1);
        lua_geti(L, -2, 2);
        int i = (int)lua_tointeger(L, -2), j = (int)lua_tointeger(L, -1);
        lua_pop(L, 3);
        if (i < 0 || i >= ref->nnodes || j < 0 || j >= g->nnodes) return lq_error(L, "compare: pair %d out of range", (int)k);
        const ql_tensor *a = ql_graph_activation(ref, i), *b = ql_graph_activation(g, j);
        if (!a || !b) continue;
        if (lua_geti(L, 4, k) != LUA_TTABLE) { lua_pop(L, 1); lua_newtable(L); lua_pushvalue(L, -1); lua_seti(L, 4, k); }
        int t = lua_gettop(L);
        ql_compare_sums s;
        read_sums(L, t, &s);
        ql_status st = ql_compare_accumulate(&s, a, b);
        if (st != QL_OK)
            return lq_error(L, "compare: node '%s' vs '%s': %s", ref->nodes[i].name, g->nodes[j].name, ql_last_error());
        write_sums(L, t, &s);
        lua_pop(L, 1);
    }
    return 0;
}

static int l_keep_activations(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    int prev = g->keep_all;
    g->keep_all = lua_toboolean(L, 2);
    lua_pushboolean(L, prev);
    return 1;
}

void lq_open_compare(lua_State *L) {
    static const luaL_Reg fns[] = {{"compare_tensors", l_compare_tensors}, {"compare_logits", l_compare_logits},
                                   {"_compare_nodes", l_compare_nodes}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
    luaL_getmetatable(L, QL_MT_MODEL);
    lua_getfield(L, -1, "__index");
    lua_pushcfunction(L, l_keep_activations);
    lua_setfield(L, -2, "keep_activations");
    lua_pop(L, 2);
}
