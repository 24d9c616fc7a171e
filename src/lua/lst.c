/* Reading a safetensors file's tensors from Lua:
 *   local t, meta = qlab.read_tensors(path)
 * t: name -> Tensor (every tensor of the file, copied, in its own dtype and
 * shape); meta: the __metadata__ entries, key -> string. Errors name the
 * file and the problem (ql_st_read validates everything). */
#include "lqlab.h"
#include "qlab/safetensors.h"

#define QL_MT_STFILE "qlab.StFile"

/* The parsed file lives in a userdata box while the tables are built, so a
 * Lua error half-way (out of memory) still frees it through __gc. */
typedef struct { ql_st_file *f; } l_stfile;

static int l_stfile_gc(lua_State *L) {
    l_stfile *u = luaL_checkudata(L, 1, QL_MT_STFILE);
    ql_st_free(u->f);
    u->f = NULL;
    return 0;
}

static int l_read_tensors(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    l_stfile *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->f = NULL;
    luaL_setmetatable(L, QL_MT_STFILE);
    LQ_TRY(L, ql_st_read(path, &u->f));
    const ql_st_file *f = u->f;

    lua_createtable(L, 0, f->n);
    for (int i = 0; i < f->n; i++) {
        ql_tensor *t;
        LQ_TRY(L, ql_st_tensor(f, &f->entries[i], &t));
        lq_push_tensor(L, t);
        lua_setfield(L, -2, f->entries[i].name);
    }
    lua_createtable(L, 0, f->nmeta);
    for (int i = 0; i < f->nmeta; i++) {
        lua_pushstring(L, f->meta_values[i]);
        lua_setfield(L, -2, f->meta_keys[i]);
    }
    ql_st_free(u->f);   /* done with it; the box's __gc finds NULL */
    u->f = NULL;
    return 2;
}

void lq_open_st(lua_State *L) {
    static const luaL_Reg meta[] = {{"__gc", l_stfile_gc}, {NULL, NULL}};
    luaL_newmetatable(L, QL_MT_STFILE);
    luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
    lua_pushcfunction(L, l_read_tensors);
    lua_setfield(L, -2, "read_tensors");   /* into the qlab.core table on top */
}
