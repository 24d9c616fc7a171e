#!/bin/sh
# The workbench on the real binary, driven through tmux (as htop tests its
# binary in a virtual terminal): keys in with send-keys, screens out with
# capture-pane, at 120x40 and 80x24. Prints ok / FAIL lines and the summary
# line "N passed, N failed". usage: QLAB=./qlab sh tests/sh/test_tui.sh
cd "$(dirname "$0")/../.." || exit 2
QLAB=${QLAB:-./qlab}
case "$QLAB" in /*) ;; *) QLAB="$(pwd)/$QLAB" ;; esac
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "ok $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "$2" ] && printf '%s\n' "$2" | sed 's/^/    | /'; }
summary() { echo "$passed passed, $failed failed"; }

if ! command -v tmux >/dev/null 2>&1; then
    echo "skip: tmux is not installed (scripts/setup.sh installs it); the workbench was not tested"
    summary
    exit 0
fi

T=$(mktemp -d)
SOCK="qlabtest-$$"
tm() { tmux -L "$SOCK" "$@"; }
cleanup() { tm kill-server >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT INT TERM
mkdir -p "$T/home"
MODEL=data/models/small_cnn_fmnist.qlm
# few images, few batches, one thread: short on a shared machine
cat > "$T/opts.lua" <<EOF
WORKBENCH = {val_images = 500, calib_batches = 2, session_path = "$T/session.lua"}
EOF

screen() { tm capture-pane -p -t qt; }
# wait_for PATTERN [SECONDS]: polls the screen until grep -E finds PATTERN
wait_for() {
    n=$(( ${2:-10} * 10 ))
    while [ "$n" -gt 0 ]; do
        screen 2>/dev/null | grep -qE -- "$1" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}
check() {   # check NAME PATTERN [SECONDS]
    if wait_for "$2" "${3:-10}"; then ok "$1"; else fail "$1" "$(screen)"; fi
}
keys() { for k in "$@"; do tm send-keys -t qt "$k"; done; }
type_line() { tm send-keys -t qt -l "$1"; tm send-keys -t qt Enter; }

# start W H LOCALE [OPTS_FILE]: the workbench in a fresh tmux session; the pane then
# reports the exit code and whether the tty settings came back unchanged
start() {
    tm kill-session -t qt >/dev/null 2>&1
    cat > "$T/run.sh" <<EOF
export HOME="$T/home" LC_ALL="$3" TERM=tmux-256color
stty -g > "$T/tty0"
sh -c 'echo \$\$ > "$T/pid"; exec "$QLAB" --threads 1 -e "dofile([[$T/\${1:-opts.lua}]])" $MODEL 2> "$T/stderr"' - $4
echo EXIT=\$?
[ "\$(stty -g)" = "\$(cat "$T/tty0")" ] && echo RESTORED=yes
sleep 60
EOF
    tm new-session -d -s qt -x "$1" -y "$2" -c "$(pwd)" "sh $T/run.sh"
}

# the selected layer: the title of the detail pane
selected() { screen | sed -n '3p' | sed 's/.*[│|]  *\([^ ]*\) *$/\1/'; }
status_top1() { screen | sed -n '2p' | sed -n 's/.*now \([0-9][0-9.]*\).*/\1/p'; }

# --- without a terminal: a message and exit 2
out=$("$QLAB" "$MODEL" </dev/null 2>&1); rc=$?
if [ $rc -eq 2 ] && printf '%s' "$out" | grep -q -- "--script"; then ok "no tty: says how to run headless, exit 2"
else fail "no tty: exit $rc" "$out"; fi

UTF=C.UTF-8
locale -a 2>/dev/null | grep -qi '^c\.utf-\?8$' || UTF=en_US.UTF-8

# --- 120x40
start 120 40 "$UTF"
check "120x40: opens on small_cnn with the layer table" 'layers 8/8' 15
if screen | grep -q 'small_cnn_fmnist.qlm' && screen | grep -qE '^conv1 +conv2d'; then ok "120x40: status bar and rows"
else fail "120x40: status bar and rows" "$(screen)"; fi
keys j j
wait_for '[│|]  conv2 *$' 3
s=$(selected); [ "$s" = conv2 ] && ok "j j selects conv2" || fail "j j selects conv2 (got '$s')" "$(screen)"
keys / f c Enter
check "filter /fc shows 2 layers" 'layers 2/8 +filter /fc/' 3
s=$(selected); [ "$s" = fc1 ] && ok "the filter selects fc1" || fail "the filter selects fc1 (got '$s')" "$(screen)"
keys j
wait_for '[│|]  fc2 *$' 3
s=$(selected); [ "$s" = fc2 ] && ok "j in the filter selects fc2" || fail "j in the filter selects fc2 (got '$s')"
keys / Escape
check "Esc clears the filter" 'layers 8/8' 3
# mouse (xterm protocol, as tmux-256color's kmous): a click on the row of fc1 (screen row 10), then the wheel
tm send-keys -t qt -l "$(printf '\033[M !+')"
wait_for '[│|]  fc1 *$' 3
s=$(selected); [ "$s" = fc1 ] && ok "mouse: a click selects fc1" || fail "mouse: a click selects fc1 (got '$s')" "$(screen)"
tm send-keys -t qt -l "$(printf '\033[M`!+')"
wait_for '[│|]  pool2 *$' 3
s=$(selected); [ "$s" = pool2 ] && ok "mouse: the wheel moves up 3 rows" || fail "mouse: the wheel moves up (got '$s')" "$(screen)"
keys Home j j 4
check "precision: conv2 planned int8 in the table" '^conv2 +conv2d +int8\*' 3
check "precision: the Lua call is echoed" '> wb.set_precision\("conv2", "int8"\)' 3
keys p
check "p echoes wb.prepare()" 'prepared: 1 layer to quantize' 10
keys c
check "c calibrates 2 batches" 'calibrated on 2 batches' 15
keys v
check "v converts" 'converted: ' 10
keys e
check "e evaluates: the status bar shows the current top-1" 'now [0-9]+\.[0-9][0-9]' 30
top1=$(status_top1)
if screen | grep -q "evaluate (converted): top-1 $top1 %"; then ok "status top-1 $top1 = the console's"
else fail "status top-1 '$top1' matches the console" "$(screen)"; fi
check "after convert conv2 runs int8" '^conv2 +qconv2d +int8\* +int8' 3
keys :
type_line 'print(1+1)'
check "console: print(1+1) prints 2" '^2 *$' 5
type_line 'error("boom")'
check "console: an error shows its traceback" 'stack traceback' 5
type_line 'print("still" .. " alive", #m:nodes())'
check "console: the workbench lives on after the error" '^still alive  *[0-9]+' 5
keys Escape C-s
check "Ctrl-S saves the session" 'session saved to ' 5
if [ -s "$T/session.lua" ]; then
    replay=$("$QLAB" --threads 1 --script "$T/session.lua" 2>&1); rc=$?
    if [ $rc -eq 0 ] && [ -n "$top1" ] && printf '%s\n' "$replay" | grep -q "evaluate (converted): top-1 $top1 %"; then
        ok "the saved session replays headless with the same top-1 ($top1)"
    else fail "replay (exit $rc, expected top-1 $top1)" "$replay"; fi
else fail "session file written" "$(screen)"; fi
tm resize-window -t qt -x 60 -y 15
check "60x15: the size message" 'at least 80x24' 5
tm resize-window -t qt -x 120 -y 40
check "back to 120x40: redrawn" 'layers 8/8|layers [0-9]+/[0-9]+' 5
keys q
check "q with unsaved changes asks once" 'unsaved changes' 5
keys q
check "q again: exit 0" '^EXIT=0' 10
check "the terminal is restored" '^RESTORED=yes' 5

# --- 80x24, no UTF-8 locale (ASCII frames), NO_COLOR
tm set-environment -g NO_COLOR 1
start 80 24 C
check "80x24: opens with the layer table" 'layers 8/8' 15
if screen | grep -qE '^-- console' && ! screen | grep -q '│'; then ok "80x24 without UTF-8: ASCII frames"
else fail "80x24 without UTF-8: ASCII frames" "$(screen)"; fi
keys End
wait_for '[|]  fc2 *$' 3
s=$(selected); [ "$s" = fc2 ] && ok "80x24: End selects fc2" || fail "80x24: End selects fc2 (got '$s')" "$(screen)"
keys 6
check "80x24: dynamic INT8 on fc2 shows in the table and the log" 'wb.set_precision\("fc2", "dynamic"\)' 3
if screen | grep -qE '^fc2 +linear +dyn8\*'; then ok "80x24: fc2 planned dyn8"; else fail "80x24: fc2 planned dyn8" "$(screen)"; fi
keys k 2
check "80x24: FP16 on fc1" '^fc1 +linear +fp16\*' 3
keys "?"
check "80x24: ? shows the help" 'qlab workbench: keys' 3
keys Escape :
type_line 'print(1+1)'
check "80x24: print(1+1) prints 2" '^2 *$' 5
tm send-keys -t qt -l 'm:pre'
tm send-keys -t qt Tab
check "80x24: Tab completes m:pre" 'prepare +prepare_qat' 3
keys C-u Escape q
check "80x24: q exits 0 (nothing to save)" '^EXIT=0' 10
check "80x24: the terminal is restored" '^RESTORED=yes' 5
if [ -s "$T/home/.qlab_history" ] && grep -q 'print(1+1)' "$T/home/.qlab_history"; then ok "history kept in \$HOME/.qlab_history"
else fail "history kept in \$HOME/.qlab_history"; fi

# --- SIGTERM and an error at start-up restore the terminal too
start 80 24 "$UTF"
check "SIGTERM: running" 'layers 8/8' 15
keys 4
check "SIGTERM: a step taken before the signal" 'wb.set_precision\("conv1", "int8"\)' 5
kill -TERM "$(cat "$T/pid")"
check "SIGTERM: killed by the signal (exit 143)" '^EXIT=143' 10
check "SIGTERM: the terminal is restored" '^RESTORED=yes' 5
if grep -q 'wb.set_precision("conv1", "int8")' "$T/home/.qlab_last_session.lua" 2>/dev/null; then
    ok "SIGTERM: the session log survives in \$HOME/.qlab_last_session.lua"
else fail "SIGTERM: the session log survives" "$(cat "$T/home/.qlab_last_session.lua" 2>&1)"; fi
cat > "$T/bad.lua" <<EOF
WORKBENCH = {setup = function() error("boom at start-up") end}
EOF
start 80 24 "$UTF" bad.lua
check "a Lua error at start-up: exit 1" '^EXIT=1' 15
check "a Lua error at start-up: the terminal is restored" '^RESTORED=yes' 5
if grep -q "boom at start-up" "$T/stderr"; then ok "a Lua error at start-up: its message on stderr"
else fail "a Lua error at start-up: its message on stderr" "$(cat "$T/stderr")"; fi

summary
[ "$failed" -eq 0 ]
