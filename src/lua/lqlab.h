/* Shared declarations of the Lua bindings (no engine logic here). */
#ifndef QLAB_LQLAB_H
#define QLAB_LQLAB_H
#include <lua.h>
#include <lauxlib.h>
#include "qlab/error.h"
#include "qlab/graph.h"
#include "qlab/dataset.h"
#include "qlab/tensor.h"

#define QL_MT_TENSOR  "qlab.Tensor"
#define QL_MT_MODEL   "qlab.Model"
#define QL_MT_DATASET "qlab.Dataset"
#define QL_MT_LOADER  "qlab.Loader"
#define QL_MT_BUILDER "qlab.Builder"
#define QL_MT_OPTIM   "qlab.Optimizer"
#define QL_MT_OBSERVER "qlab.Observer"

/* Userdata bodies: a pointer that is NULL once freed. */
typedef struct { ql_tensor *t; } l_tensor;
typedef struct { ql_graph *g; } l_model;
typedef struct { ql_dataset *d; } l_dataset;
typedef struct { ql_loader *l; } l_loader;

/* Raise the engine's last error as a Lua error (never returns). */
int  lq_fail(lua_State *L, ql_status s);
/* luaL_error with the message prefixed by the function's name (as lq_fail). */
int lq_error(lua_State *L, const char *fmt, ...);
#define LQ_TRY(L, expr) do { ql_status _s = (expr); if (_s != QL_OK) lq_fail(L, _s); } while (0)

/* Options from a table argument at index idx (absent table = defaults). */
lua_Integer lq_opt_int(lua_State *L, int idx, const char *key, lua_Integer def);
lua_Number  lq_opt_num(lua_State *L, int idx, const char *key, lua_Number def);
const char *lq_opt_str(lua_State *L, int idx, const char *key, const char *def);
int         lq_opt_bool(lua_State *L, int idx, const char *key, int def);
/* Reads an integer list {a,b,...} (or a single integer, repeated) into out[n]. */
int  lq_opt_ints(lua_State *L, int idx, const char *key, int *out, int n, int def);
/* Rejects option keys not in the NULL-terminated list (catches typos). */
void lq_check_keys(lua_State *L, int idx, const char *what, const char *const *keys);

/* Tensors */
l_tensor   *lq_push_tensor(lua_State *L, ql_tensor *t);   /* takes ownership */
ql_tensor  *lq_check_tensor(lua_State *L, int idx);
/* Models */
l_model    *lq_push_model(lua_State *L, ql_graph *g);     /* takes ownership */
ql_graph   *lq_check_model(lua_State *L, int idx);
ql_loader  *lq_check_loader(lua_State *L, int idx);

/* Progress callback drawing on stderr (terminal only); cancellation by
 * Ctrl-C is handled by the interpreter's hook. The workbench (src/tui)
 * swaps in its own callback while it owns the terminal. */
extern ql_progress lq_progress;

void lq_open_tensor(lua_State *L);
void lq_open_model(lua_State *L);
void lq_open_data(lua_State *L);
void lq_open_builder(lua_State *L);
void lq_open_bench(lua_State *L);
void lq_open_st(lua_State *L);
void lq_open_optim(lua_State *L);   /* after lq_open_model */
void lq_open_observer(lua_State *L);
void lq_open_quant(lua_State *L);   /* after lq_open_model */
void lq_open_dynamic(lua_State *L);   /* qlab.core._quantize_dynamic (ldynamic.c) */
void lq_open_compare(lua_State *L); /* after lq_open_model */
void lq_open_machine(lua_State *L); /* qlab.machine, qlab.peak, qlab.macs ... (lmachine.c) */
void lq_open_json(lua_State *L);    /* qlab.json_encode / json_decode (ljson.c) */
struct ql_observer *lq_check_observer(lua_State *L, int idx);
void lq_push_observer(lua_State *L, struct ql_observer *o);   /* takes ownership */
struct ql_optim *lq_check_optim(lua_State *L, int idx);
int  luaopen_qlab_core(lua_State *L);

/* Records collected by qlab.record(key, value), written by --json. */
int  lq_records_write_json(lua_State *L, const char *path);

#endif
