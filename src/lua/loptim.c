/* Optimizer userdata and the training step:
 *   local opt = qlab.optim.sgd{lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 5e-4}
 *   local loss, correct = model:train_step(opt, x, labels, lr)  */
#include <string.h>
#include "lqlab.h"
#include "qlab/checkpoint.h"
#include "qlab/optim.h"
#include "qlab/alloc.h"

typedef struct { ql_optim *o; } l_optim;

ql_optim *lq_check_optim(lua_State *L, int idx) {
    l_optim *u = luaL_checkudata(L, idx, QL_MT_OPTIM);
    if (!u->o) luaL_argerror(L, idx, "attempt to use a freed optimizer");
    return u->o;
}

static int make(lua_State *L, ql_optim_kind kind) {
    static const char *const keys[] = {"lr", "momentum", "dampening", "nesterov", "weight_decay",
                                       "betas", "eps", NULL};
    static const char *const names[] = {"sgd", "adam", "adamw"};
    lq_check_keys(L, 1, names[kind], keys);
    ql_optim_opts o;
    ql_optim_opts_default(&o, kind);
    o.lr = (float)lq_opt_num(L, 1, "lr", o.lr);
    o.weight_decay = (float)lq_opt_num(L, 1, "weight_decay", o.weight_decay);
    o.eps = (float)lq_opt_num(L, 1, "eps", o.eps);
    if (kind == QL_OPTIM_SGD) {
        o.momentum = (float)lq_opt_num(L, 1, "momentum", 0);
        o.dampening = (float)lq_opt_num(L, 1, "dampening", 0);
        o.nesterov = lq_opt_bool(L, 1, "nesterov", 0);
        if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
            return lq_error(L, "sgd: nesterov needs momentum > 0 and zero dampening");
    } else if (lua_istable(L, 1) && lua_getfield(L, 1, "betas") == LUA_TTABLE) {
        lua_geti(L, -1, 1); lua_geti(L, -2, 2);
        o.beta1 = (float)luaL_checknumber(L, -2);
        o.beta2 = (float)luaL_checknumber(L, -1);
        lua_pop(L, 3);
    }
    if (o.lr < 0 || o.momentum < 0 || o.weight_decay < 0 || o.beta1 < 0 || o.beta1 >= 1 || o.beta2 < 0 || o.beta2 >= 1)
        return lq_error(L, "%s: lr, momentum and weight_decay must be >= 0 and betas in [0,1)", names[kind]);
    l_optim *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->o = NULL;
    luaL_setmetatable(L, QL_MT_OPTIM);
    u->o = ql_optim_new(&o);
    if (!u->o) return lq_fail(L, QL_ENOMEM);
    return 1;
}

static int l_sgd(lua_State *L) { return make(L, QL_OPTIM_SGD); }
static int l_adam(lua_State *L) { return make(L, QL_OPTIM_ADAM); }
static int l_adamw(lua_State *L) { return make(L, QL_OPTIM_ADAMW); }

static int l_steps(lua_State *L) { lua_pushinteger(L, ql_optim_steps(lq_check_optim(L, 1))); return 1; }

static int l_lr(lua_State *L) { lua_pushnumber(L, ql_optim_options(lq_check_optim(L, 1))->lr); return 1; }

/* opt:state() -> {name = Tensor (copy)}, steps */
static int l_state(lua_State *L) {
    ql_optim *o = lq_check_optim(L, 1);
    lua_newtable(L);
    for (int i = 0; i < ql_optim_state_count(o); i++) {
        ql_tensor *c = ql_tensor_clone(ql_optim_state_tensor(o, i));
        if (!c) return lq_fail(L, QL_ENOMEM);
        lq_push_tensor(L, c);
        lua_setfield(L, -2, ql_optim_state_name(o, i));
    }
    lua_pushinteger(L, ql_optim_steps(o));
    return 2;
}

/* opt:set_state({name = Tensor}, steps) */
static int l_set_state(lua_State *L) {
    ql_optim *o = lq_check_optim(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        LQ_TRY(L, ql_optim_state_set(o, luaL_checkstring(L, -2), lq_check_tensor(L, -1)));
        lua_pop(L, 1);
    }
    ql_optim_set_steps(o, luaL_checkinteger(L, 3));
    return 0;
}

/* model:train_step(opt, x, labels [, lr]) -> loss, correct */
static int l_train_step(lua_State *L) {
    ql_graph *g = lq_check_model(L, 1);
    ql_optim *o = lq_check_optim(L, 2);
    ql_tensor *x = lq_check_tensor(L, 3), *y = lq_check_tensor(L, 4);
    float lr = (float)luaL_optnumber(L, 5, ql_optim_options(o)->lr), loss;
    int64_t correct;
    LQ_TRY(L, ql_train_step(g, o, x, y, lr, &loss, &correct));
    lua_pushnumber(L, loss);
    lua_pushinteger(L, correct);
    return 2;
}

/* qlab.checkpoint_save(path, model, opt, loader, state_text) */
static int l_ckpt_save(lua_State *L) {
    ql_graph *g = lq_check_model(L, 2);
    ql_optim *o = lq_check_optim(L, 3);
    ql_loader *ld = lq_check_loader(L, 4);
    LQ_TRY(L, ql_checkpoint_save(luaL_checkstring(L, 1), g, o, ql_loader_rng(ld), luaL_checkstring(L, 5)));
    return 0;
}

/* qlab.checkpoint_load(path, model, opt, loader) -> state_text */
static int l_ckpt_load(lua_State *L) {
    ql_graph *g = lq_check_model(L, 2);
    ql_optim *o = lq_check_optim(L, 3);
    ql_loader *ld = lq_check_loader(L, 4);
    char *text = NULL;
    LQ_TRY(L, ql_checkpoint_load(luaL_checkstring(L, 1), g, o, ql_loader_rng(ld), &text));
    lua_pushstring(L, text);
    ql_free(text);
    return 1;
}

static int l_gc(lua_State *L) {
    l_optim *u = luaL_checkudata(L, 1, QL_MT_OPTIM);
    ql_optim_free(u->o);
    u->o = NULL;
    return 0;
}

static int l_tostring(lua_State *L) {
    l_optim *u = luaL_checkudata(L, 1, QL_MT_OPTIM);
    if (!u->o) { lua_pushstring(L, "Optimizer (freed)"); return 1; }
    const ql_optim_opts *o = ql_optim_options(u->o);
    static const char *names[] = {"sgd", "adam", "adamw"};
    lua_pushfstring(L, "Optimizer %s lr=%f after %I steps", names[o->kind], (double)o->lr, (lua_Integer)ql_optim_steps(u->o));
    return 1;
}

void lq_open_optim(lua_State *L) {
    static const luaL_Reg meta[] = {{"__gc", l_gc}, {"__close", l_gc}, {"__tostring", l_tostring}, {NULL, NULL}};
    static const luaL_Reg methods[] = {{"steps", l_steps}, {"lr", l_lr}, {"state", l_state},
                                       {"set_state", l_set_state}, {"free", l_gc}, {NULL, NULL}};
    luaL_newmetatable(L, QL_MT_OPTIM);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"sgd", l_sgd}, {"adam", l_adam}, {"adamw", l_adamw}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_setfield(L, -2, "optim");
    lua_pushcfunction(L, l_ckpt_save);
    lua_setfield(L, -2, "checkpoint_save");
    lua_pushcfunction(L, l_ckpt_load);
    lua_setfield(L, -2, "checkpoint_load");
    /* model:train_step */
    luaL_getmetatable(L, QL_MT_MODEL);
    lua_getfield(L, -1, "__index");
    lua_pushcfunction(L, l_train_step);
    lua_setfield(L, -2, "train_step");
    lua_pop(L, 2);
}
