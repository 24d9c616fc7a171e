/* qlab command line: the workbench, headless scripts, and the Lua set-up
 * they share. Runs inside one lua_pcall with a traceback handler (as lua.c). */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>
#include "lua/lqlab.h"
#include "tui/tui.h"
#include "qlab/threads.h"
#include "qlab/version.h"

static const char usage[] =
    "usage: qlab [options] [MODEL]              open the workbench on MODEL (.qlm; default\n"
    "                                           data/models/resnet18_fmnist.qlm)\n"
    "       qlab [options] --lab N               the workbench on part N of lab 2 (1-6, 7: ONNX)\n"
    "       qlab [options] --script FILE [ARGS]  run a Lua script headless\n"
    "\n"
    "The workbench needs a terminal; its keys are listed by `?` and in\n"
    "docs/workbench.md. Ctrl-S saves the session as a script that\n"
    "`qlab --script` replays headless.\n"
    "\n"
    "options:\n"
    "  --script FILE   run FILE (Lua 5.4) with `arg` set like lua(1); `require \"qlab\"`\n"
    "                  gives the library. Exit 0 on success, 1 on a Lua error\n"
    "                  (traceback on stderr), 2 on bad usage.\n"
    "  -e CODE         run CODE (a Lua chunk) before the script or the workbench\n"
    "  --lab N         open the workbench on lab 2's part N, its map set and its next\n"
    "                  step typed in the console (solutions: lua/labs/lab02/)\n"
    "  --json FILE     write the values given to qlab.record(key, value) as JSON\n"
    "  --threads N     threads for OpenMP and OpenBLAS (default: all cores)\n"
    "  --seed N        seed the global generator (default 0)\n"
    "  --help          this text\n"
    "  --version       print the version\n"
    "\n"
    "Progress bars go to stderr when it is a terminal. Environment: QLAB_ISA=\n"
    "scalar|avx2|avx512 caps the kernels' ISA (INT8, and oneDNN's FP32 convs);\n"
    "QLAB_FP32=blas runs FP32 convs on im2col + OpenBLAS instead of oneDNN;\n"
    "QLAB_HOME is the folder holding lua/ (default: the folder of the qlab binary).\n";

typedef struct {
    const char *script, *json, *code, *model;
    int script_idx, threads, lab;   /* lab: --lab N, 0 for none */
    long long seed;
    int argc;
    char **argv;
} options;

static lua_State *globalL;

static void lstop(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

static void on_sigint(int sig) {
    signal(sig, SIG_DFL);   /* a second Ctrl-C kills */
    lua_sethook(globalL, lstop, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Lua modules live in <home>/lua: QLAB_HOME, else the binary's folder. */
static void set_paths(lua_State *L) {
    char home[PATH_MAX] = ".";
    const char *env = getenv("QLAB_HOME");
    if (env) snprintf(home, sizeof home, "%s", env);
    else {
        ssize_t n = readlink("/proc/self/exe", home, sizeof home - 1);
        if (n > 0) {
            home[n] = 0;
            char *slash = strrchr(home, '/');
            if (slash) *slash = 0;
        }
    }
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s", home, home, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 1);
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_qlab_core);
    lua_setfield(L, -2, "qlab.core");
    lua_pushcfunction(L, luaopen_qlab_tui);
    lua_setfield(L, -2, "qlab.tui");
    lua_pop(L, 2);
    lua_pushstring(L, home);
    lua_setglobal(L, "QLAB_HOME");
}

static int docall(lua_State *L, int narg, int nres) {
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    globalL = L;
    signal(SIGINT, on_sigint);
    int st = lua_pcall(L, narg, nres, base);
    signal(SIGINT, SIG_DFL);
    lua_remove(L, base);
    return st;
}

static int report(lua_State *L, int st) {
    if (st != LUA_OK) {
        fprintf(stderr, "qlab: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return st;
}

/* Runs a file with `arg` set: arg[0] = script, arg[1..] = its arguments. */
static int run_script(lua_State *L, const options *o) {
    lua_createtable(L, o->argc - o->script_idx, o->script_idx + 1);
    for (int i = 0; i < o->argc; i++) {
        lua_pushstring(L, o->argv[i]);
        lua_rawseti(L, -2, i - o->script_idx);
    }
    lua_setglobal(L, "arg");
    if (luaL_loadfile(L, o->script) != LUA_OK) return report(L, 1);
    int n = 0;
    for (int i = o->script_idx + 1; i < o->argc; i++, n++) lua_pushstring(L, o->argv[i]);
    return report(L, docall(L, n, 0));
}

static int pmain(lua_State *L) {
    const options *o = lua_touserdata(L, 1);
    luaL_openlibs(L);
    set_paths(L);
    int st = 0;
    if (o->code) {
        st = luaL_loadbuffer(L, o->code, strlen(o->code), "=(command line)") != LUA_OK ? report(L, 1)
                                                                                    : report(L, docall(L, 0, 0));
    }
    if (!st && o->script) st = run_script(L, o);
    const char *model = o->model;
    if (!st && !o->script && o->lab) {   /* --lab N: the part's setup and model (lua/labs/lab02/workbench.lua) */
        lua_getglobal(L, "require");
        lua_pushstring(L, "labs.lab02.workbench");
        st = report(L, docall(L, 1, 1));
        if (!st) {
            lua_getfield(L, -1, "prepare");
            lua_pushinteger(L, o->lab);
            st = report(L, docall(L, 1, 1));
            if (!st && !model) model = lua_tostring(L, -1);   /* stays on the stack while the workbench runs */
        }
    }
    if (!st && !o->script && (!o->code || o->model || o->lab)) {
        /* The workbench: require("qlab.workbench").main(model); the terminal
         * is restored before any error is printed. */
        lua_getglobal(L, "require");
        lua_pushstring(L, "qlab.workbench");
        st = docall(L, 1, 1);
        if (st == LUA_OK) {
            lua_getfield(L, -1, "main");
            lua_remove(L, -2);
            if (model) lua_pushstring(L, model); else lua_pushnil(L);
            st = docall(L, 1, 0);
        }
        tui_close();
        st = report(L, st);
    }
    if (o->json && lq_records_write_json(L, o->json) != 0) {
        fprintf(stderr, "qlab: cannot write %s\n", o->json);
        st = 1;
    }
    lua_pushboolean(L, st == 0);
    return 1;
}

static int bad_usage(const char *msg, const char *what) {
    fprintf(stderr, "qlab: %s%s\nTry 'qlab --help'.\n", msg, what ? what : "");
    return 2;
}

int main(int argc, char **argv) {
    options o = {0};
    o.argc = argc;
    o.argv = argv;
    o.threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(usage, stdout); return 0; }
        if (!strcmp(a, "--version")) { printf("qlab %s (%s)\n", QLAB_VERSION, LUA_RELEASE); return 0; }
        if (!strcmp(a, "--script") || !strcmp(a, "--json") || !strcmp(a, "-e") || !strcmp(a, "--threads") ||
            !strcmp(a, "--seed") || !strcmp(a, "--lab")) {
            if (!next) return bad_usage("missing argument after ", a);
            if (!strcmp(a, "--script")) { o.script = next; o.script_idx = i + 1; break; }
            if (!strcmp(a, "--json")) o.json = next;
            else if (!strcmp(a, "-e")) o.code = next;
            else {
                char *end;
                long long v = strtoll(next, &end, 10);
                if (*end || v < 0) return bad_usage("expected a non-negative integer after ", a);
                if (!strcmp(a, "--threads")) o.threads = (int)v;
                else if (!strcmp(a, "--lab")) {
                    if (v < 1 || v > 7) return bad_usage("--lab takes a part number 1 to 7, not ", next);
                    o.lab = (int)v;
                } else o.seed = v;
            }
            i++;
            continue;
        }
        if (a[0] != '-' && !o.model) { o.model = a; continue; }
        return bad_usage(a[0] == '-' ? "unknown option " : "unexpected argument ", a);
    }
    if (o.script && access(o.script, R_OK) != 0) return bad_usage("cannot read script ", o.script);
    if (!o.script && o.model && access(o.model, R_OK) != 0) return bad_usage("cannot read model ", o.model);
    if (!o.script && (!o.code || o.model || o.lab) && (!isatty(0) || !isatty(1))) {
        fprintf(stderr, "qlab: the workbench needs a terminal (stdin and stdout are not both a tty).\n"
                        "Run headless instead:  qlab --script FILE.lua   (lab solutions in lua/labs/;\n"
                        "a session saved with Ctrl-S in the workbench replays the same way)\n");
        return 2;
    }
    ql_threads_set(o.threads);
    ql_seed((uint64_t)o.seed);
    lua_State *L = luaL_newstate();
    if (!L) { fprintf(stderr, "qlab: cannot create Lua state\n"); return 1; }
    lua_pushcfunction(L, pmain);
    lua_pushlightuserdata(L, &o);
    int st = lua_pcall(L, 1, 1, 0);
    int ok = st == LUA_OK && lua_toboolean(L, -1);
    if (st != LUA_OK) fprintf(stderr, "qlab: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return ok ? 0 : 1;
}
