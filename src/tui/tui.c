/* The curses layer: set-up and restore of the terminal (also on SIGTERM,
 * SIGHUP, SIGQUIT and at exit), capture of fd 1 / 2 while curses owns the
 * screen (as htop redirects stderr), key and mouse decoding, styles with a
 * NO_COLOR / monochrome fallback, and clipped UTF-8 text. */
#define _XOPEN_SOURCE 700
#define NCURSES_WIDECHAR 1
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>
#include "tui.h"

static SCREEN *screen;
static FILE *term_out;                    /* a dup of the original stdout: curses writes here */
static int active, is_utf8, has_color;
static int saved_out = -1, saved_err = -1, cap_rd = -1;
static int atexit_done;
static struct sigaction old_term, old_hup, old_quit;

/* Styles: name, colour pair (fg, bg; -1 = terminal default), colour attrs, mono attrs. */
typedef struct { const char *name; short fg, bg; attr_t color_attr, mono_attr; } style_def;

static const style_def styles[] = {
    {"normal", -1, -1, A_NORMAL, A_NORMAL},
    {"bold", -1, -1, A_BOLD, A_BOLD},
    {"dim", COLOR_BLUE, -1, A_BOLD, A_DIM},
    {"header", COLOR_BLACK, COLOR_CYAN, A_NORMAL, A_REVERSE},
    {"sel", COLOR_BLACK, COLOR_YELLOW, A_NORMAL, A_REVERSE},
    {"sel_idle", COLOR_BLACK, COLOR_WHITE, A_NORMAL, A_REVERSE | A_DIM},
    {"status", COLOR_WHITE, COLOR_BLUE, A_BOLD, A_REVERSE},
    {"status_dim", COLOR_CYAN, COLOR_BLUE, A_NORMAL, A_REVERSE},
    {"footer", -1, -1, A_NORMAL, A_NORMAL},
    {"key", COLOR_CYAN, -1, A_BOLD, A_BOLD | A_UNDERLINE},
    {"title", -1, -1, A_BOLD, A_BOLD},
    {"title_focus", COLOR_YELLOW, -1, A_BOLD, A_BOLD | A_REVERSE},
    {"frame", COLOR_BLUE, -1, A_NORMAL, A_NORMAL},
    {"echo", COLOR_CYAN, -1, A_NORMAL, A_BOLD},
    {"input", -1, -1, A_BOLD, A_BOLD},
    {"error", COLOR_RED, -1, A_BOLD, A_BOLD},
    {"ok", COLOR_GREEN, -1, A_NORMAL, A_NORMAL},
    {"warn", COLOR_YELLOW, -1, A_BOLD, A_BOLD},
    {"comment", COLOR_GREEN, -1, A_NORMAL, A_DIM},
    {"gauge", COLOR_BLACK, COLOR_GREEN, A_NORMAL, A_REVERSE},
    {"p_fp32", -1, -1, A_NORMAL, A_NORMAL},
    {"p_half", COLOR_MAGENTA, -1, A_NORMAL, A_BOLD},
    {"p_int8", COLOR_GREEN, -1, A_BOLD, A_BOLD},
    {"p_w4", COLOR_YELLOW, -1, A_BOLD, A_BOLD | A_UNDERLINE},
    {"p_dyn", COLOR_CYAN, -1, A_NORMAL, A_UNDERLINE},
    {"overlay", COLOR_WHITE, COLOR_BLACK, A_NORMAL, A_NORMAL},
    {NULL, 0, 0, 0, 0},
};

const char *tui_style_name(int i) {
    return i >= 0 && i < (int)(sizeof styles / sizeof *styles) ? styles[i].name : NULL;
}

int tui_style_find(const char *name) {
    for (int i = 0; styles[i].name; i++)
        if (!strcmp(styles[i].name, name)) return i;
    return -1;
}

static attr_t style_attr(int s) {
    if (s < 0 || s >= (int)(sizeof styles / sizeof *styles) - 1) s = 0;
    if (!has_color) return styles[s].mono_attr;
    return styles[s].color_attr | COLOR_PAIR(s + 1);
}

int tui_active(void) { return active; }
int tui_utf8(void) { return is_utf8; }
int tui_color(void) { return has_color; }

static void on_fatal(int sig) {
    tui_close();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void at_exit(void) { tui_close(); }

static int open_capture(char *err, size_t errlen) {
    const char *dir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/qlab-out-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) { snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno)); return -1; }
    cap_rd = open(path, O_RDONLY | O_CLOEXEC);
    unlink(path);
    if (cap_rd < 0) { close(fd); snprintf(err, errlen, "cannot reopen the capture file"); return -1; }
    fflush(stdout);
    fflush(stderr);
    saved_out = dup(1);
    saved_err = dup(2);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    return 0;
}

static void close_capture(void) {
    if (saved_out < 0) return;
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    saved_out = saved_err = -1;
    if (cap_rd >= 0) close(cap_rd);
    cap_rd = -1;
}

int tui_open(char *err, size_t errlen) {
    if (active) return 0;
    if (!isatty(0) || !isatty(1)) { snprintf(err, errlen, "stdin and stdout must be a terminal"); return -1; }
    setlocale(LC_CTYPE, "");   /* only the character type: Lua's numbers keep the C locale */
    const char *cs = nl_langinfo(CODESET);
    is_utf8 = cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
    int tfd = dup(1);
    term_out = tfd >= 0 ? fdopen(tfd, "w") : NULL;
    if (!term_out) { snprintf(err, errlen, "cannot duplicate stdout"); return -1; }
    screen = newterm(NULL, term_out, stdin);
    if (!screen) {
        fclose(term_out);
        term_out = NULL;
        const char *t = getenv("TERM");
        snprintf(err, errlen, "cannot open the terminal (TERM=%s)", t ? t : "unset");
        return -1;
    }
    set_term(screen);
    if (open_capture(err, errlen) != 0) {
        endwin();
        delscreen(screen);
        screen = NULL;
        fclose(term_out);
        term_out = NULL;
        return -1;
    }
    active = 1;
    raw();   /* Ctrl-S, Ctrl-C, Ctrl-Z reach us as keys */
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    meta(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    mousemask(BUTTON1_PRESSED | BUTTON1_CLICKED | BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
    mouseinterval(0);
    const char *nc = getenv("NO_COLOR");
    has_color = has_colors() && !(nc && *nc);
    if (has_color) {
        start_color();
        use_default_colors();
        for (int i = 0; styles[i].name; i++) init_pair((short)(i + 1), styles[i].fg, styles[i].bg);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    sigaction(SIGQUIT, &sa, &old_quit);
    if (!atexit_done) { atexit(at_exit); atexit_done = 1; }
    return 0;
}

void tui_close(void) {
    if (!active) return;
    active = 0;
    curs_set(1);
    endwin();
    delscreen(screen);
    screen = NULL;
    fclose(term_out);
    term_out = NULL;
    close_capture();
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
}

char *tui_drain(size_t *n) {
    *n = 0;
    if (cap_rd < 0) return NULL;
    fflush(stdout);
    fflush(stderr);
    size_t cap = 0, len = 0;
    char *buf = NULL;
    for (;;) {
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap + 8192);
            if (!nb) break;
            buf = nb;
            cap += 8192;
        }
        ssize_t r = read(cap_rd, buf + len, cap - len);
        if (r <= 0) break;
        len += (size_t)r;
    }
    if (!len) { free(buf); return NULL; }
    *n = len;
    return buf;
}

/* ---- keys and mouse ---- */

static const struct { int code; const char *name; } keynames[] = {
    {KEY_UP, "up"}, {KEY_DOWN, "down"}, {KEY_LEFT, "left"}, {KEY_RIGHT, "right"},
    {KEY_PPAGE, "pgup"}, {KEY_NPAGE, "pgdn"}, {KEY_HOME, "home"}, {KEY_END, "end"},
    {KEY_A1, "home"}, {KEY_C1, "end"}, {KEY_A3, "pgup"}, {KEY_C3, "pgdn"},
    {KEY_BACKSPACE, "backspace"}, {KEY_DC, "delete"}, {KEY_IC, "insert"}, {KEY_ENTER, "enter"},
    {KEY_BTAB, "btab"}, {KEY_SLEFT, "S-left"}, {KEY_SRIGHT, "S-right"}, {KEY_SHOME, "home"}, {KEY_SEND, "end"},
    {0, NULL},
};

static void utf8_encode(unsigned c, char *out) {
    if (c < 0x80) { out[0] = (char)c; out[1] = 0; }
    else if (c < 0x800) { out[0] = (char)(0xC0 | c >> 6); out[1] = (char)(0x80 | (c & 63)); out[2] = 0; }
    else if (c < 0x10000) {
        out[0] = (char)(0xE0 | c >> 12); out[1] = (char)(0x80 | (c >> 6 & 63)); out[2] = (char)(0x80 | (c & 63));
        out[3] = 0;
    } else {
        out[0] = (char)(0xF0 | c >> 18); out[1] = (char)(0x80 | (c >> 12 & 63));
        out[2] = (char)(0x80 | (c >> 6 & 63)); out[3] = (char)(0x80 | (c & 63)); out[4] = 0;
    }
}

/* a character (not a function key) -> its key name */
static void char_name(wint_t c, char *out, size_t n) {
    if (c == '\r' || c == '\n') snprintf(out, n, "enter");
    else if (c == '\t') snprintf(out, n, "tab");
    else if (c == 127 || c == 8) snprintf(out, n, "backspace");
    else if (c == 27) snprintf(out, n, "esc");
    else if (c == 0) snprintf(out, n, "C-space");
    else if (c < 32) snprintf(out, n, "C-%c", (char)('a' + c - 1));
    else utf8_encode((unsigned)c, out);
}

void tui_event_wait(int timeout_ms, tui_event *ev) {
    memset(ev, 0, sizeof *ev);
    ev->kind = TUI_EV_TICK;
    if (!active) return;
    wtimeout(stdscr, timeout_ms);
    wint_t c;
    int r = wget_wch(stdscr, &c);
    if (r == ERR) return;
    if (r == KEY_CODE_YES) {
        if (c == KEY_RESIZE) {
            ev->kind = TUI_EV_RESIZE;
            getmaxyx(stdscr, ev->y, ev->x);
            return;
        }
        if (c == KEY_MOUSE) {
            MEVENT me;
            if (getmouse(&me) != OK) return;
            ev->kind = TUI_EV_MOUSE;
            ev->y = me.y;
            ev->x = me.x;
            if (me.bstate & BUTTON4_PRESSED) snprintf(ev->key, sizeof ev->key, "wheelup");
            else if (me.bstate & BUTTON5_PRESSED) snprintf(ev->key, sizeof ev->key, "wheeldown");
            else if (me.bstate & (BUTTON1_PRESSED | BUTTON1_CLICKED)) snprintf(ev->key, sizeof ev->key, "click");
            else ev->kind = TUI_EV_TICK;
            return;
        }
        ev->kind = TUI_EV_KEY;
        for (int i = 0; keynames[i].name; i++)
            if (keynames[i].code == (int)c) { snprintf(ev->key, sizeof ev->key, "%s", keynames[i].name); return; }
        if ((int)c >= KEY_F(1) && (int)c <= KEY_F(12)) { snprintf(ev->key, sizeof ev->key, "f%d", (int)c - KEY_F0); return; }
        snprintf(ev->key, sizeof ev->key, "key%d", (int)c);
        return;
    }
    ev->kind = TUI_EV_KEY;
    if (c == 27) {   /* Alt-x arrives as ESC x */
        wtimeout(stdscr, 0);
        wint_t c2;
        int r2 = wget_wch(stdscr, &c2);
        if (r2 == OK && c2 >= 32 && c2 != 127) {
            char s[8];
            utf8_encode((unsigned)c2, s);
            snprintf(ev->key, sizeof ev->key, "M-%s", s);
            return;
        }
        if (r2 == OK) unget_wch((wchar_t)c2);
        else if (r2 == KEY_CODE_YES) ungetch((int)c2);   /* rare: leave it for the next call */
    }
    char_name(c, ev->key, sizeof ev->key);
}

/* ---- drawing ---- */

void tui_size(int *lines, int *cols) {
    if (!active) { *lines = 24; *cols = 80; return; }
    getmaxyx(stdscr, *lines, *cols);
}

void tui_erase(void) { if (active) werase(stdscr); }

static int char_width(wchar_t w) {
    int cw = wcwidth(w);
    return cw < 0 ? 1 : cw;
}

int tui_width(const char *s, size_t len) {
    mbstate_t st;
    memset(&st, 0, sizeof st);
    int cols = 0;
    size_t i = 0;
    while (i < len) {
        wchar_t w;
        size_t k = mbrtowc(&w, s + i, len - i, &st);
        if (k == (size_t)-1 || k == (size_t)-2) { memset(&st, 0, sizeof st); k = 1; w = '?'; }
        else if (k == 0) k = 1;
        cols += char_width(w);
        i += k;
    }
    return cols;
}

int tui_text(int y, int x, const char *s, size_t len, int style, int w, int pad) {
    if (!active) return 0;
    int lines, cols;
    getmaxyx(stdscr, lines, cols);
    if (y < 0 || y >= lines || x < 0 || x >= cols) return 0;
    if (w < 0 || x + w > cols) w = cols - x;
    if (w <= 0) return 0;
    wchar_t buf[1024];
    int nb = 0, used = 0;
    mbstate_t st;
    memset(&st, 0, sizeof st);
    size_t i = 0;
    while (i < len && nb < (int)(sizeof buf / sizeof *buf) - 1) {
        wchar_t c;
        size_t k = mbrtowc(&c, s + i, len - i, &st);
        if (k == (size_t)-1 || k == (size_t)-2) { memset(&st, 0, sizeof st); k = 1; c = '?'; }
        else if (k == 0) k = 1;
        if (c == '\t') c = ' ';
        else if (c < 32 || c == 127) c = '?';
        int cw = char_width(c);
        if (used + cw > w) break;
        buf[nb++] = c;
        used += cw;
        i += k;
    }
    buf[nb] = 0;
    attr_t a = style_attr(style);
    wattrset(stdscr, a);
    /* writing the last cell of the screen scrolls on some terminals: stop short */
    mvwaddnwstr(stdscr, y, x, buf, nb);
    if (pad) for (int c = used; c < w; c++) mvwaddch(stdscr, y, x + c, ' ');
    wattrset(stdscr, A_NORMAL);
    return pad ? w : used;
}

void tui_cursor(int y, int x) {
    if (!active) return;
    if (y < 0) { curs_set(0); return; }
    curs_set(1);
    wmove(stdscr, y, x);
}

void tui_refresh(void) { if (active) wrefresh(stdscr); }
void tui_beep(void) { if (active) beep(); }
