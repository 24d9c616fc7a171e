#!/bin/sh
# Replays the fuzz seeds and every committed regression input
# (tests/fuzz/corpus/<reader>, tests/fuzz/regress/<reader>) through the
# libFuzzer harnesses, built with the suite's compiler (make test builds
# build/fuzz_replay_<reader>). A crash is a failure; under `make asan` the
# sanitizers make leaks and undefined behaviour failures too. Each input is
# also run mutated (the driver's -m): a short fuzz smoke without clang.
cd "$(dirname "$0")/../.." || exit 2
BUILD=${QLAB_BUILD:-build}
MUT=${QLAB_FUZZ_MUTATIONS:-1000}   # mutated runs per input: the fuzz smoke of every make test
passed=0; failed=0
for r in qlm graph_json idx cifar onnx; do
    bin=$BUILD/fuzz_replay_$r
    if [ ! -x "$bin" ]; then echo "FAIL $r: $bin not built"; failed=$((failed + 1)); continue; fi
    out=$("$bin" -m "$MUT" tests/fuzz/corpus/$r tests/fuzz/regress/$r 2>&1); rc=$?
    n=$(echo "$out" | tail -1 | sed -n 's/^\([0-9]*\) passed, 0 failed$/\1/p')
    if [ $rc -eq 0 ] && [ -n "$n" ]; then echo "ok   $r: $n inputs, each also $MUT times mutated"; passed=$((passed + 1))
    else echo "FAIL $r (exit $rc)"; echo "$out" | tail -20; failed=$((failed + 1)); fi
done
echo "$passed passed, $failed failed"
