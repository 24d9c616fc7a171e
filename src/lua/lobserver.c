/* Observer userdata: qlab.observer.<kind>{...} works alone on any tensor and
 * serves as the template of a qconfig. o:observe(t), o:range(),
 * o:qparams(), o:histogram(), o:minmax(), o:count(), o:reset(), o:freeze(). */
#include <math.h>
#include <string.h>
#include "lqlab.h"
#include "qlab/observer.h"
#include "qlab/weight_stats.h"

static const char *const obs_keys[] = {"dtype", "bits", "symmetric", "per_channel", "ch_axis", "reduce_range",
                                       "bins", "averaging_constant", "percentile", NULL};

ql_observer *lq_check_observer(lua_State *L, int idx) {
    ql_observer **u = luaL_checkudata(L, idx, QL_MT_OBSERVER);
    if (!*u) luaL_argerror(L, idx, "attempt to use a freed observer");
    return *u;
}

void lq_push_observer(lua_State *L, ql_observer *o) {
    ql_observer **u = lua_newuserdatauv(L, sizeof *u, 0);
    *u = NULL;
    luaL_setmetatable(L, QL_MT_OBSERVER);
    *u = o;
}

static int make(lua_State *L) {
    ql_observer_kind kind = (ql_observer_kind)lua_tointeger(L, lua_upvalueindex(1));
    lq_check_keys(L, 1, ql_observer_kind_name(kind), obs_keys);
    ql_observer_opts o;
    ql_observer_opts_default(&o, kind);
    const char *dt = lq_opt_str(L, 1, "dtype", "u8");
    if (ql_dtype_from_name(dt, &o.dtype) != 0 || (o.dtype != QL_DTYPE_U8 && o.dtype != QL_DTYPE_S8))
        return lq_error(L, "observer: dtype must be \"u8\" or \"s8\", got \"%s\"", dt);
    o.bits = (int)lq_opt_int(L, 1, "bits", 8);
    o.symmetric = lq_opt_bool(L, 1, "symmetric", 0);
    o.per_channel = lq_opt_bool(L, 1, "per_channel", 0);
    o.ch_axis = (int)lq_opt_int(L, 1, "ch_axis", 0);
    o.reduce_range = lq_opt_bool(L, 1, "reduce_range", 0);
    o.bins = (int)lq_opt_int(L, 1, "bins", o.bins);
    o.averaging_constant = (float)lq_opt_num(L, 1, "averaging_constant", o.averaging_constant);
    o.percentile = (float)lq_opt_num(L, 1, "percentile", o.percentile);
    ql_observer *ob = ql_observer_new(&o);
    if (!ob) return lq_fail(L, QL_EINVAL);
    lq_push_observer(L, ob);
    return 1;
}

static int l_observe(lua_State *L) {
    LQ_TRY(L, ql_observer_observe(lq_check_observer(L, 1), lq_check_tensor(L, 2)));
    lua_settop(L, 1);
    return 1;
}

/* per tensor: two numbers; per channel: two tables */
static int push_pairs(lua_State *L, ql_observer *o, ql_status (*get)(const ql_observer *, int, float *, float *)) {
    int n = ql_observer_channels(o);
    if (!ql_observer_options(o)->per_channel) {
        float lo, hi;
        LQ_TRY(L, get(o, 0, &lo, &hi));
        lua_pushnumber(L, lo);
        lua_pushnumber(L, hi);
        return 2;
    }
    lua_createtable(L, n, 0);
    lua_createtable(L, n, 0);
    for (int c = 0; c < n; c++) {
        float lo, hi;
        LQ_TRY(L, get(o, c, &lo, &hi));
        lua_pushnumber(L, lo); lua_rawseti(L, -3, c + 1);
        lua_pushnumber(L, hi); lua_rawseti(L, -2, c + 1);
    }
    return 2;
}

static int l_range(lua_State *L) { return push_pairs(L, lq_check_observer(L, 1), ql_observer_range); }
static int l_minmax(lua_State *L) { return push_pairs(L, lq_check_observer(L, 1), ql_observer_minmax); }

static int l_qparams(lua_State *L) {
    ql_observer *o = lq_check_observer(L, 1);
    int n = ql_observer_channels(o);
    float s[n > 0 ? n : 1];
    int32_t z[n > 0 ? n : 1];
    LQ_TRY(L, ql_observer_qparams(o, s, z));
    if (!ql_observer_options(o)->per_channel) {
        lua_pushnumber(L, s[0]);
        lua_pushinteger(L, z[0]);
        return 2;
    }
    lua_createtable(L, n, 0);
    lua_createtable(L, n, 0);
    for (int c = 0; c < n; c++) {
        lua_pushnumber(L, s[c]); lua_rawseti(L, -3, c + 1);
        lua_pushinteger(L, z[c]); lua_rawseti(L, -2, c + 1);
    }
    return 2;
}

/* counts (table), lo, hi */
static int l_histogram(lua_State *L) {
    ql_observer *o = lq_check_observer(L, 1);
    const float *counts;
    int bins;
    float lo, hi;
    LQ_TRY(L, ql_observer_histogram(o, &counts, &bins, &lo, &hi));
    if (!counts) { lua_pushnil(L); return 1; }
    lua_createtable(L, bins, 0);
    for (int i = 0; i < bins; i++) { lua_pushnumber(L, counts[i]); lua_rawseti(L, -2, i + 1); }
    lua_pushnumber(L, lo);
    lua_pushnumber(L, hi);
    return 3;
}

static int l_count(lua_State *L) { lua_pushinteger(L, ql_observer_count(lq_check_observer(L, 1))); return 1; }
static int l_reset(lua_State *L) { ql_observer_reset(lq_check_observer(L, 1)); return 0; }
static int l_freeze(lua_State *L) {
    ql_observer_freeze(lq_check_observer(L, 1), lua_isnone(L, 2) ? 1 : lua_toboolean(L, 2));
    return 0;
}

static int l_clone(lua_State *L) {
    ql_observer *c = ql_observer_clone(lq_check_observer(L, 1));
    if (!c) return lq_fail(L, QL_ENOMEM);
    lq_push_observer(L, c);
    return 1;
}

/* o:as(kind [, {percentile = p}]) -> an observer choosing its range by kind from o's statistics */
static int l_as(lua_State *L) {
    static const char *const keys[] = {"percentile", NULL};
    ql_observer *o = lq_check_observer(L, 1);
    const char *k = luaL_checkstring(L, 2);
    lq_check_keys(L, 3, "as", keys);
    ql_observer_kind kind;
    if (ql_observer_kind_from_name(k, &kind) != 0)
        return lq_error(L, "unknown observer kind '%s' (minmax, moving_average, histogram, percentile, entropy, mse)", k);
    ql_observer *c = ql_observer_as(o, kind, (float)lq_opt_num(L, 3, "percentile", 0));
    if (!c) return lq_fail(L, QL_EINVAL);
    lq_push_observer(L, c);
    return 1;
}

/* o:range_error(lo, hi) -> mse, sqnr_db of that range on o's histogram */
static int l_range_error(lua_State *L) {
    ql_observer *o = lq_check_observer(L, 1);
    float lo = (float)luaL_checknumber(L, 2), hi = (float)luaL_checknumber(L, 3);
    if (!(lo <= hi)) return lq_error(L, "need lo <= hi, got [%f, %f]", (double)lo, (double)hi);
    double mse, power;
    LQ_TRY(L, ql_observer_range_error(o, lo, hi, &mse, &power));
    lua_pushnumber(L, mse);
    lua_pushnumber(L, mse > 0 ? 10.0 * log10(power / mse) : HUGE_VAL);
    return 2;
}

/* qlab.weight_stats(w [, {bits = 8}]) -> {channels, min = {...}, max = {...}, sqnr_per_channel_db,
 * sqnr_per_tensor_db, mse_per_channel, mse_per_tensor}: what each granularity costs on these weights */
static int l_weight_stats(lua_State *L) {
    static const char *const keys[] = {"bits", NULL};
    ql_tensor *w = lq_check_tensor(L, 1);
    lq_check_keys(L, 2, "weight_stats", keys);
    ql_weight_stats s;
    LQ_TRY(L, ql_weight_stats_compute(w, (int)lq_opt_int(L, 2, "bits", 8), &s));
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, s.channels); lua_setfield(L, -2, "channels");
    lua_createtable(L, s.channels, 0);
    for (int c = 0; c < s.channels; c++) { lua_pushnumber(L, s.min[c]); lua_rawseti(L, -2, c + 1); }
    lua_setfield(L, -2, "min");
    lua_createtable(L, s.channels, 0);
    for (int c = 0; c < s.channels; c++) { lua_pushnumber(L, s.max[c]); lua_rawseti(L, -2, c + 1); }
    lua_setfield(L, -2, "max");
    lua_pushnumber(L, s.sqnr_per_channel_db); lua_setfield(L, -2, "sqnr_per_channel_db");
    lua_pushnumber(L, s.sqnr_per_tensor_db); lua_setfield(L, -2, "sqnr_per_tensor_db");
    lua_pushnumber(L, s.mse_per_channel); lua_setfield(L, -2, "mse_per_channel");
    lua_pushnumber(L, s.mse_per_tensor); lua_setfield(L, -2, "mse_per_tensor");
    ql_weight_stats_free(&s);
    return 1;
}

/* the options as a table (kind, dtype, bits, symmetric, per_channel, ...) */
static int l_options(lua_State *L) {
    const ql_observer_opts *o = ql_observer_options(lq_check_observer(L, 1));
    lua_createtable(L, 0, 10);
    lua_pushstring(L, ql_observer_kind_name(o->kind)); lua_setfield(L, -2, "kind");
    lua_pushstring(L, ql_dtype_name(o->dtype)); lua_setfield(L, -2, "dtype");
    lua_pushinteger(L, o->bits); lua_setfield(L, -2, "bits");
    lua_pushboolean(L, o->symmetric); lua_setfield(L, -2, "symmetric");
    lua_pushboolean(L, o->per_channel); lua_setfield(L, -2, "per_channel");
    lua_pushinteger(L, o->ch_axis); lua_setfield(L, -2, "ch_axis");
    lua_pushboolean(L, o->reduce_range); lua_setfield(L, -2, "reduce_range");
    lua_pushinteger(L, o->bins); lua_setfield(L, -2, "bins");
    lua_pushnumber(L, o->averaging_constant); lua_setfield(L, -2, "averaging_constant");
    lua_pushnumber(L, o->percentile); lua_setfield(L, -2, "percentile");
    return 1;
}

static int l_gc(lua_State *L) {
    ql_observer **u = luaL_checkudata(L, 1, QL_MT_OBSERVER);
    ql_observer_free(*u);
    *u = NULL;
    return 0;
}

static int l_tostring(lua_State *L) {
    ql_observer **u = luaL_checkudata(L, 1, QL_MT_OBSERVER);
    if (!*u) { lua_pushstring(L, "Observer (freed)"); return 1; }
    const ql_observer_opts *o = ql_observer_options(*u);
    lua_pushfstring(L, "Observer %s %s %d-bit %s %s, %d batches", ql_observer_kind_name(o->kind),
                    ql_dtype_name(o->dtype), o->bits, o->symmetric ? "symmetric" : "affine",
                    o->per_channel ? "per channel" : "per tensor", (int)ql_observer_count(*u));
    return 1;
}

void lq_open_observer(lua_State *L) {
    static const luaL_Reg meta[] = {{"__gc", l_gc}, {"__close", l_gc}, {"__tostring", l_tostring}, {NULL, NULL}};
    static const luaL_Reg methods[] = {{"observe", l_observe}, {"range", l_range}, {"minmax", l_minmax},
                                       {"qparams", l_qparams}, {"histogram", l_histogram}, {"count", l_count},
                                       {"reset", l_reset}, {"freeze", l_freeze}, {"clone", l_clone}, {"as", l_as},
                                       {"range_error", l_range_error},
                                       {"options", l_options}, {"free", l_gc}, {NULL, NULL}};
    luaL_newmetatable(L, QL_MT_OBSERVER);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_createtable(L, 0, QL_OBS_COUNT);
    for (int k = 0; k < QL_OBS_COUNT; k++) {
        lua_pushinteger(L, k);
        lua_pushcclosure(L, make, 1);
        lua_setfield(L, -2, ql_observer_kind_name((ql_observer_kind)k));
    }
    lua_setfield(L, -2, "observer");
    lua_pushcfunction(L, l_weight_stats);   /* into the qlab.core table on top */
    lua_setfield(L, -2, "weight_stats");
}
