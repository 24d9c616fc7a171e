#!/bin/sh
# Hostile inputs to the workbench, on the real binary in tmux: a 10,000-node
# model, a one-node model, names with control characters and 500 characters,
# a model whose input does not fit the dataset, a 1x1 terminal and a resize
# back. The layout holds, errors land in the console, nothing crashes, and
# `q` exits 0 with the terminal restored. Ends with "N passed, N failed".
cd "$(dirname "$0")/../.." || exit 2
QLAB=${QLAB:-./qlab}
case "$QLAB" in /*) ;; *) QLAB="$(pwd)/$QLAB" ;; esac
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "ok $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "$2" ] && printf '%s\n' "$2" | sed 's/^/    | /'; }
if ! command -v tmux >/dev/null 2>&1; then
    echo "skip: tmux is not installed (scripts/setup.sh installs it)"; echo "0 passed, 0 failed"; exit 0
fi
T=$(mktemp -d); SOCK="qlabhostile-$$"
tm() { tmux -L "$SOCK" "$@"; }
trap 'tm kill-server >/dev/null 2>&1; rm -rf "$T"' EXIT INT TERM
mkdir -p "$T/home"
T="$T" "$QLAB" -e '
local qlab, T = require "qlab", os.getenv("T")
local b = qlab.nn.graph{input = {4}}
local x = b:input()
for i = 1, 10000 do x = b:relu(string.format("r%05d", i), x) end
b:build(x):save(T .. "/deep.qlm")
local b2 = qlab.nn.graph{input = {4}}
b2:build(b2:linear("only", b2:input(), {out = 2})):save(T .. "/one.qlm")
local b3 = qlab.nn.graph{input = {4}}
local y = b3:linear("ctl\27[31m\t\1name", b3:input(), {out = 3})
b3:build(b3:linear(string.rep("L", 500), y, {out = 2})):save(T .. "/names.qlm")' || fail "hostile models written"

screen() { tm capture-pane -p -t h; }
wait_for() { n=$(( ${2:-10} * 10 )); while [ "$n" -gt 0 ]; do screen 2>/dev/null | grep -qE -- "$1" && return 0; sleep 0.1; n=$((n - 1)); done; return 1; }
start() {   # start MODEL W H
    tm kill-session -t h >/dev/null 2>&1
    cat > "$T/run.sh" <<EOF
export HOME="$T/home" TERM=tmux-256color
stty -g > "$T/tty0"
"$QLAB" --threads 1 "$1" 2> "$T/stderr"
echo EXIT=\$?
[ "\$(stty -g)" = "\$(cat "$T/tty0")" ] && echo RESTORED=yes
sleep 60
EOF
    tm new-session -d -s h -x "$2" -y "$3" "sh $T/run.sh"
}
quit() {   # q (again when it asks about unsaved changes), then the exit line
    tm send-keys -t h q; sleep 0.5
    screen | grep -q "q again quits" && tm send-keys -t h q
    if wait_for "EXIT=0" 10 && screen | grep -q "RESTORED=yes"; then ok "$1: q exits 0, terminal restored"
    else fail "$1: q" "$(screen)"; fi
}

start "$T/deep.qlm" 80 24
if wait_for "layers 10000/10000" 30; then ok "10,000-node model: the table opens and counts every layer"; else fail "deep model" "$(screen)"; fi
tm send-keys -t h End
if wait_for "r10000" 10; then ok "10,000-node model: End reaches the last layer"; else fail "deep End" "$(screen)"; fi
quit "10,000-node model"

start "$T/names.qlm" 80 24
if wait_for "ctl.*name" 15 && ! screen | grep -q "$(printf '\033')"; then ok "control characters are shown, not sent to the terminal"
else fail "control characters" "$(screen)"; fi
w=$(screen | LC_ALL=C.UTF-8 wc -L)   # display width of the widest line
if [ "$w" -le 80 ]; then ok "a 500-character name keeps every line within 80 columns"; else fail "long name: a line of $w columns" "$(screen)"; fi
quit "long names"

start "$T/one.qlm" 80 24
if wait_for "layers 1/1" 15; then ok "one-node model opens"; else fail "one-node model" "$(screen)"; fi
tm send-keys -t h e
if wait_for "does not match|rror|traceback" 30 && screen | grep -q "layers 1/1"; then
    ok "evaluating a model whose input does not fit the data: an error in the console, the workbench lives on"
else fail "evaluate mismatched input" "$(screen)"; fi
tm resize-window -t h -x 1 -y 1 2>/dev/null
sleep 1
tm resize-window -t h -x 80 -y 24 2>/dev/null
if wait_for "layers 1/1" 10; then ok "a 1x1 terminal and back: laid out again"; else fail "1x1 and back" "$(screen)"; fi
quit "one-node model"
start data/models/small_cnn_fmnist.qlm 80 24
if wait_for "layers 8/8" 15; then
    tm send-keys -t h 4 d x   # INT8 as the default, then prepare + calibrate + convert + evaluate
    sleep 0.3
    tm resize-window -t h -x 30 -y 8 2>/dev/null; sleep 0.5
    tm resize-window -t h -x 1 -y 1 2>/dev/null; sleep 0.5
    tm resize-window -t h -x 80 -y 24 2>/dev/null
    if wait_for "now [0-9]+[.][0-9]+" 120 && wait_for "layers [0-9]+/[0-9]+" 10; then ok "resized to 30x8 and 1x1 during a job: the job ends, the screen is laid out again"
    else fail "resize during a job" "$(screen)"; fi
else fail "small_cnn opens" "$(screen)"; fi
quit "resize during a job"
if grep -qi "AddressSanitizer\|runtime error" "$T/stderr"; then fail "sanitizer report" "$(cat "$T/stderr")"; fi
echo "$passed passed, $failed failed"
