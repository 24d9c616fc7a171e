/* Helpers shared by the bindings: error raising and option tables. */
#include <stdarg.h>
#include <string.h>
#include "lqlab.h"

/* Not const: the workbench (src/tui) points it at its gauge while it owns the screen. */
ql_progress lq_progress = {ql_progress_stderr, NULL};

/* msg prefixed with the running C function's name as the caller wrote it
 * ("load: x.qlm: cannot open") unless it already starts so. */
static int named_error(lua_State *L, const char *msg) {
    lua_Debug ar;
    if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name) {
        size_t n = strlen(ar.name);
        if (strncmp(msg, ar.name, n) || msg[n] != ':') return luaL_error(L, "%s: %s", ar.name, msg);
    }
    return luaL_error(L, "%s", msg);
}

int lq_fail(lua_State *L, ql_status s) {
    (void)s;
    return named_error(L, ql_last_error());
}

int lq_error(lua_State *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const char *msg = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return named_error(L, msg);
}

static int push_field(lua_State *L, int idx, const char *key) {
    if (idx == 0 || lua_isnoneornil(L, idx)) return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, key) == LUA_TNIL) { lua_pop(L, 1); return 0; }
    return 1;
}

lua_Integer lq_opt_int(lua_State *L, int idx, const char *key, lua_Integer def) {
    if (!push_field(L, idx, key)) return def;
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok) lq_error(L, "option '%s' must be an integer, got %s", key, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

lua_Number lq_opt_num(lua_State *L, int idx, const char *key, lua_Number def) {
    if (!push_field(L, idx, key)) return def;
    if (!lua_isnumber(L, -1)) lq_error(L, "option '%s' must be a number, got %s", key, luaL_typename(L, -1));
    lua_Number v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The string stays valid while the option table is alive (it is referenced there). */
const char *lq_opt_str(lua_State *L, int idx, const char *key, const char *def) {
    if (!push_field(L, idx, key)) return def;
    if (lua_type(L, -1) != LUA_TSTRING) lq_error(L, "option '%s' must be a string, got %s", key, luaL_typename(L, -1));
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

int lq_opt_bool(lua_State *L, int idx, const char *key, int def) {
    if (!push_field(L, idx, key)) return def;
    if (!lua_isboolean(L, -1)) lq_error(L, "option '%s' must be a boolean, got %s", key, luaL_typename(L, -1));
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

int lq_opt_ints(lua_State *L, int idx, const char *key, int *out, int n, int def) {
    if (!push_field(L, idx, key)) { for (int i = 0; i < n; i++) out[i] = def; return 0; }
    if (lua_isinteger(L, -1)) {
        for (int i = 0; i < n; i++) out[i] = (int)lua_tointeger(L, -1);
    } else if (lua_istable(L, -1) && (int)luaL_len(L, -1) == n) {
        for (int i = 0; i < n; i++) {
            lua_geti(L, -1, i + 1);
            if (!lua_isinteger(L, -1)) lq_error(L, "option '%s' must hold integers", key);
            out[i] = (int)lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
    } else {
        lq_error(L, "option '%s' must be an integer or a list of %d integers", key, n);
    }
    lua_pop(L, 1);
    return 1;
}

void lq_check_keys(lua_State *L, int idx, const char *what, const char *const *keys) {
    if (idx == 0 || !lua_istable(L, idx)) return;
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) continue;
        const char *k = lua_tostring(L, -1);
        int found = 0;
        for (int i = 0; keys[i]; i++) if (!strcmp(keys[i], k)) { found = 1; break; }
        if (!found) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; keys[i]; i++) { if (i) luaL_addstring(&b, ", "); luaL_addstring(&b, keys[i]); }
            luaL_pushresult(&b);
            lq_error(L, "%s: unknown option '%s' (known: %s)", what, k, lua_tostring(L, -1));
        }
    }
}
