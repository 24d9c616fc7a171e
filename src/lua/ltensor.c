/* Tensor userdata: qlab.tensor(values, shape [, dtype]), t:shape(), t:table(),
 * t:dtype(), t[i] (1-based flat index), #t, tostring. */
#include <math.h>
#include <string.h>
#include "lqlab.h"
#include "qlab/topk.h"

static const char *dtypes_known = "f32, f16, bf16, u8, s8, s32";

l_tensor *lq_push_tensor(lua_State *L, ql_tensor *t) {
    l_tensor *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->t = NULL;
    luaL_setmetatable(L, QL_MT_TENSOR);
    u->t = t;
    return u;
}

ql_tensor *lq_check_tensor(lua_State *L, int idx) {
    l_tensor *u = luaL_checkudata(L, idx, QL_MT_TENSOR);
    if (!u->t) luaL_argerror(L, idx, "attempt to use a freed tensor");
    return u->t;
}

/* Element i as a double, whatever the dtype (f16/bf16 decoded). */
static double get_elem(const ql_tensor *t, int64_t i) {
    switch (t->dtype) {
    case QL_DTYPE_F32: return ((const float *)t->data)[i];
    case QL_DTYPE_U8: return ((const uint8_t *)t->data)[i];
    case QL_DTYPE_S8: return ((const int8_t *)t->data)[i];
    case QL_DTYPE_S32: return ((const int32_t *)t->data)[i];
    case QL_DTYPE_BF16: {
        uint32_t b = (uint32_t)((const uint16_t *)t->data)[i] << 16; float f;
        memcpy(&f, &b, 4); return f;
    }
    case QL_DTYPE_F16: {
        uint16_t h = ((const uint16_t *)t->data)[i];
        int e = (h >> 10) & 31, m = h & 1023; double v;
        if (e == 0) v = ldexp(m, -24);
        else if (e == 31) v = m ? NAN : INFINITY;
        else v = ldexp(m + 1024, e - 25);
        return (h & 0x8000) ? -v : v;
    }
    default: return 0;
    }
}

static int set_elem(ql_tensor *t, int64_t i, double v) {
    switch (t->dtype) {
    case QL_DTYPE_F32: ((float *)t->data)[i] = (float)v; return 1;
    case QL_DTYPE_U8: if (v < 0 || v > 255 || v != floor(v)) return 0; ((uint8_t *)t->data)[i] = (uint8_t)v; return 1;
    case QL_DTYPE_S8: if (v < -128 || v > 127 || v != floor(v)) return 0; ((int8_t *)t->data)[i] = (int8_t)v; return 1;
    case QL_DTYPE_S32: if (v < -2147483648.0 || v > 2147483647.0 || v != floor(v)) return 0; ((int32_t *)t->data)[i] = (int32_t)v; return 1;
    case QL_DTYPE_BF16: { float f = (float)v; uint32_t b; memcpy(&b, &f, 4);
        b += 0x7fff + ((b >> 16) & 1); ((uint16_t *)t->data)[i] = (uint16_t)(b >> 16); return 1; }
    default: return 0;
    }
}

/* Flattens a nested Lua table into out (row major); returns count. */
static int64_t flatten(lua_State *L, int idx, ql_tensor *t, int64_t pos) {
    lua_Integer n = luaL_len(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        int ty = lua_geti(L, idx, i);
        if (ty == LUA_TTABLE) pos = flatten(L, lua_gettop(L), t, pos);
        else if (ty == LUA_TNUMBER) {
            if (t && pos < t->numel && !set_elem(t, pos, lua_tonumber(L, -1)))
                lq_error(L, "qlab.tensor: value %f at position %d does not fit dtype %s",
                           lua_tonumber(L, -1), (int)pos + 1, ql_dtype_name(t->dtype));
            pos++;
        } else lq_error(L, "qlab.tensor: values must be numbers or nested tables, got %s", lua_typename(L, ty));
        lua_pop(L, 1);
    }
    return pos;
}

/* qlab.tensor(values, shape [, dtype]) or qlab.tensor(shape-only via qlab.zeros) */
static int l_tensor_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *dn = luaL_optstring(L, 3, "f32");
    ql_dtype d;
    if (ql_dtype_from_name(dn, &d) != 0) return lq_error(L, "qlab.tensor: unknown dtype '%s' (known: %s)", dn, dtypes_known);
    if (d == QL_DTYPE_F16) return lq_error(L, "qlab.tensor: f16 tensors are made by conversion, not from values");
    int64_t count = flatten(L, 1, NULL, 0);
    int64_t shape[QL_MAX_DIMS];
    int ndim;
    if (lua_isnoneornil(L, 2)) { ndim = 1; shape[0] = count; }
    else {
        luaL_checktype(L, 2, LUA_TTABLE);
        ndim = (int)luaL_len(L, 2);
        if (ndim < 1 || ndim > QL_MAX_DIMS) return lq_error(L, "qlab.tensor: shape must have 1..%d dimensions", QL_MAX_DIMS);
        for (int i = 0; i < ndim; i++) {
            lua_geti(L, 2, i + 1);
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0) return lq_error(L, "qlab.tensor: shape entries must be non-negative integers");
            shape[i] = lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
    }
    if (ql_shape_numel(ndim, shape) != count) {
        char b[128];
        return lq_error(L, "qlab.tensor: %d values do not fill shape %s", (int)count, ql_shape_str(ndim, shape, b, sizeof b));
    }
    ql_tensor *t = ql_tensor_new(d, ndim, shape);
    if (!t) return lq_fail(L, QL_ENOMEM);
    l_tensor *u = lq_push_tensor(L, t);
    flatten(L, 1, u->t, 0);
    return 1;
}

/* qlab.zeros(shape [, dtype]) */
static int l_zeros(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    ql_dtype d;
    const char *dn = luaL_optstring(L, 2, "f32");
    if (ql_dtype_from_name(dn, &d) != 0) return lq_error(L, "qlab.zeros: unknown dtype '%s' (known: %s)", dn, dtypes_known);
    int ndim = (int)luaL_len(L, 1);
    int64_t shape[QL_MAX_DIMS];
    if (ndim < 1 || ndim > QL_MAX_DIMS) return lq_error(L, "qlab.zeros: shape must have 1..%d dimensions", QL_MAX_DIMS);
    for (int i = 0; i < ndim; i++) {
        lua_geti(L, 1, i + 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0) return lq_error(L, "qlab.zeros: shape entries must be non-negative integers");
        shape[i] = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    ql_tensor *t = ql_tensor_new(d, ndim, shape);
    if (!t) return lq_fail(L, QL_EINVAL);
    lq_push_tensor(L, t);
    return 1;
}

static int l_shape(lua_State *L) {
    ql_tensor *t = lq_check_tensor(L, 1);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) { lua_pushinteger(L, t->shape[i]); lua_rawseti(L, -2, i + 1); }
    return 1;
}

static int l_dtype(lua_State *L) { lua_pushstring(L, ql_dtype_name(lq_check_tensor(L, 1)->dtype)); return 1; }

static int l_table(lua_State *L) {
    ql_tensor *t = lq_check_tensor(L, 1);
    lua_createtable(L, (int)t->numel, 0);
    for (int64_t i = 0; i < t->numel; i++) { lua_pushnumber(L, get_elem(t, i)); lua_rawseti(L, -2, i + 1); }
    return 1;
}

static int l_len(lua_State *L) { lua_pushinteger(L, lq_check_tensor(L, 1)->numel); return 1; }

static int l_index(lua_State *L) {
    if (lua_type(L, 2) == LUA_TNUMBER) {
        ql_tensor *t = lq_check_tensor(L, 1);
        lua_Integer i = luaL_checkinteger(L, 2);
        if (i < 1 || i > t->numel) return lq_error(L, "tensor index %I out of range 1..%I", (lua_Integer)i, (lua_Integer)t->numel);
        lua_pushnumber(L, get_elem(t, i - 1));
        return 1;
    }
    luaL_getmetatable(L, QL_MT_TENSOR);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_gettable(L, -2);
    return 1;
}

static int l_newindex(lua_State *L) {
    ql_tensor *t = lq_check_tensor(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    if (i < 1 || i > t->numel) return lq_error(L, "tensor index %I out of range 1..%I", (lua_Integer)i, (lua_Integer)t->numel);
    if (!set_elem(t, i - 1, luaL_checknumber(L, 3)))
        return lq_error(L, "value does not fit dtype %s", ql_dtype_name(t->dtype));
    return 0;
}

static int l_clone(lua_State *L) {
    ql_tensor *c = ql_tensor_clone(lq_check_tensor(L, 1));
    if (!c) return lq_fail(L, QL_ENOMEM);
    lq_push_tensor(L, c);
    return 1;
}

static int l_reshape(lua_State *L) {
    ql_tensor *t = lq_check_tensor(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int ndim = (int)luaL_len(L, 2);
    int64_t shape[QL_MAX_DIMS];
    if (ndim < 1 || ndim > QL_MAX_DIMS) return lq_error(L, "reshape: 1..%d dimensions", QL_MAX_DIMS);
    for (int i = 0; i < ndim; i++) { lua_geti(L, 2, i + 1); shape[i] = luaL_checkinteger(L, -1); lua_pop(L, 1); }
    ql_tensor *c = ql_tensor_clone(t);
    if (!c) return lq_fail(L, QL_ENOMEM);
    if (ql_tensor_reshape(c, ndim, shape) != QL_OK) { ql_tensor_free(c); return lq_fail(L, QL_ESHAPE); }
    lq_push_tensor(L, c);
    return 1;
}

/* Index of the max of each row of a (N,K) tensor, 1-based, as a table (ties: the lower index). */
static int l_argmax(lua_State *L) {
    ql_tensor *t = lq_check_tensor(L, 1);
    if (t->dtype != QL_DTYPE_F32 || t->ndim < 1) return lq_error(L, "argmax: needs an f32 tensor");
    int64_t k = t->shape[t->ndim - 1], n = k ? t->numel / k : 0;
    const float *x = ql_f32(t);
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, ql_topk_row(x + i * k, k, -1).pred + 1);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_gc(lua_State *L) {
    l_tensor *u = luaL_checkudata(L, 1, QL_MT_TENSOR);
    ql_tensor_free(u->t);
    u->t = NULL;
    return 0;
}

static int l_tostring(lua_State *L) {
    l_tensor *u = luaL_checkudata(L, 1, QL_MT_TENSOR);
    if (!u->t) { lua_pushstring(L, "Tensor (freed)"); return 1; }
    char b[128];
    lua_pushfstring(L, "Tensor %s %s", ql_dtype_name(u->t->dtype), ql_shape_str(u->t->ndim, u->t->shape, b, sizeof b));
    return 1;
}

void lq_open_tensor(lua_State *L) {
    static const luaL_Reg meta[] = {{"__index", l_index}, {"__newindex", l_newindex}, {"__len", l_len},
                                    {"__gc", l_gc}, {"__close", l_gc}, {"__tostring", l_tostring}, {NULL, NULL}};
    static const luaL_Reg methods[] = {{"shape", l_shape}, {"dtype", l_dtype}, {"table", l_table},
                                       {"clone", l_clone}, {"reshape", l_reshape}, {"argmax", l_argmax},
                                       {"free", l_gc}, {NULL, NULL}};
    luaL_newmetatable(L, QL_MT_TENSOR);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "methods");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"tensor", l_tensor_new}, {"zeros", l_zeros}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);   /* into the qlab.core table on top */
}
