#!/bin/sh
# qlab --lab N: the workbench opens on the part's model with its map set and
# its next step typed in the console; a part that does not exist is a usage
# error. Ends with "N passed, N failed".
cd "$(dirname "$0")/../.." || exit 2
QLAB=${QLAB:-./qlab}
case "$QLAB" in /*) ;; *) QLAB="$(pwd)/$QLAB" ;; esac
passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "ok $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "$2" ] && printf '%s\n' "$2" | sed 's/^/    | /'; }
if ! command -v tmux >/dev/null 2>&1; then echo "skip: tmux is not installed"; echo "0 passed, 0 failed"; exit 0; fi
T=$(mktemp -d); SOCK="qlablab-$$"
tm() { tmux -L "$SOCK" "$@"; }
trap 'tm kill-server >/dev/null 2>&1; rm -rf "$T"' EXIT INT TERM
screen() { tm capture-pane -p -t l; }
wait_for() { n=$(( ${2:-10} * 10 )); while [ "$n" -gt 0 ]; do screen 2>/dev/null | grep -qE -- "$1" && return 0; sleep 0.1; n=$((n - 1)); done; return 1; }
if "$QLAB" --lab 9 </dev/null >/dev/null 2>"$T/err"; then fail "--lab 9 accepted"; else
    rc=$?; if [ $rc -eq 2 ] && grep -q "part number 1 to 7" "$T/err"; then ok "--lab 9 is a usage error (exit 2)"; else fail "--lab 9: exit $rc" "$(cat "$T/err")"; fi
fi
mkdir -p "$T/home"
tm new-session -d -s l -x 100 -y 30 "HOME=$T/home TERM=tmux-256color $QLAB --threads 1 --lab 4 2>$T/stderr; echo EXIT=\$?; sleep 30"
if wait_for "mobilenet_v2_fmnist.qlm" 30 && wait_for "part 4, per-channel vs per-tensor" 10; then ok "--lab 4 opens mobilenet_v2 and says which part"
else fail "--lab 4 opens" "$(screen)"; fi
if screen | grep -q "> wb.prepare(); wb.calibrate(); wb.convert(); wb.evaluate(); wb.compare()" &&
   screen | grep -q "hist/pt"; then ok "its map (per-tensor weights) is set and its next step typed in the console"
else fail "--lab 4 map and step" "$(screen)"; fi
tm send-keys -t l C-c Escape q; sleep 0.3; tm send-keys -t l y
if wait_for "EXIT=0" 10; then ok "q exits 0"; else fail "q" "$(screen)"; fi
echo "$passed passed, $failed failed"
