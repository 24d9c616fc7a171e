/* Dynamic quantization from Lua: qlab.core._quantize_dynamic(model, names,
 * dtype) -> a new Model; the options (types, dtype, exclude patterns) are
 * resolved in lua/qlab/dynamic.lua. */
#include <string.h>
#include "lqlab.h"
#include "qlab/alloc.h"
#include "qlab/quant.h"

/* _quantize_dynamic(model, {node names to convert}, "s8" | "f16" | "bf16") */
static int l_quantize_dynamic(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *ds = luaL_checkstring(L, 3);
    ql_dtype dt;
    if (ql_dtype_from_name(ds, &dt) || (dt != QL_DTYPE_S8 && dt != QL_DTYPE_F16 && dt != QL_DTYPE_BF16))
        return lq_error(L, "quantize_dynamic: unknown dtype '%s' (valid: s8, f16, bf16)", ds);
    int *mask = ql_calloc(sizeof *mask * (size_t)g->nnodes);
    if (!mask) return lq_fail(L, QL_ENOMEM);
    lua_Integer n = luaL_len(L, 2);
    for (lua_Integer k = 1; k <= n; k++) {
        lua_geti(L, 2, k);
        const char *name = lua_tostring(L, -1);
        int i = name ? ql_graph_find(g, name) : -1;
        if (i <= 0) {
            ql_free(mask);
            return lq_error(L, "quantize_dynamic: model has no node '%s'", name ? name : "?");
        }
        mask[i] = 1;
        lua_pop(L, 1);
    }
    ql_graph *out = NULL;
    ql_status st = ql_quantize_dynamic(g, mask, dt, &out);
    ql_free(mask);
    if (st != QL_OK) return lq_fail(L, st);
    lq_push_model(L, out);
    return 1;
}

void lq_open_dynamic(lua_State *L) {
    lua_pushcfunction(L, l_quantize_dynamic);
    lua_setfield(L, -2, "_quantize_dynamic");
}
