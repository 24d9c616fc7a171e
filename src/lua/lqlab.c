/* The qlab.core module: seeds, threads, cpu, records; opens every class. */
#include <string.h>
#include <unistd.h>
#include "lqlab.h"
#include "qlab/cpu.h"
#include "qlab/rng.h"
#include "qlab/threads.h"
#include "qlab/version.h"

static int l_seed(lua_State *L) { ql_seed((uint64_t)luaL_checkinteger(L, 1)); return 0; }

static int l_threads(lua_State *L) {
    if (!lua_isnoneornil(L, 1)) {
        lua_Integer n = luaL_checkinteger(L, 1);
        if (n < 0 || n > 1024) return lq_error(L, "threads: %d is not a thread count", (int)n);
        ql_threads_set((int)n);
    }
    lua_pushinteger(L, ql_threads_get());
    return 1;
}

static int l_cpu(lua_State *L) {
    const ql_cpu_features *f = ql_cpu();
    lua_createtable(L, 0, 12);
#define F(x) lua_pushboolean(L, f->x); lua_setfield(L, -2, #x);
    F(avx2) F(fma) F(f16c) F(avx512f) F(avx512bw) F(avx512vl) F(avx512_vnni) F(avx512_bf16) F(avx_vnni)
#undef F
    lua_pushstring(L, ql_isa_name(ql_isa_active())); lua_setfield(L, -2, "isa");
    lua_pushinteger(L, ql_cores()); lua_setfield(L, -2, "cores");
    return 1;
}

/* qlab.record(key, value): kept in the registry table "qlab.records" in
 * insertion order; --json FILE writes them. */
static int l_record(lua_State *L) {
    luaL_checkstring(L, 1);
    luaL_checkany(L, 2);
    if (lua_getfield(L, LUA_REGISTRYINDEX, "qlab.records") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "qlab.records");
    }
    lua_Integer n = luaL_len(L, -1);
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, 1); lua_rawseti(L, -2, 1);
    lua_pushvalue(L, 2); lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, n + 1);
    return 0;
}

/* qlab.stderr_tty() -> true when progress lines can be redrawn in place */
static int l_stderr_tty(lua_State *L) { lua_pushboolean(L, isatty(2)); return 1; }

int luaopen_qlab_core(lua_State *L) {
    static const luaL_Reg fns[] = {{"seed", l_seed}, {"threads", l_threads}, {"cpu", l_cpu},
                                   {"record", l_record}, {"stderr_tty", l_stderr_tty}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushstring(L, QLAB_VERSION);
    lua_setfield(L, -2, "version");
    lq_open_tensor(L);
    lq_open_model(L);
    lq_open_data(L);
    lq_open_builder(L);
    lq_open_bench(L);
    lq_open_st(L);
    lq_open_optim(L);
    lq_open_observer(L);
    lq_open_quant(L);
    lq_open_dynamic(L);
    lq_open_compare(L);
    lq_open_machine(L);
    lq_open_json(L);
    return 1;
}
