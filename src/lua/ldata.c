/* Dataset and Loader userdata. A loader keeps its dataset alive through its
 * user value. */
#include <string.h>
#include "lqlab.h"

static l_dataset *push_dataset(lua_State *L, ql_dataset *d) {
    l_dataset *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->d = NULL;
    luaL_setmetatable(L, QL_MT_DATASET);
    u->d = d;
    return u;
}

static ql_dataset *check_dataset(lua_State *L, int idx) {
    l_dataset *u = luaL_checkudata(L, idx, QL_MT_DATASET);
    if (!u->d) luaL_argerror(L, idx, "attempt to use a freed dataset");
    return u->d;
}

ql_loader *lq_check_loader(lua_State *L, int idx) {
    l_loader *u = luaL_checkudata(L, idx, QL_MT_LOADER);
    if (!u->l) luaL_argerror(L, idx, "attempt to use a freed loader");
    return u->l;
}

static const char *const split_keys[] = {"split", "dir", NULL};

/* qlab.data.fashion_mnist{split = "train"|"test", dir = ...} */
static int l_fashion_mnist(lua_State *L) {
    lq_check_keys(L, 1, "fashion_mnist", split_keys);
    const char *split = lq_opt_str(L, 1, "split", "train"), *dir = lq_opt_str(L, 1, "dir", NULL);
    ql_dataset *d;
    LQ_TRY(L, ql_dataset_fashion_mnist(dir, split, &d));
    push_dataset(L, d);
    return 1;
}

static int l_cifar10(lua_State *L) {
    lq_check_keys(L, 1, "cifar10", split_keys);
    const char *split = lq_opt_str(L, 1, "split", "train"), *dir = lq_opt_str(L, 1, "dir", NULL);
    if (!dir) return lq_error(L, "cifar10: give dir = the folder holding data_batch_*.bin and test_batch.bin");
    ql_dataset *d;
    LQ_TRY(L, ql_dataset_cifar10(dir, split, &d));
    push_dataset(L, d);
    return 1;
}

/* qlab.data.idx{images = path, labels = path} */
static int l_idx(lua_State *L) {
    static const char *const keys[] = {"images", "labels", NULL};
    lq_check_keys(L, 1, "idx", keys);
    const char *im = lq_opt_str(L, 1, "images", NULL), *lb = lq_opt_str(L, 1, "labels", NULL);
    if (!im || !lb) return lq_error(L, "idx: give images = and labels = paths");
    ql_dataset *d;
    LQ_TRY(L, ql_dataset_idx(im, lb, &d));
    push_dataset(L, d);
    return 1;
}

static int l_ds_subset(lua_State *L) {
    ql_dataset *d = check_dataset(L, 1), *s;
    lua_Integer start = luaL_checkinteger(L, 2), count = luaL_checkinteger(L, 3);
    LQ_TRY(L, ql_dataset_subset(d, start - 1, count, &s));
    push_dataset(L, s);
    return 1;
}

static int l_ds_len(lua_State *L) { lua_pushinteger(L, check_dataset(L, 1)->n); return 1; }

static int l_ds_info(lua_State *L) {
    ql_dataset *d = check_dataset(L, 1);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, d->name ? d->name : ""); lua_setfield(L, -2, "name");
    lua_pushinteger(L, d->n); lua_setfield(L, -2, "n");
    lua_pushinteger(L, d->h); lua_setfield(L, -2, "h");
    lua_pushinteger(L, d->w); lua_setfield(L, -2, "w");
    lua_pushinteger(L, d->c); lua_setfield(L, -2, "c");
    lua_pushinteger(L, d->nclasses); lua_setfield(L, -2, "classes");
    return 1;
}

/* ds:label(i) -> 0-based class of sample i (1-based) */
static int l_ds_label(lua_State *L) {
    ql_dataset *d = check_dataset(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    if (i < 1 || i > d->n) return lq_error(L, "sample %I out of range 1..%I", (lua_Integer)i, (lua_Integer)d->n);
    lua_pushinteger(L, d->labels[i - 1]);
    return 1;
}

static int read_floats(lua_State *L, int idx, const char *key, float *out, int max) {
    if (!lua_istable(L, idx)) return 0;
    int ty = lua_getfield(L, idx, key), n = 0;
    if (ty == LUA_TNUMBER) { out[0] = (float)lua_tonumber(L, -1); n = 1; }
    else if (ty == LUA_TTABLE) {
        n = (int)luaL_len(L, -1);
        if (n < 1 || n > max) lq_error(L, "loader: '%s' must have 1..%d numbers", key, max);
        for (int i = 0; i < n; i++) { lua_geti(L, -1, i + 1); out[i] = (float)luaL_checknumber(L, -1); lua_pop(L, 1); }
    } else if (ty != LUA_TNIL) lq_error(L, "loader: '%s' must be a number or a list", key);
    lua_pop(L, 1);
    return n;
}

/* ds:loader{batch, shuffle, batches, drop_last, mean, std, seed, crop_pad, flip} */
static int l_ds_loader(lua_State *L) {
    static const char *const keys[] = {"batch", "shuffle", "batches", "drop_last", "mean", "std",
                                       "seed", "crop_pad", "flip", NULL};
    ql_dataset *d = check_dataset(L, 1);
    lq_check_keys(L, 2, "loader", keys);
    ql_loader_opts o;
    ql_loader_opts_default(&o);
    o.batch = (int)lq_opt_int(L, 2, "batch", o.batch);
    o.shuffle = lq_opt_bool(L, 2, "shuffle", 0);
    o.max_batches = lq_opt_int(L, 2, "batches", 0);
    o.drop_last = lq_opt_bool(L, 2, "drop_last", 0);
    o.crop_pad = (int)lq_opt_int(L, 2, "crop_pad", 0);
    o.flip = lq_opt_bool(L, 2, "flip", 0);
    /* a loader's own stream comes from the global generator unless given */
    o.seed = (uint64_t)lq_opt_int(L, 2, "seed", (lua_Integer)(ql_rng_u64(ql_rng_global()) >> 1));
    if (o.batch < 1) return lq_error(L, "loader: batch must be >= 1");
    if (o.max_batches < 0) return lq_error(L, "loader: batches must be >= 0");
    int nm = read_floats(L, 2, "mean", o.mean, 4), ns = read_floats(L, 2, "std", o.std, 4);
    if (nm != ns) return lq_error(L, "loader: mean and std must have the same length");
    if (nm > 1 && nm != d->c) return lq_error(L, "loader: %d means for %d channels", nm, d->c);
    for (int i = 0; i < ns; i++) if (o.std[i] <= 0) return lq_error(L, "loader: std must be > 0");
    o.nnorm = nm;
    ql_loader *ld = ql_loader_new(d, &o);
    if (!ld) return lq_fail(L, QL_EINVAL);
    l_loader *u = lua_newuserdatauv(L, sizeof *u, 1);
    u->l = NULL;
    luaL_setmetatable(L, QL_MT_LOADER);
    u->l = ld;
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);   /* keeps the dataset alive */
    return 1;
}

static int l_ld_len(lua_State *L) { lua_pushinteger(L, ql_loader_num_batches(lq_check_loader(L, 1))); return 1; }
static int l_ld_samples(lua_State *L) { lua_pushinteger(L, ql_loader_num_samples(lq_check_loader(L, 1))); return 1; }
static int l_ld_reset(lua_State *L) { ql_loader_reset(lq_check_loader(L, 1)); return 0; }

/* loader:next() -> x (B,H,W,C) f32, labels (B) s32 tensors, or nil at the end */
static int l_ld_next(lua_State *L) {
    ql_loader *ld = lq_check_loader(L, 1);
    ql_tensor *x = ql_tensor_new(QL_DTYPE_F32, 0, NULL), *y = ql_tensor_new(QL_DTYPE_S32, 0, NULL);
    if (!x || !y) { ql_tensor_free(x); ql_tensor_free(y); return lq_fail(L, QL_ENOMEM); }
    lq_push_tensor(L, x);
    lq_push_tensor(L, y);
    int r = ql_loader_next(ld, x, y);
    if (r < 0) return lq_fail(L, QL_ENOMEM);
    if (r == 0) { lua_pushnil(L); return 1; }
    return 2;
}

/* for x, y in loader:iter() do ... end  (resets first) */
static int iter_step(lua_State *L) {
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(1));
    return l_ld_next(L);
}
static int l_ld_iter(lua_State *L) {
    ql_loader_reset(lq_check_loader(L, 1));
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, iter_step, 1);
    return 1;
}

static int l_ld_dataset(lua_State *L) {
    lq_check_loader(L, 1);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

#define GC_FN(fname, type, mt, field, freefn)                 \
    static int fname(lua_State *L) {                          \
        type *u = luaL_checkudata(L, 1, mt);                  \
        freefn(u->field);                                     \
        u->field = NULL;                                      \
        return 0;                                             \
    }
GC_FN(l_ds_gc, l_dataset, QL_MT_DATASET, d, ql_dataset_free)
GC_FN(l_ld_gc, l_loader, QL_MT_LOADER, l, ql_loader_free)

static int l_ds_tostring(lua_State *L) {
    l_dataset *u = luaL_checkudata(L, 1, QL_MT_DATASET);
    if (!u->d) lua_pushstring(L, "Dataset (freed)");
    else lua_pushfstring(L, "Dataset %s: %d images %dx%dx%d, %d classes", u->d->name ? u->d->name : "",
                         (int)u->d->n, u->d->h, u->d->w, u->d->c, u->d->nclasses);
    return 1;
}

static int l_ld_tostring(lua_State *L) {
    l_loader *u = luaL_checkudata(L, 1, QL_MT_LOADER);
    if (!u->l) lua_pushstring(L, "Loader (freed)");
    else lua_pushfstring(L, "Loader: %d batches of %d (%d samples)", (int)ql_loader_num_batches(u->l),
                         ql_loader_options(u->l)->batch, (int)ql_loader_num_samples(u->l));
    return 1;
}

static void newclass(lua_State *L, const char *mt, const luaL_Reg *meta, const luaL_Reg *methods) {
    luaL_newmetatable(L, mt);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

void lq_open_data(lua_State *L) {
    static const luaL_Reg ds_meta[] = {{"__gc", l_ds_gc}, {"__close", l_ds_gc}, {"__len", l_ds_len},
                                       {"__tostring", l_ds_tostring}, {NULL, NULL}};
    static const luaL_Reg ds_methods[] = {{"loader", l_ds_loader}, {"subset", l_ds_subset}, {"info", l_ds_info},
                                          {"label", l_ds_label}, {"size", l_ds_len}, {"free", l_ds_gc}, {NULL, NULL}};
    static const luaL_Reg ld_meta[] = {{"__gc", l_ld_gc}, {"__close", l_ld_gc}, {"__len", l_ld_len},
                                       {"__tostring", l_ld_tostring}, {NULL, NULL}};
    static const luaL_Reg ld_methods[] = {{"next", l_ld_next}, {"iter", l_ld_iter}, {"reset", l_ld_reset},
                                          {"batches", l_ld_len}, {"samples", l_ld_samples},
                                          {"dataset", l_ld_dataset}, {"free", l_ld_gc}, {NULL, NULL}};
    newclass(L, QL_MT_DATASET, ds_meta, ds_methods);
    newclass(L, QL_MT_LOADER, ld_meta, ld_methods);
    static const luaL_Reg fns[] = {{"fashion_mnist", l_fashion_mnist}, {"cifar10", l_cifar10}, {"idx", l_idx}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushstring(L, QL_FASHION_MNIST_DIR);
    lua_setfield(L, -2, "fashion_mnist_dir");
    lua_setfield(L, -2, "data");
}
