#!/bin/sh
# Runs the C tests and every Lua test file, then prints the one summary line
# "N passed, N failed" and exits non-zero on any failure.
# usage: tests/run.sh [TEST_C_BINARY QLAB_BINARY] ...   (default build/test_c ./qlab)
# More than one pair runs the suite once per pair (make test: the normal
# build, then the ASan + UBSan one); the last line sums them all.
cd "$(dirname "$0")/.." || exit 2
[ $# -eq 0 ] && set -- build/test_c ./qlab
passed=0; failed=0
log=$(mktemp); trap 'rm -f "$log"' EXIT

count() {  # reads a runner's output, adds its "N passed, N failed" line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
    if [ -z "$line" ]; then failed=$((failed + 1)); echo "FAIL $1: no summary line (crashed?)"; return; fi
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed}
    passed=$((passed + p)); failed=$((failed + f))
}

suite() {  # $1 test_c binary, $2 qlab binary
    TEST_C=$1; QLAB=$2
    export QLAB_BUILD; QLAB_BUILD=$(dirname "$TEST_C")
    echo "== C tests"
    "$TEST_C" >"$log" 2>&1; rc=$?
    grep -v '^ok ' "$log"
    count "$TEST_C"
    [ $rc -ne 0 ] && ! grep -q '^FAIL' "$log" && { failed=$((failed + 1)); echo "FAIL $TEST_C exited $rc"; }

    for t in tests/lua/test_*.lua; do
        [ -e "$t" ] || continue
        echo "== $t"
        QLAB_TEST_BIN="$QLAB" "$QLAB" --script "$t" >"$log" 2>&1; rc=$?
        grep -v '^ok ' "$log"
        count "$t"
        [ $rc -ne 0 ] && ! grep -q '^FAIL' "$log" && { failed=$((failed + 1)); echo "FAIL $t exited $rc"; }
    done

    for t in tests/sh/test_*.sh; do
        [ -e "$t" ] || continue
        echo "== $t"
        QLAB="$QLAB" sh "$t" >"$log" 2>&1
        grep -v '^ok ' "$log"
        count "$t"
    done
}

while [ $# -ge 2 ]; do
    case "$2" in *asan*) echo "==== the suite under AddressSanitizer + UBSan ($2)"; export ASAN_OPTIONS=detect_leaks=1 ;; esac
    suite "$1" "$2"
    shift 2
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
