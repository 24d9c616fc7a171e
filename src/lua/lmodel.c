/* Model userdata: a ql_graph. qlab.load, m:save, m:clone, m:nodes,
 * m:forward, m:param / m:set_param, m:load_state_dict, m:size_bytes. */
#include <string.h>
#include <strings.h>
#include "lqlab.h"
#include "qlab/model_file.h"
#include "qlab/onnx.h"

/* A path ending in ".onnx" (any case) is an ONNX file, anything else a .qlm. */
static int is_onnx(const char *path) {
    size_t n = strlen(path);
    return n >= 5 && !strcasecmp(path + n - 5, ".onnx");
}

l_model *lq_push_model(lua_State *L, ql_graph *g) {
    l_model *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->g = NULL;
    luaL_setmetatable(L, QL_MT_MODEL);
    u->g = g;
    return u;
}

ql_graph *lq_check_model(lua_State *L, int idx) {
    l_model *u = luaL_checkudata(L, idx, QL_MT_MODEL);
    if (!u->g) luaL_argerror(L, idx, "attempt to use a freed model");
    return u->g;
}

/* qlab.load(path [, {simulate = bool}]): .onnx (simulate: QDQ on FP32 ops, no INT8 kernels) or .qlm */
static int l_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    static const char *const keys[] = {"simulate", NULL};
    lq_check_keys(L, 2, "load", keys);
    ql_onnx_import o = {.simulate = lq_opt_bool(L, 2, "simulate", 0)};
    ql_graph *g;
    LQ_TRY(L, is_onnx(path) ? ql_onnx_load(path, &g, &o) : ql_model_load(path, &g));
    lq_push_model(L, g);
    return 1;
}

/* m:save(path [, {all_outputs = bool, keep_fusable = bool}]): .onnx (FP32, or QDQ when quantized) or .qlm */
static int l_save(lua_State *L) {
    const char *path = luaL_checkstring(L, 2);
    if (is_onnx(path)) {
        static const char *const keys[] = {"all_outputs", "keep_fusable", NULL};
        lq_check_keys(L, 3, "save", keys);
        ql_onnx_export o = {.all_outputs = lq_opt_bool(L, 3, "all_outputs", 0),
                            .keep_fusable = lq_opt_bool(L, 3, "keep_fusable", 0)};
        LQ_TRY(L, ql_onnx_save(lq_check_model(L, 1), path, &o));
    } else {
        LQ_TRY(L, ql_model_save(lq_check_model(L, 1), path));
    }
    lua_settop(L, 1);
    return 1;
}

static int l_clone(lua_State *L) {
    ql_graph *c = ql_graph_clone(lq_check_model(L, 1));
    if (!c) return lq_fail(L, QL_ENOMEM);
    lq_push_model(L, c);
    return 1;
}

static void push_shape(lua_State *L, int ndim, const int64_t *shape) {
    lua_createtable(L, ndim, 0);
    for (int i = 0; i < ndim; i++) { lua_pushinteger(L, shape[i]); lua_rawseti(L, -2, i + 1); }
}

/* {name, op, inputs, shape, params, precision} per node, input node excluded. */
static int l_nodes(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    lua_createtable(L, g->nnodes - 1, 0);
    for (int i = 1; i < g->nnodes; i++) {
        const ql_node *n = &g->nodes[i];
        lua_createtable(L, 0, 9);
        lua_pushstring(L, n->name); lua_setfield(L, -2, "name");
        lua_pushstring(L, ql_op_name(n->op)); lua_setfield(L, -2, "op");
        lua_createtable(L, n->ninputs, 0);
        for (int j = 0; j < n->ninputs; j++) { lua_pushstring(L, g->nodes[n->inputs[j]].name); lua_rawseti(L, -2, j + 1); }
        lua_setfield(L, -2, "inputs");
        push_shape(L, n->out_ndim, n->out_shape); lua_setfield(L, -2, "shape");
        lua_pushinteger(L, ql_node_param_count(n)); lua_setfield(L, -2, "params");
        lua_pushstring(L, n->precision); lua_setfield(L, -2, "precision");
        lua_pushinteger(L, i); lua_setfield(L, -2, "index");
        lua_pushstring(L, ql_dtype_name(n->out_dtype)); lua_setfield(L, -2, "dtype");   // of its output
        if (n->out_dtype == QL_DTYPE_U8) {   // u8 output: x = (q - zero_point) * scale, q in [qmin, qmax]
            lua_createtable(L, 0, 4);
            lua_pushnumber(L, n->out_scale); lua_setfield(L, -2, "scale");
            lua_pushinteger(L, n->out_zero); lua_setfield(L, -2, "zero_point");
            lua_pushinteger(L, n->out_qmin); lua_setfield(L, -2, "qmin");
            lua_pushinteger(L, n->out_qmax); lua_setfield(L, -2, "qmax");
            lua_setfield(L, -2, "qparams");
        }
        lua_rawseti(L, -2, i);
    }
    return 1;
}

static int l_forward(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    ql_tensor *x = lq_check_tensor(L, 2);
    const ql_tensor *y;
    LQ_TRY(L, ql_graph_forward(g, x, &y, lua_toboolean(L, 3)));
    ql_tensor *c = ql_tensor_clone(y);
    if (!c) return lq_fail(L, QL_ENOMEM);
    lq_push_tensor(L, c);
    return 1;
}

static ql_param *check_param(lua_State *L, ql_graph *g, int idx) {
    const char *name = luaL_checkstring(L, idx);
    ql_param *p = ql_graph_param(g, name);
    if (!p) lq_error(L, "model has no parameter '%s'", name);
    return p;
}

static int l_param(lua_State *L) {
    ql_param *p = check_param(L, lq_check_model(L, 1), 2);
    ql_tensor *c = ql_tensor_clone(p->value);
    if (!c) return lq_fail(L, QL_ENOMEM);
    lq_push_tensor(L, c);
    return 1;
}

static int l_set_param(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    ql_param *p = check_param(L, g, 2);
    ql_tensor *t = lq_check_tensor(L, 3);
    if (t->dtype != p->value->dtype || !ql_tensor_same_shape(t, p->value)) {
        char a[128], b[128];
        return lq_error(L, "set_param '%s': expected %s %s, got %s %s", p->name, ql_dtype_name(p->value->dtype),
                          ql_shape_str(p->value->ndim, p->value->shape, a, sizeof a), ql_dtype_name(t->dtype),
                          ql_shape_str(t->ndim, t->shape, b, sizeof b));
    }
    LQ_TRY(L, ql_tensor_copy(p->value, t));
    g->version++;
    return 0;
}

static int l_params(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    lua_newtable(L);
    int k = 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nparams; j++) {
            lua_pushstring(L, g->nodes[i].params[j].name);
            lua_rawseti(L, -2, ++k);
        }
    return 1;
}

static int l_load_state_dict(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    const char *path = luaL_checkstring(L, 2);
    int strict = lq_opt_bool(L, 3, "strict", 1), n = 0;
    LQ_TRY(L, ql_model_load_state_dict(g, path, strict, &n));
    lua_pushinteger(L, n);
    return 1;
}

static int l_num_params(lua_State *L) { lua_pushinteger(L, ql_graph_param_count(lq_check_model(L, 1))); return 1; }

/* Bytes of every stored tensor, as in the file (the model's real size). */
static int l_size_bytes(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    int64_t s = 0;
    for (int i = 0; i < g->nnodes; i++)
        for (int j = 0; j < g->nodes[i].nparams; j++) s += (int64_t)ql_tensor_bytes(g->nodes[i].params[j].value);
    lua_pushinteger(L, s);
    return 1;
}

static int l_input_shape(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    push_shape(L, g->nodes[0].out_ndim, g->nodes[0].out_shape);
    return 1;
}

static int l_output_shape(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    push_shape(L, g->nodes[g->output].out_ndim, g->nodes[g->output].out_shape);
    return 1;
}

/* Output of a named node from the last forward, if still held. */
static int l_activation(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    const char *name = luaL_checkstring(L, 2);
    int i = ql_graph_find(g, name);
    if (i < 0) return lq_error(L, "model has no node '%s'", name);
    const ql_tensor *t = ql_graph_activation(g, i);
    if (!t) { lua_pushnil(L); return 1; }
    ql_tensor *c = ql_tensor_clone(t);
    if (!c) return lq_fail(L, QL_ENOMEM);
    lq_push_tensor(L, c);
    return 1;
}

static int l_gc(lua_State *L) {
    l_model *u = luaL_checkudata(L, 1, QL_MT_MODEL);
    ql_graph_free(u->g);
    u->g = NULL;
    return 0;
}

static int l_tostring(lua_State *L) {
    l_model *u = luaL_checkudata(L, 1, QL_MT_MODEL);
    if (!u->g) { lua_pushstring(L, "Model (freed)"); return 1; }
    char b[128];
    const ql_node *in = &u->g->nodes[0];
    lua_pushfstring(L, "Model: %d nodes, %I parameters, input %s", u->g->nnodes - 1,
                    (lua_Integer)ql_graph_param_count(u->g), ql_shape_str(in->out_ndim, in->out_shape, b, sizeof b));
    return 1;
}

void lq_open_model(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"save", l_save}, {"clone", l_clone}, {"nodes", l_nodes}, {"forward", l_forward},
        {"param", l_param}, {"set_param", l_set_param}, {"params", l_params},
        {"load_state_dict", l_load_state_dict}, {"num_params", l_num_params},
        {"size_bytes", l_size_bytes}, {"input_shape", l_input_shape}, {"output_shape", l_output_shape},
        {"activation", l_activation}, {"free", l_gc}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", l_gc}, {"__close", l_gc}, {"__tostring", l_tostring}, {NULL, NULL}};
    luaL_newmetatable(L, QL_MT_MODEL);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_load);
    lua_setfield(L, -2, "load");
}
