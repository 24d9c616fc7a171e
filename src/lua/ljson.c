/* JSON for Lua scripts (results.json and its schema), through cJSON:
 *   qlab.json_encode(value [, pretty]) -> string. Sequences become arrays,
 *     other tables objects with their keys sorted (the same text every run);
 *     an empty table is an object unless its metatable has __json = "array"
 *     (qlab.json_array(t) sets it). NaN and infinities become null.
 *   qlab.json_decode(text) -> value (null -> nil), or nil, message. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lqlab.h"

static int is_array_marked(lua_State *L, int idx) {
    int r = 0;
    if (luaL_getmetafield(L, idx, "__json") != LUA_TNIL) {
        r = lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "array");
        lua_pop(L, 1);
    }
    return r;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every error encode could raise, raised before anything is allocated (a Lua
 * error longjmps past the half-built cJSON tree, which would leak). */
static void check(lua_State *L, int idx, int depth) {
    idx = lua_absindex(L, idx);
    int t = lua_type(L, idx);
    if (t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TSTRING) return;
    if (t != LUA_TTABLE) luaL_error(L, "json_encode: cannot encode a %s", luaL_typename(L, idx));
    if (depth > 64) luaL_error(L, "json_encode: nested too deep");
    luaL_checkstack(L, 4, "json_encode: nested too deep");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TNUMBER && lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "json_encode: table keys must be strings or numbers");
        check(L, -1, depth + 1);
        lua_pop(L, 1);
    }
}

static cJSON *encode(lua_State *L, int idx, int depth) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return cJSON_CreateNull();
    case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        if (lua_isinteger(L, idx)) return cJSON_CreateNumber((double)lua_tointeger(L, idx));
        double v = lua_tonumber(L, idx);
        return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
    }
    case LUA_TSTRING: return cJSON_CreateString(lua_tostring(L, idx));
    case LUA_TTABLE: break;
    default: luaL_error(L, "json_encode: cannot encode a %s", luaL_typename(L, idx));
    }
    if (depth > 64) luaL_error(L, "json_encode: nested too deep");
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TNUMBER && lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "json_encode: table keys must be strings or numbers");
        count++;
        lua_pop(L, 1);
    }
    if ((count == n && n > 0) || (count == 0 && is_array_marked(L, idx))) {
        cJSON *a = cJSON_CreateArray();
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            cJSON_AddItemToArray(a, encode(L, -1, depth + 1));
            lua_pop(L, 1);
        }
        return a;
    }
    /* keys as strings, sorted; the strings live in a table at the stack top meanwhile */
    lua_createtable(L, (int)count, 0);
    int keys = lua_gettop(L);
    lua_Integer k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushstring(L, luaL_tolstring(L, -1, NULL));
        lua_remove(L, -2);
        lua_remove(L, -2);
        lua_rawseti(L, keys, ++k);
    }
    const char **names = malloc(sizeof(char *) * (size_t)(k ? k : 1));
    if (!names) luaL_error(L, "json_encode: out of memory");
    for (lua_Integer i = 1; i <= k; i++) { lua_rawgeti(L, keys, i); names[i - 1] = lua_tostring(L, -1); lua_pop(L, 1); }
    qsort(names, (size_t)k, sizeof *names, cmp_str);
    cJSON *o = cJSON_CreateObject();
    for (lua_Integer i = 0; i < k; i++) {
        lua_pushstring(L, names[i]);
        lua_rawget(L, idx);
        if (lua_isnil(L, -1)) {   /* an integer key written as a string */
            lua_pop(L, 1);
            lua_pushinteger(L, strtoll(names[i], NULL, 10));
            lua_rawget(L, idx);
        }
        cJSON_AddItemToObject(o, names[i], encode(L, -1, depth + 1));
        lua_pop(L, 1);
    }
    free(names);
    lua_pop(L, 1);
    return o;
}

static int l_json_encode(lua_State *L) {
    luaL_checkany(L, 1);
    int pretty = lua_toboolean(L, 2);
    lua_settop(L, 1);
    check(L, 1, 0);
    cJSON *j = encode(L, 1, 0);
    char *s = pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return luaL_error(L, "json_encode: out of memory");
    lua_pushstring(L, s);
    cJSON_free(s);
    return 1;
}

static void decode(lua_State *L, const cJSON *j) {
    luaL_checkstack(L, 4, "json_decode: nested too deep");
    if (cJSON_IsBool(j)) lua_pushboolean(L, cJSON_IsTrue(j));
    else if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (v == floor(v) && fabs(v) < 9007199254740992.0) lua_pushinteger(L, (lua_Integer)v);
        else lua_pushnumber(L, v);
    } else if (cJSON_IsString(j)) lua_pushstring(L, j->valuestring);
    else if (cJSON_IsArray(j)) {
        lua_createtable(L, cJSON_GetArraySize(j), 0);
        luaL_setmetatable(L, "qlab.json_array");
        int i = 0;
        for (const cJSON *c = j->child; c; c = c->next) { decode(L, c); lua_rawseti(L, -2, ++i); }
    } else if (cJSON_IsObject(j)) {
        lua_newtable(L);
        for (const cJSON *c = j->child; c; c = c->next) { decode(L, c); lua_setfield(L, -2, c->string); }
    } else lua_pushnil(L);
}

static int l_json_decode(lua_State *L) {
    const char *s = luaL_checkstring(L, 1);
    cJSON *j = cJSON_Parse(s);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        lua_pushnil(L);
        char near[24];   /* lua_pushfstring has no precision: cut the context by hand */
        snprintf(near, sizeof near, "%.20s", at ? at : "?");
        lua_pushfstring(L, "json_decode: malformed JSON near '%s'", near);
        return 2;
    }
    decode(L, j);
    cJSON_Delete(j);
    return 1;
}

static int l_json_array(lua_State *L) {
    if (lua_isnoneornil(L, 1)) lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (lua_getmetatable(L, 1)) {   /* never take over an object's metatable (a QConfig, a class) */
        luaL_getmetatable(L, "qlab.json_array");
        if (!lua_rawequal(L, -1, -2)) return lq_error(L, "the table already has a metatable");
        lua_pop(L, 2);
    }
    luaL_setmetatable(L, "qlab.json_array");
    return 1;
}

void lq_open_json(lua_State *L) {
    static const luaL_Reg fns[] = {{"json_encode", l_json_encode}, {"json_decode", l_json_decode},
                                   {"json_array", l_json_array}, {NULL, NULL}};
    luaL_newmetatable(L, "qlab.json_array");
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__json");
    lua_pop(L, 1);
    luaL_setfuncs(L, fns, 0);
}
