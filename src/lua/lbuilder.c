/* Graph builder: qlab.nn.graph{input = {H,W,C}} returns a Builder;
 * b:node(op, name, inputs, opts) appends a node and returns its handle
 * (an integer); b:build(output) returns the Model with PyTorch's default
 * initialisation drawn from the global generator. Sugar per op (b:conv2d ...)
 * lives in lua/qlab/nn.lua. */
#include <string.h>
#include "lqlab.h"

typedef struct { ql_graph *g; } l_builder;

static ql_graph *check_builder(lua_State *L, int idx) {
    l_builder *u = luaL_checkudata(L, idx, QL_MT_BUILDER);
    if (!u->g) lq_error(L, "attempt to use a builder that was already built");
    return u->g;
}

static int read_shape(lua_State *L, int idx, int64_t *shape) {
    int n = (int)luaL_len(L, idx);
    if (n < 1 || n > 3) lq_error(L, "nn.graph: input shape must have 1..3 dimensions ({H,W,C}, {T,F} or {F})");
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) lq_error(L, "nn.graph: input dimensions must be positive integers");
        shape[i] = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    return n;
}

static int l_graph(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "input") != LUA_TTABLE) return lq_error(L, "nn.graph: give input = {H,W,C} (or {T,F}, {F})");
    int64_t shape[3];
    int n = read_shape(L, lua_gettop(L), shape);
    l_builder *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->g = NULL;
    luaL_setmetatable(L, QL_MT_BUILDER);
    u->g = ql_graph_new(n, shape);
    if (!u->g) return lq_fail(L, QL_ENOMEM);
    return 1;
}

static int resolve(lua_State *L, ql_graph *g, int idx) {
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Integer i = lua_tointeger(L, idx);
        if (i < 0 || i >= g->nnodes) lq_error(L, "no node with handle %I", (lua_Integer)i);
        return (int)i;
    }
    const char *name = luaL_checkstring(L, idx);
    int i = ql_graph_find(g, name);
    if (i < 0) lq_error(L, "no node named '%s'", name);
    return i;
}

static const char *const node_keys[] = {"kernel", "stride", "padding", "dilation", "groups", "out", "in",
                                        "bias", "eps", "momentum", "hidden", "layers", "ceil_mode",
                                        "count_include_pad", NULL};

static int l_node(lua_State *L) {
    ql_graph *g = check_builder(L, 1);
    const char *opname = luaL_checkstring(L, 2), *name = luaL_checkstring(L, 3);
    ql_op_type op;
    if (ql_op_from_name(opname, &op) != 0 || op == QL_OP_INPUT) return lq_error(L, "unknown op '%s'", opname);
    int inputs[QL_MAX_INPUTS], nin = 0;
    if (lua_istable(L, 4)) {
        nin = (int)luaL_len(L, 4);
        if (nin > QL_MAX_INPUTS) return lq_error(L, "node '%s': too many inputs", name);
        for (int i = 0; i < nin; i++) { lua_geti(L, 4, i + 1); inputs[i] = resolve(L, g, -1); lua_pop(L, 1); }
    } else { inputs[0] = resolve(L, g, 4); nin = 1; }
    lq_check_keys(L, 5, opname, node_keys);
    ql_attrs a;
    ql_attrs_default(&a);
    int k[2];
    if (lq_opt_ints(L, 5, "kernel", k, 2, 0)) { a.kernel[0] = k[0]; a.kernel[1] = k[1]; }
    if (lq_opt_ints(L, 5, "stride", k, 2, 1)) { a.stride[0] = k[0]; a.stride[1] = k[1]; }
    else if (op == QL_OP_MAXPOOL2D || op == QL_OP_AVGPOOL2D) { a.stride[0] = a.kernel[0]; a.stride[1] = a.kernel[1]; }
    if (lq_opt_ints(L, 5, "padding", k, 2, 0)) { a.padding[0] = k[0]; a.padding[1] = k[1]; }
    if (lq_opt_ints(L, 5, "dilation", k, 2, 1)) { a.dilation[0] = k[0]; a.dilation[1] = k[1]; }
    a.groups = (int)lq_opt_int(L, 5, "groups", a.groups);
    a.out_ch = (int)lq_opt_int(L, 5, "out", lq_opt_int(L, 5, "hidden", 0));
    a.in_ch = (int)lq_opt_int(L, 5, "in", 0);
    a.bias = lq_opt_bool(L, 5, "bias", a.bias);
    a.eps = (float)lq_opt_num(L, 5, "eps", a.eps);
    a.momentum = (float)lq_opt_num(L, 5, "momentum", a.momentum);
    a.layers = (int)lq_opt_int(L, 5, "layers", a.layers);
    a.ceil_mode = lq_opt_bool(L, 5, "ceil_mode", 0);
    a.count_include_pad = lq_opt_bool(L, 5, "count_include_pad", a.count_include_pad);
    int idx = ql_graph_add(g, name, op, inputs, nin, &a);
    if (idx < 0) return lq_fail(L, QL_EINVAL);
    lua_pushinteger(L, idx);
    return 1;
}

static int l_input(lua_State *L) { check_builder(L, 1); lua_pushinteger(L, 0); return 1; }

/* b:shape(handle) -> per-sample output shape of that node */
static int l_shape(lua_State *L) {
    ql_graph *g = check_builder(L, 1);
    const ql_node *n = &g->nodes[resolve(L, g, 2)];
    lua_createtable(L, n->out_ndim, 0);
    for (int i = 0; i < n->out_ndim; i++) { lua_pushinteger(L, n->out_shape[i]); lua_rawseti(L, -2, i + 1); }
    return 1;
}

static int l_build(lua_State *L) {
    l_builder *u = luaL_checkudata(L, 1, QL_MT_BUILDER);
    ql_graph *g = check_builder(L, 1);
    int out = lua_isnoneornil(L, 2) ? g->nnodes - 1 : resolve(L, g, 2);
    LQ_TRY(L, ql_graph_set_output(g, out));
    ql_graph_init_params(g, ql_rng_global());
    u->g = NULL;
    lq_push_model(L, g);
    return 1;
}

static int l_gc(lua_State *L) {
    l_builder *u = luaL_checkudata(L, 1, QL_MT_BUILDER);
    ql_graph_free(u->g);
    u->g = NULL;
    return 0;
}

void lq_open_builder(lua_State *L) {
    static const luaL_Reg methods[] = {{"node", l_node}, {"input", l_input}, {"shape", l_shape},
                                       {"build", l_build}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", l_gc}, {NULL, NULL}};
    luaL_newmetatable(L, QL_MT_BUILDER);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushcfunction(L, l_graph);
    lua_setfield(L, -2, "graph");
    lua_setfield(L, -2, "nn");
}
