/* Writes qlab.record() results as one JSON object (for --json FILE).
 * Lua sequences become arrays, other tables objects, NaN/inf null. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include "lqlab.h"

static cJSON *to_json(lua_State *L, int idx, int depth) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return cJSON_CreateNull();
    case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER: {
        double v = lua_tonumber(L, idx);
        return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
    }
    case LUA_TSTRING: return cJSON_CreateString(lua_tostring(L, idx));
    case LUA_TTABLE: {
        if (depth > 32) return cJSON_CreateString("<nested too deep>");
        lua_Integer n = luaL_len(L, idx), count = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) { count++; lua_pop(L, 1); }
        if (count == n && n > 0) {
            cJSON *a = cJSON_CreateArray();
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, idx, i);
                cJSON_AddItemToArray(a, to_json(L, -1, depth + 1));
                lua_pop(L, 1);
            }
            return a;
        }
        cJSON *o = cJSON_CreateObject();
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pushvalue(L, -2);
            const char *k = luaL_tolstring(L, -1, NULL);
            cJSON_AddItemToObject(o, k, to_json(L, -3, depth + 1));
            lua_pop(L, 3);
        }
        return o;
    }
    default: {
        const char *s = luaL_tolstring(L, idx, NULL);
        cJSON *j = cJSON_CreateString(s);
        lua_pop(L, 1);
        return j;
    }
    }
}

int lq_records_write_json(lua_State *L, const char *path) {
    cJSON *root = cJSON_CreateObject();
    if (lua_getfield(L, LUA_REGISTRYINDEX, "qlab.records") == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, -1, i);
            lua_geti(L, -1, 1);
            lua_geti(L, -2, 2);
            const char *k = lua_tostring(L, -2);
            cJSON_DeleteItemFromObject(root, k);   /* last record of a key wins */
            cJSON_AddItemToObject(root, k, to_json(L, -1, 0));
            lua_pop(L, 3);
        }
    }
    lua_pop(L, 1);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return -1;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = 0;
    cJSON_free(text);
    if (!ok || rename(tmp, path) != 0) { remove(tmp); return -1; }
    return 0;
}
