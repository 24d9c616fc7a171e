#!/bin/sh
# The peer benchmark's plumbing, no timing: scripts/bench_peers.sh --help exits 0 and
# describes the options, bad arguments exit 2, --repeat's combiner takes medians over
# canned runs, and the table builder
# (scripts/bench_peers_table.lua) turns canned figures into the right cells: the best peer
# and qlab's ratio to it (times and rates), qlab's fraction of peak, a PyTorch crash and a
# skipped ONNX Runtime shown as footnotes, table.md and table.json written.
cd "$(dirname "$0")/../.." || exit 2
QLAB=${QLAB:-./qlab}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
passed=0; failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
has() { grep -qF -- "$1" "$T/out.txt"; }

if sh scripts/bench_peers.sh --help >"$T/help.txt" 2>&1 && grep -q -- '--quick' "$T/help.txt" &&
   grep -q -- '--models' "$T/help.txt" && ! grep -q '^set ' "$T/help.txt"; then
    ok "bench_peers.sh --help exits 0 and lists --quick and --models"
else fail "bench_peers.sh --help"; cat "$T/help.txt"; fi
sh scripts/bench_peers.sh --bogus >/dev/null 2>&1; rc=$?
if [ $rc -eq 2 ]; then ok "an unknown argument exits 2"; else fail "an unknown argument exited $rc, not 2"; fi
sh scripts/bench_peers.sh --models vgg16 >/dev/null 2>&1; rc=$?
if [ $rc -eq 2 ]; then ok "an unknown model exits 2"; else fail "an unknown model exited $rc, not 2"; fi

# canned figures: qlab FP32 b1 1 ms, b64 2000 img/s, INT8 b1 0.25 ms, b64 8000 img/s (both threads)
cat > "$T/qlab.json" <<'JSON'
{"bench_peers": {"cores": 2, "isa": "avx512", "quick": false, "openblas_coretype": "Haswell",
 "machine": {"cpu_model": "Canned CPU 9000", "isa_best": "avx512", "openblas": {"core": "Haswell", "isa": "avx2"}},
 "basis": {"fp32": {"isa": "avx512", "gmacs": 100}, "int8": {"isa": "avx512", "gmacs": 500}},
 "config": {"calib_batches": 100},
 "models": {"resnet18": {"macs_fp32": 33000000, "calibration_s": 2.5,
   "timings": [
     {"threads": 1, "fp32": {"b1_median_ms": 1.0, "b64_images_per_s": 2000, "b1_peak_fraction": 0.33, "b64_peak_fraction": 0.66},
                    "int8": {"b1_median_ms": 0.25, "b64_images_per_s": 8000, "b1_peak_fraction": 0.264, "b64_peak_fraction": 0.528}},
     {"threads": 2, "fp32": {"b1_median_ms": 1.0, "b64_images_per_s": 2000, "b1_peak_fraction": 0.165, "b64_peak_fraction": 0.33},
                    "int8": {"b1_median_ms": 0.25, "b64_images_per_s": 8000, "b1_peak_fraction": 0.132, "b64_peak_fraction": 0.264}}],
   "train": {"fp32_images_per_s": 600, "fp32_peak_fraction": 0.297, "qat_images_per_s": 300, "qat_peak_fraction": 0.1485}}}}}
JSON
# PyTorch: FP32 b1 2 ms, b64 2500; INT8 crashed at 2 threads; calibration 4 s; QAT training crashed
cat > "$T/torch_resnet18.json" <<'JSON'
{"bench_vs_torch": {"torch_version": "1.13.0+cpu", "quantized_engine": "onednn", "calibration_s": 4.0,
 "timings": [
   {"threads": 1, "fp32": {"b1_median_ms": 2.0, "b64_images_per_s": 2500}, "int8": {"b1_median_ms": 1.5, "b64_images_per_s": 5000}},
   {"threads": 2, "fp32": {"b1_median_ms": 2.0, "b64_images_per_s": 2500}, "int8": {"error": "PyTorch crashed: could not create a primitive"}}],
 "train": {"fp32_images_per_s": 1200, "qat_error": "PyTorch crashed: simulated"}}}
JSON
cat > "$T/ort_resnet18_fp32.json" <<'JSON'
{"model": "x.onnx", "n": 1000, "ort": {"version": "1.30.0", "top1": 92.0,
 "threads": [{"t": 1, "b1_ms": 0.5, "b64_ips": 2840}, {"t": 2, "b1_ms": 0.4, "b64_ips": 5000}]}}
JSON
echo '{"skipped": "ONNX Runtime is not installed (make ort)"}' > "$T/ort_resnet18_int8.json"

if "$QLAB" --script scripts/bench_peers_table.lua "$T" >"$T/out.txt" 2>&1; then ok "the table builder runs on canned figures"
else fail "the table builder failed"; cat "$T/out.txt"; fi
if has "Canned CPU 9000" && has "INT8 kernels \`avx512\`" && has "OPENBLAS_CORETYPE: \`Haswell\`"; then
    ok "header: CPU, ISA, OPENBLAS_CORETYPE"
else fail "header"; cat "$T/out.txt"; fi
if has "| FP32 batch 1 (ms) | 1.000 | 2.000 | 0.500 | 0.50x (ORT) | 33.0 % |"; then ok "batch 1: the fastest peer's time over qlab's"
else fail "FP32 batch 1 row"; grep 'FP32 batch 1 ' "$T/out.txt"; fi
if has "| FP32 batch 64 (img/s) | 2,000 | 2,500 | 2,840 | 0.70x (ORT) | 66.0 % |"; then ok "batch 64: qlab's rate over the best peer's"
else fail "FP32 batch 64 row"; grep 'FP32 batch 64 ' "$T/out.txt"; fi
if has "| INT8 batch 64 (img/s) | 8,000 | 5,000 | - [" && has "| 1.60x (PyTorch) | 52.8 % |"; then ok "a skipped ORT leaves PyTorch as the best peer"
else fail "INT8 batch 64 row"; grep 'INT8 batch 64 ' "$T/out.txt"; fi
if grep -F "| INT8 batch 64, 2 threads (img/s) | 8,000 | - [" "$T/out.txt" | grep -qF "| - | 26.4 % |" &&
   has "could not create a primitive" && has "ONNX Runtime is not installed (make ort)"; then
    ok "a crash and a skip are footnotes, no ratio without a peer"
else fail "crash / skip footnotes"; cat "$T/out.txt"; fi
if has "| calibration 100 x 32, histogram (s) | 2.50 | 4.00 | - | 1.60x (PyTorch) | - |" &&
   has "| training step b128 FP32, 2 threads (img/s) | 600 | 1,200 | - | 0.50x (PyTorch) | 29.7 % |" &&
   has "| training step b128 QAT, 2 threads (img/s) | 300 | - [" ; then
    ok "calibration and training rows"
else fail "calibration / training rows"; grep 'calibration\|training' "$T/out.txt"; fi
if [ -s "$T/table.md" ] && "$QLAB" -e "local q = require 'qlab'; local f = assert(io.open('$T/table.json'));
  local d = q.json_decode(f:read('a')); assert(d.schema == 'qlab.bench_peers/1' and #d.models == 1 and
  #d.models[1].rows == 11 and math.abs(d.models[1].rows[1].ratio - 0.5) < 1e-9 and d.models[1].rows[1].best_peer == 'ORT')" \
  >"$T/json.txt" 2>&1; then
    ok "table.md and table.json written (11 rows, ratio and best peer)"
else fail "table.md / table.json"; cat "$T/json.txt"; fi

sh scripts/bench_peers.sh --repeat 0 >/dev/null 2>&1; rc=$?
if [ $rc -eq 2 ]; then ok "--repeat 0 exits 2"; else fail "--repeat 0 exited $rc, not 2"; fi
if grep -q -- '--repeat N' "$T/help.txt"; then ok "--help describes --repeat"; else fail "--help lacks --repeat"; fi

# several runs in one table: three canned runs (median of three, a run without ORT)
for k in 1 2 3; do
    mkdir -p "$T/run$k"
    case $k in 1) q=1.0; t=2.0; o=0.5; r=0.5 ;; 2) q=3.0; t=2.4; o=null; r=0.8 ;; 3) q=2.0; t=1.8; o=1.2; r=0.6 ;; esac
    cat > "$T/run$k/table.json" <<JSON
{"schema": "qlab.bench_peers/1", "created": "2026-12-04T00:0$k:00Z", "quick": false,
 "machine": {"cpu_model": "Canned CPU 9000", "cores": 2, "isa": "avx2", "openblas_core": "Zen", "openblas_coretype": false},
 "basis": {"fp32": {"isa": "avx2", "gmacs": 40}, "int8": {"isa": "avx2", "gmacs": 100}},
 "models": [{"name": "resnet18", "macs": 33000000, "rows": [
   {"label": "FP32 batch 1 (ms)", "qlab": $q, "torch": $t, "ort": $o, "ratio": $r, "best_peer": "ORT"},
   {"label": "FP32 batch 64 (img/s)", "qlab": 1000$k, "torch": 900, "ratio": 1.1}]}]}
JSON
done
mkdir -p "$T/all"
if "$QLAB" --script scripts/bench_peers_runs.lua "$T/all" "$T/run1" "$T/run2" "$T/run3" >"$T/runs.txt" 2>&1 &&
   grep -qF '| FP32 batch 1 (ms) | 2.000 (1.000-3.000) | 2.000 (1.800-2.400) | 0.850 (0.500-1.200) | 0.60x | 0.50 / 0.80 / 0.60 |' "$T/runs.txt" &&
   grep -qF '| FP32 batch 64 (img/s) | 10,002 (10,001-10,003) | 900 (900-900) | - | 1.10x | 1.10 / 1.10 / 1.10 |' "$T/runs.txt" &&
   grep -qF '3 runs' "$T/all/table.md"; then
    ok "--repeat's table: medians (of 3, of 2 where a run lacks the peer), lowest-highest, each run's ratio"
else fail "bench_peers_runs.lua"; cat "$T/runs.txt"; fi
"$QLAB" --script scripts/bench_peers_runs.lua "$T/all" "$T/nothing" >"$T/runs2.txt" 2>&1; rc=$?
if [ $rc -ne 0 ] && grep -q 'nothing/table.json not found' "$T/runs2.txt"; then ok "a run without a table is named"
else fail "a missing run's table (rc $rc)"; cat "$T/runs2.txt"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
