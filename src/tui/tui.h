/* The curses layer of the workbench: terminal set-up and restore, capture of
 * stdout/stderr while curses owns the screen, keys and mouse, styles and
 * drawing. It knows nothing of panes or models (lua/qlab/workbench does);
 * ltui.c binds it to Lua as the preload module "qlab.tui". */
#ifndef QLAB_TUI_H
#define QLAB_TUI_H
#include <stddef.h>
#include <lua.h>

/* An input event from tui_event. */
typedef enum { TUI_EV_TICK, TUI_EV_KEY, TUI_EV_RESIZE, TUI_EV_MOUSE } tui_ev_kind;

typedef struct {
    tui_ev_kind kind;
    char key[32];   /* "up", "enter", "C-s", "M-x", "a", "é" ...; mouse: "click", "wheelup", "wheeldown" */
    int y, x;       /* mouse position (0-based), resize: lines, cols */
} tui_event;

/* Opens the terminal (stdin / stdout must be ttys); from here on fd 1 and 2
 * go to a capture file read back by tui_drain. 0 on success, else -1 with
 * a message in err. Installs SIGTERM / SIGHUP / SIGQUIT handlers and an
 * atexit hook that restore the terminal. */
int  tui_open(char *err, size_t errlen);
/* Restores the terminal and fd 1 / 2; safe to call twice and when never opened. */
void tui_close(void);
int  tui_active(void);
int  tui_utf8(void);
int  tui_color(void);

/* Waits up to timeout_ms for an event (TUI_EV_TICK when none came). */
void tui_event_wait(int timeout_ms, tui_event *ev);

/* Captured output since the last call, malloc'd (NULL when none); *n its length. */
char *tui_drain(size_t *n);

/* Drawing. style: an index of the style table (normal, bold, sel, error, ...). */
const char *tui_style_name(int i);       /* NULL past the last */
int  tui_style_find(const char *name);   /* -1 when unknown */
void tui_size(int *lines, int *cols);
void tui_erase(void);
/* UTF-8 text at (y, x), clipped to w display columns (w < 0: to the screen
 * edge); pad != 0 fills the rest of w with spaces. Returns columns used. */
int  tui_text(int y, int x, const char *s, size_t len, int style, int w, int pad);
void tui_cursor(int y, int x);   /* y < 0 hides it */
void tui_refresh(void);
void tui_beep(void);

/* Display width of a UTF-8 string (invalid bytes count one column). */
int  tui_width(const char *s, size_t len);

/* "qlab.tui" for package.preload */
int  luaopen_qlab_tui(lua_State *L);

#endif
