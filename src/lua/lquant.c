/* The quantization workflow from Lua: m:fuse(), m:_prepare(plans) (the map
 * is resolved in lua/qlab/quant.lua), qlab.calibrate(m, loader),
 * m:observer(name), m:convert(), m:plan(). */
#include <string.h>
#include "lqlab.h"
#include "qlab/alloc.h"
#include "qlab/quant.h"

static int l_fuse(lua_State *L) {
    int n = 0;
    LQ_TRY(L, ql_fuse(lq_check_model(L, 1), &n));
    lua_pushinteger(L, n);
    return 1;
}

/* m:_prepare{[node] = {mode = "int8", act = Observer, weight = Observer} | {mode = "f16" | "bf16"}} */
static int l_prepare(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    int qat = lua_toboolean(L, lua_upvalueindex(1));   /* the _prepare_qat closure */
    luaL_checktype(L, 2, LUA_TTABLE);
    ql_qplan *plans = ql_calloc(sizeof *plans * (size_t)g->nnodes);
    if (!plans) return lq_fail(L, QL_ENOMEM);
    for (int i = 1; i < g->nnodes; i++) {
        if (lua_getfield(L, 2, g->nodes[i].name) != LUA_TTABLE) { lua_pop(L, 1); continue; }
        if (lua_getfield(L, -1, "mode") == LUA_TSTRING && strcmp(lua_tostring(L, -1), "int8")) {   /* half weights */
            const char *md = lua_tostring(L, -1);
            plans[i].mode = !strcmp(md, "f16") ? QL_QMODE_F16 : !strcmp(md, "bf16") ? QL_QMODE_BF16 : QL_QMODE_NONE;
            if (plans[i].mode == QL_QMODE_NONE) {
                ql_free(plans);
                return lq_error(L, "prepare: node '%s': mode must be \"int8\", \"f16\" or \"bf16\", not \"%s\"",
                                  g->nodes[i].name, md);
            }
            lua_pop(L, 2);
            continue;
        }
        lua_pop(L, 1);
        lua_getfield(L, -1, "act");
        lua_getfield(L, -2, "weight");
        ql_observer **a = luaL_testudata(L, -2, QL_MT_OBSERVER), **w = luaL_testudata(L, -1, QL_MT_OBSERVER);
        if (!a || !*a || !w || !*w) {
            ql_free(plans);
            return lq_error(L, "prepare: node '%s': a qconfig needs activation and weight observers", g->nodes[i].name);
        }
        plans[i].mode = QL_QMODE_INT8;
        plans[i].act = *ql_observer_options(*a);
        plans[i].weight = *ql_observer_options(*w);
        lua_pop(L, 3);
    }
    ql_status st = qat ? ql_prepare_qat(g, plans) : ql_prepare(g, plans);
    ql_free(plans);
    if (st != QL_OK) return lq_fail(L, st);
    lua_settop(L, 1);
    return 1;
}

/* qlab.calibrate(model, loader [, {batches = n}]) -> batches run */
static int l_calibrate(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    ql_loader *ld = lq_check_loader(L, 2);
    static const char *const keys[] = {"batches", NULL};
    lq_check_keys(L, 3, "calibrate", keys);
    lua_Integer nb = lq_opt_int(L, 3, "batches", 0);
    LQ_TRY(L, ql_calibrate(g, ld, nb, &lq_progress));
    return 0;
}

/* m:observer(name) -> a snapshot (copy) of the observer deciding that node's
 * output range, or nil when the node has none */
static int l_observer(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    const char *name = luaL_checkstring(L, 2);
    int i = ql_graph_find(g, name);
    if (i < 0) return lq_error(L, "model has no node '%s'", name);
    ql_observer *o = ql_node_observer(g, i);
    if (!o) { lua_pushnil(L); return 1; }
    ql_observer *c = ql_observer_clone(o);
    if (!c) return lq_fail(L, QL_ENOMEM);
    lq_push_observer(L, c);
    return 1;
}

/* m:set_observer(name, o): the node's observer becomes a copy of o (e.g.
 * m:observer(name):as("entropy"): the same statistics, another range rule) */
static int l_set_observer(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    const char *name = luaL_checkstring(L, 2);
    ql_observer *o = lq_check_observer(L, 3);
    int i = ql_graph_find(g, name);
    if (i < 0) return lq_error(L, "model has no node '%s'", name);
    LQ_TRY(L, ql_set_node_observer(g, i, o));
    return 0;
}

static int l_convert(lua_State *L) {
    LQ_TRY(L, ql_convert(lq_check_model(L, 1)));
    lua_settop(L, 1);
    return 1;
}

/* m:fold_dequantize() -> nodes changed: quantized conv / linear read only through a dequantize
 * write f32 themselves (older converted files; convert already does it). */
static int l_fold_dequantize(lua_State *L) {
    int n = 0;
    LQ_TRY(L, ql_fold_dequantize(lq_check_model(L, 1), &n));
    lua_pushinteger(L, n);
    return 1;
}

/* m:plan() -> {{name, op, mode, act, weight, observed}} (prepared models) */
static int l_plan(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    lua_createtable(L, g->nnodes, 0);
    for (int i = 1; i < g->nnodes; i++) {
        const ql_node *n = &g->nodes[i];
        lua_createtable(L, 0, 6);
        lua_pushstring(L, n->name); lua_setfield(L, -2, "name");
        lua_pushstring(L, ql_op_name(n->op)); lua_setfield(L, -2, "op");
        int q = n->plan.mode == QL_QMODE_INT8 && (ql_quant_supported(n->op) || n->op == QL_OP_CONV_BN);
        ql_dtype hd = ql_plan_half_dtype(n);
        lua_pushstring(L, q ? "int8" : hd != QL_DTYPE_F32 ? ql_dtype_name(hd) : "f32"); lua_setfield(L, -2, "mode");
        if (q) {
            // code bits actually used: one fewer with reduce_range
            lua_pushfstring(L, "%s u8/%d", ql_observer_kind_name(n->plan.act.kind),
                            n->plan.act.bits - (n->plan.act.reduce_range ? 1 : 0));
            lua_setfield(L, -2, "act");
            if (n->op == QL_OP_CONV2D || n->op == QL_OP_LINEAR || n->op == QL_OP_CONV_BN) {
                lua_pushfstring(L, "%s s8/%d %s", ql_observer_kind_name(n->plan.weight.kind),
                                n->plan.weight.bits - (n->plan.weight.reduce_range ? 1 : 0),
                                n->plan.weight.per_channel ? "per-channel" : "per-tensor");
                lua_setfield(L, -2, "weight");
            }
        }
        lua_pushboolean(L, n->obs != NULL || n->wobs != NULL); lua_setfield(L, -2, "observed");
        lua_rawseti(L, -2, i);
    }
    return 1;
}

/* m:_copy_observers(from) -> observers left uncopied (see ql_copy_observers) */
static int l_copy_observers(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1), *src = lq_check_model(L, 2);
    int missing = 0;
    LQ_TRY(L, ql_copy_observers(g, src, &missing));
    lua_pushinteger(L, missing);
    return 1;
}

static int l_freeze_bn(lua_State *L) {
    ql_qat_freeze_bn(lq_check_model(L, 1), lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2));
    return 0;
}
static int l_bn_frozen(lua_State *L) { lua_pushboolean(L, lq_check_model(L, 1)->bn_frozen); return 1; }
static int l_freeze_observers(lua_State *L) {
    ql_qat_freeze_observers(lq_check_model(L, 1), lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2));
    return 0;
}
static int l_observers_frozen(lua_State *L) { lua_pushboolean(L, ql_qat_observers_frozen(lq_check_model(L, 1))); return 1; }
static int l_fake_quant(lua_State *L) {
    ql_qat_enable_fake_quant(lq_check_model(L, 1), lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2));
    return 0;
}

static int l_is_prepared(lua_State *L) { lua_pushboolean(L, ql_is_prepared(lq_check_model(L, 1))); return 1; }

void lq_open_quant(lua_State *L) {
    static const luaL_Reg methods[] = {{"fuse", l_fuse}, {"observer", l_observer}, {"set_observer", l_set_observer},
                                       {"convert", l_convert}, {"fold_dequantize", l_fold_dequantize}, {"plan", l_plan}, {"is_prepared", l_is_prepared},
                                       {"_copy_observers", l_copy_observers},
                                       {"freeze_bn", l_freeze_bn}, {"bn_frozen", l_bn_frozen},
                                       {"freeze_observers", l_freeze_observers},
                                       {"observers_frozen", l_observers_frozen}, {"fake_quant", l_fake_quant},
                                       {NULL, NULL}};
    luaL_getmetatable(L, QL_MT_MODEL);
    lua_getfield(L, -1, "__index");
    luaL_setfuncs(L, methods, 0);
    lua_pushboolean(L, 0);
    lua_pushcclosure(L, l_prepare, 1);
    lua_setfield(L, -2, "_prepare");
    lua_pushboolean(L, 1);
    lua_pushcclosure(L, l_prepare, 1);
    lua_setfield(L, -2, "_prepare_qat");
    lua_pop(L, 2);
    lua_pushcfunction(L, l_calibrate);
    lua_setfield(L, -2, "calibrate");
}
