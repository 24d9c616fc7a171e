/* The "qlab.tui" Lua module: the curses layer (tui.c) as Lua functions.
 *   tui.open() -> true | nil, message      tui.close()      tui.active()
 *   tui.info() -> {utf8 =, color =}        tui.size() -> lines, cols
 *   tui.erase()   tui.text(y, x, s [, style [, w [, pad]]]) -> columns
 *   tui.cursor(y, x) / tui.cursor() hides  tui.refresh()    tui.beep()
 *   tui.width(s) -> display columns        tui.drain() -> captured output | nil
 *   tui.loop(on_event, draw, tick_ms)      the event loop, see l_loop
 *   tui.on_progress(fn | nil)              fn(done, total, label) from the engine's
 *                                          progress callback while the screen is ours;
 *                                          fn returning true asks the engine to cancel
 *   tui.poll() -> kind, a, b, c | nil      the next pending event without waiting
 *                                          (as tui.loop passes them), for running jobs
 *   tui.HANDLED, tui.REDRAW, tui.BREAK     the flags on_event returns (htop's panels)
 * Coordinates are 0-based (y, x), as curses has them. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lauxlib.h>
#include "lua/lqlab.h"
#include "qlab/progress.h"
#include "tui.h"

enum { F_HANDLED = 1, F_REDRAW = 2, F_BREAK = 4 };

static char progress_key;   /* registry: the Lua progress function */
static char thread_key;     /* registry: the thread it runs on */

static int style_arg(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx)) return 0;
    if (lua_type(L, idx) == LUA_TNUMBER) return (int)lua_tointeger(L, idx);
    int s = tui_style_find(luaL_checkstring(L, idx));
    return s < 0 ? 0 : s;
}

static int l_open(lua_State *L) {
    char err[256];
    if (tui_open(err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static void progress_off(void) {
    lq_progress.fn = ql_progress_stderr;
    lq_progress.ud = NULL;
}

static int l_close(lua_State *L) {
    progress_off();
    tui_close();
    return 0;
}

static int l_active(lua_State *L) { lua_pushboolean(L, tui_active()); return 1; }

static int l_info(lua_State *L) {
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, tui_utf8()); lua_setfield(L, -2, "utf8");
    lua_pushboolean(L, tui_color()); lua_setfield(L, -2, "color");
    return 1;
}

static int l_size(lua_State *L) {
    int lines, cols;
    tui_size(&lines, &cols);
    lua_pushinteger(L, lines);
    lua_pushinteger(L, cols);
    return 2;
}

static int l_erase(lua_State *L) { tui_erase(); return 0; }

static int l_text(lua_State *L) {
    int y = (int)luaL_checkinteger(L, 1), x = (int)luaL_checkinteger(L, 2);
    size_t len;
    const char *s = luaL_checklstring(L, 3, &len);
    int style = style_arg(L, 4);
    int w = (int)luaL_optinteger(L, 5, -1);
    lua_pushinteger(L, tui_text(y, x, s, len, style, w, lua_toboolean(L, 6)));
    return 1;
}

static int l_cursor(lua_State *L) {
    if (lua_isnoneornil(L, 1)) tui_cursor(-1, 0);
    else tui_cursor((int)luaL_checkinteger(L, 1), (int)luaL_checkinteger(L, 2));
    return 0;
}

static int l_refresh(lua_State *L) { tui_refresh(); return 0; }
static int l_beep(lua_State *L) { tui_beep(); return 0; }

static int l_width(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_pushinteger(L, tui_width(s, len));
    return 1;
}

static int l_drain(lua_State *L) {
    size_t n;
    char *s = tui_drain(&n);
    if (!s) { lua_pushnil(L); return 1; }
    lua_pushlstring(L, s, n);
    free(s);
    return 1;
}

/* pushes an event as tui.loop passes it to on_event; returns how many values */
static int push_event(lua_State *L, const tui_event *ev) {
    switch (ev->kind) {
    case TUI_EV_TICK: lua_pushliteral(L, "tick"); return 1;
    case TUI_EV_KEY: lua_pushliteral(L, "key"); lua_pushstring(L, ev->key); return 2;
    case TUI_EV_RESIZE:
        lua_pushliteral(L, "resize"); lua_pushinteger(L, ev->y); lua_pushinteger(L, ev->x); return 3;
    case TUI_EV_MOUSE:
        lua_pushliteral(L, "mouse"); lua_pushstring(L, ev->key);
        lua_pushinteger(L, ev->y); lua_pushinteger(L, ev->x); return 4;
    }
    return 0;
}

static int l_poll(lua_State *L) {
    if (!tui_active()) { lua_pushnil(L); return 1; }
    tui_event ev;
    tui_event_wait(0, &ev);
    if (ev.kind == TUI_EV_TICK) { lua_pushnil(L); return 1; }
    return push_event(L, &ev);
}

/* tui.loop(on_event, draw, tick_ms): draw() once, then for every event
 *   on_event("tick") | on_event("key", name) | on_event("resize", lines, cols)
 *   | on_event("mouse", "click" | "wheelup" | "wheeldown", y, x)
 * returns flags (HANDLED | REDRAW | BREAK); REDRAW calls draw(), BREAK
 * returns from the loop. A resize always redraws. Errors propagate. */
static int l_loop(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    int tick = (int)luaL_optinteger(L, 3, 100);
    if (!tui_active()) return luaL_error(L, "tui.loop: the terminal is not open (tui.open() first)");
    lua_pushvalue(L, 2);
    lua_call(L, 0, 0);
    for (;;) {
        tui_event ev;
        tui_event_wait(tick, &ev);
        lua_pushvalue(L, 1);
        int n = push_event(L, &ev);
        lua_call(L, n, 1);
        int flags = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (flags & F_BREAK) break;
        if ((flags & F_REDRAW) || ev.kind == TUI_EV_RESIZE) {
            lua_pushvalue(L, 2);
            lua_call(L, 0, 0);
        }
    }
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The engine's progress callback while the workbench owns the screen: calls
 * the Lua function at most 20 times a second (and at the end) on a thread of
 * its own, so it is safe from inside any running C function. The function
 * returning true cancels the engine's call (it stops at that report). */
static int tui_progress(void *ud, int64_t done, int64_t total, const char *label) {
    static double last;
    lua_State *T = ud;
    double t = now_s();
    if (done < total && t - last < 0.05) return 0;
    last = t;
    if (!lua_checkstack(T, 6)) return 0;
    int top = lua_gettop(T), cancel = 0;
    if (lua_rawgetp(T, LUA_REGISTRYINDEX, &progress_key) == LUA_TFUNCTION) {
        lua_pushinteger(T, done);
        lua_pushinteger(T, total);
        lua_pushstring(T, label ? label : "");
        /* an error in the gauge must not break the job */
        if (lua_pcall(T, 3, 1, 0) == LUA_OK) cancel = lua_toboolean(T, -1);
    }
    lua_settop(T, top);
    return cancel;
}

static int l_on_progress(lua_State *L) {
    if (lua_isnoneornil(L, 1)) {
        progress_off();
        lua_pushnil(L);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &progress_key);
        return 0;
    }
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &progress_key);
    lua_State *T;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &thread_key) == LUA_TTHREAD) T = lua_tothread(L, -1);
    else {
        lua_pop(L, 1);
        T = lua_newthread(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &thread_key);
    }
    lua_pop(L, 1);
    lq_progress.fn = tui_progress;
    lq_progress.ud = T;
    return 0;
}

int luaopen_qlab_tui(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"open", l_open}, {"close", l_close}, {"active", l_active}, {"info", l_info}, {"size", l_size},
        {"erase", l_erase}, {"text", l_text}, {"cursor", l_cursor}, {"refresh", l_refresh}, {"beep", l_beep},
        {"width", l_width}, {"drain", l_drain}, {"loop", l_loop}, {"on_progress", l_on_progress}, {"poll", l_poll},
        {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushinteger(L, F_HANDLED); lua_setfield(L, -2, "HANDLED");
    lua_pushinteger(L, F_REDRAW); lua_setfield(L, -2, "REDRAW");
    lua_pushinteger(L, F_BREAK); lua_setfield(L, -2, "BREAK");
    lua_createtable(L, 0, 32);
    for (int i = 0; tui_style_name(i); i++) {
        lua_pushinteger(L, i);
        lua_setfield(L, -2, tui_style_name(i));
    }
    lua_setfield(L, -2, "style");
    return 1;
}
