#!/bin/sh
# Replays the fuzz seeds and every committed regression input
# (tests/fuzz/corpus/<reader>, tests/fuzz/regress/<reader>) through the
# libFuzzer harnesses, built with the suite's compiler (make test builds
# build/fuzz_replay_<reader>). A crash is a failure; under `make asan` the
# sanitizers make leaks and undefined behaviour failures too.
cd "$(dirname "$0")/../.." || exit 2
BUILD=${QLAB_BUILD:-build}
passed=0; failed=0
for r in qlm graph_json idx cifar onnx; do
    bin=$BUILD/fuzz_replay_$r
    if [ ! -x "$bin" ]; then echo "FAIL $r: $bin not built"; failed=$((failed + 1)); continue; fi
    out=$("$bin" tests/fuzz/corpus/$r tests/fuzz/regress/$r 2>&1); rc=$?
    n=$(echo "$out" | tail -1 | sed -n 's/^\([0-9]*\) passed, 0 failed$/\1/p')
    if [ $rc -eq 0 ] && [ -n "$n" ]; then echo "ok   $r: $n inputs"; passed=$((passed + 1))
    else echo "FAIL $r (exit $rc)"; echo "$out" | tail -20; failed=$((failed + 1)); fi
done
echo "$passed passed, $failed failed"
