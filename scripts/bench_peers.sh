#!/bin/sh
# qlab vs PyTorch vs ONNX Runtime on the same weights in one run (the README's speed table):
# resnet18 and mobilenet_v2 (data/models/*_fmnist.qlm), FP32 and static-PTQ INT8 at batch 1
# (median ms) and batch 64 (images/s), 1 and 2 threads, calibration of 100 x 32 images with
# histogram observers, a training step at batch 128 on 2 threads (FP32 and QAT); one markdown
# table per model with qlab / best peer and qlab's fraction of the measured peak.
#
#   scripts/bench_peers.sh [--quick] [--models resnet18,mobilenet_v2] [--out DIR] [--repeat N]
#
# --repeat N (1-20): the whole run N times, into DIR/run1 .. DIR/runN, then one table of
# the medians with each cell's lowest and highest and every run's ratio
# (scripts/bench_peers_runs.lua -> DIR/table.md, DIR/table.json). On a host whose speed
# wanders between runs, one run's ratio can flip sign; the spread shows it.
#
# 1. qlab:    ./qlab --json DIR/qlab.json --script scripts/bench_peers.lua --onnx DIR
#             (also exports DIR/<model>_fp32.onnx and the QDQ DIR/<model>_int8.onnx)
# 2. PyTorch: /usr/bin/python3 scripts/bench_vs_torch.py --arch <model> --check --train
#             -> DIR/torch_<model>.json (QLAB_TORCH_PYTHON picks another interpreter)
# 3. ORT:     node scripts/ort_compare DIR/<model>_{fp32,int8}.onnx --no-qlab
#             -> DIR/ort_<model>_{fp32,int8}.json (ORT = onnxruntime-node under .ort/: make ort)
# 4. tables:  ./qlab --script scripts/bench_peers_table.lua DIR -> DIR/table.md, DIR/table.json
#
# --quick: a smoke run whose figures are not for quoting: 10 calibration batches, 2 training
# steps; batch-1 / batch-64 runs qlab 20 / 3, PyTorch 50 / 5, ORT 20 / 5; the peers' top-1 on
# 2,000 (PyTorch) and 200 (ORT) test images. Full: qlab 200 / 30, PyTorch 200 / 30, ORT
# 100 / 20 runs, 8 training steps, top-1 on 10,000 and 1,000 test images. The full run
# takes several minutes on 2 cores. A missing peer (no torch for the interpreter, no .ort, no
# node) is reported and skipped; a peer that crashes (an exception, a signal, a non-zero exit)
# has its failure shown in its column. The environment is used as it is (OPENBLAS_CORETYPE
# included): the header says what it was.
set -eu

cd "$(dirname "$0")/.."

usage() { echo "usage: $0 [--quick] [--models resnet18,mobilenet_v2] [--out DIR] [--repeat N]" >&2; exit 2; }
quick=""
repeat=1
out="out/bench_peers"
models="resnet18,mobilenet_v2"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick="--quick" ;;
        --out) [ $# -ge 2 ] || usage; out="$2"; shift ;;
        --models) [ $# -ge 2 ] || usage; models="$2"; shift ;;
        --repeat) [ $# -ge 2 ] || usage; repeat="$2"; shift
                  case "$repeat" in ''|*[!0-9]*) usage ;; esac
                  [ "$repeat" -ge 1 ] && [ "$repeat" -le 20 ] || usage ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) usage ;;
    esac
    shift
done

QLAB="${QLAB:-./qlab}"
PY="${QLAB_TORCH_PYTHON:-/usr/bin/python3}"   # Debian's python3, where python3-torch lives
if [ ! -x "$QLAB" ]; then
    echo "bench_peers: $QLAB is not built; run make qlab first" >&2
    exit 1
fi
for m in $(echo "$models" | tr ',' ' '); do
    case "$m" in resnet18|mobilenet_v2) ;; *) echo "bench_peers: unknown model '$m' (resnet18, mobilenet_v2)" >&2; exit 2 ;; esac
    if [ ! -f "data/models/${m}_fmnist.qlm" ]; then
        echo "bench_peers: data/models/${m}_fmnist.qlm not found; train it first:" >&2
        echo "    ./qlab --script scripts/train_baselines.lua $m" >&2
        exit 1
    fi
done

if [ "$repeat" -gt 1 ]; then
    mkdir -p "$out"
    set --
    k=1
    while [ "$k" -le "$repeat" ]; do
        echo "==== run $k of $repeat"
        sh "$0" $quick --models "$models" --out "$out/run$k"
        set -- "$@" "$out/run$k"
        k=$((k + 1))
    done
    echo
    "$QLAB" --script scripts/bench_peers_runs.lua "$out" "$@"
    echo
    echo "tables: $out/table.md, $out/table.json; each run's under $out/run1 .. $out/run$repeat"
    exit 0
fi

mkdir -p "$out"
rm -f "$out"/qlab.json "$out"/torch_*.json "$out"/ort_*.json "$out"/table.md "$out"/table.json "$out"/*.onnx

# {"<key>": {"skipped": why}} for a peer that does not run here
skip_json() {  # $1 file, $2 key ("" = top level), $3 reason
    reason=$(printf '%s' "$3" | sed 's/\\/\\\\/g; s/"/\\"/g')
    if [ -n "$2" ]; then printf '{"%s": {"skipped": "%s"}}\n' "$2" "$reason" >"$1"
    else printf '{"skipped": "%s"}\n' "$reason" >"$1"; fi
}
# {"<key>": {... what the peer wrote, "crashed": msg}} for a peer process that died
crash_json() {  # $1 file, $2 key ("" = top level), $3 message
    msg=$(printf '%s' "$3" | tr -d '\r' | sed 's/\\/\\\\/g; s/"/\\"/g')
    if [ -n "$2" ]; then printf '{"%s": {"crashed": "%s"}}\n' "$2" "$msg" >"$1"
    else printf '{"crashed": "%s"}\n' "$msg" >"$1"; fi
}
last_error() {  # the last line that says error, or the last non-empty line, of a log
    l=$(grep -i 'error' "$1" | tail -1 | cut -c1-300)
    [ -n "$l" ] || l=$(grep -v '^[[:space:]]*$' "$1" | tail -1 | cut -c1-300)
    printf '%s' "${l:-no message}"
}
how_died() { if [ "$1" -gt 128 ]; then echo "killed by signal $(($1 - 128))"; else echo "exit status $1"; fi; }

echo "== qlab: scripts/bench_peers.lua $quick --models $models"
"$QLAB" --json "$out/qlab.json" --script scripts/bench_peers.lua $quick --models "$models" --onnx "$out"

echo
has_torch=yes
if [ ! -x "$PY" ]; then
    has_torch=no; torch_why="$PY not found"
elif ! "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
    has_torch=no; torch_why="PyTorch is not installed for $PY (Debian: apt-get install python3-torch python3-torchvision)"
fi
if [ -n "$quick" ]; then tq="--quick --calib-batches 10"; else tq=""; fi
for m in $(echo "$models" | tr ',' ' '); do
    tj="$out/torch_$m.json"
    if [ "$has_torch" = no ]; then
        echo "== PyTorch $m: skipped: $torch_why"
        skip_json "$tj" bench_vs_torch "$torch_why"
        continue
    fi
    echo "== PyTorch $m: scripts/bench_vs_torch.py --arch $m --check --train $tq"
    rc=0
    "$PY" scripts/bench_vs_torch.py --arch "$m" --check --train $tq --json "$tj" 2>"$out/torch_$m.stderr" || rc=$?
    if [ "$rc" -ne 0 ]; then   # the peer died: its failure is its result
        cat "$out/torch_$m.stderr" >&2
        msg="PyTorch crashed ($(how_died "$rc")): $(last_error "$out/torch_$m.stderr")"
        echo "$msg"
        if [ -f "$tj" ]; then   # it got as far as writing figures: keep them, add the crash
            BP_FILE="$tj" BP_MSG="$msg" "$QLAB" -e 'local q = require "qlab"
local p = os.getenv("BP_FILE")
local f = assert(io.open(p, "rb")); local d = q.json_decode(f:read("a")); f:close()
d.bench_vs_torch.crashed = os.getenv("BP_MSG")
f = assert(io.open(p, "wb")); f:write(q.json_encode(d)); f:close()' || crash_json "$tj" bench_vs_torch "$msg"
        else
            crash_json "$tj" bench_vs_torch "$msg"
        fi
    fi
done

echo
ort_why=""
if ! command -v node >/dev/null 2>&1; then
    ort_why="node is not installed"
elif [ ! -f .ort/node_modules/onnxruntime-node/package.json ]; then
    ort_why="ONNX Runtime is not installed (make ort installs onnxruntime-node under .ort/)"
fi
if [ -n "$quick" ]; then on="--n 200 --runs 20"; else on="--n 1000 --runs 100"; fi
for m in $(echo "$models" | tr ',' ' '); do
    for p in fp32 int8; do
        oj="$out/ort_${m}_$p.json"
        if [ -n "$ort_why" ]; then
            echo "== ORT ${m}_$p: skipped: $ort_why"
            skip_json "$oj" "" "$ort_why"
            continue
        fi
        echo "== ORT ${m}_$p: scripts/ort_compare $out/${m}_$p.onnx $on --threads 1,2 --no-qlab"
        rc=0
        node scripts/ort_compare "$out/${m}_$p.onnx" $on --threads 1,2 --no-qlab --json "$oj" \
            >"$out/ort_${m}_$p.log" 2>&1 || rc=$?
        cat "$out/ort_${m}_$p.log"
        if [ "$rc" -eq 3 ]; then
            skip_json "$oj" "" "ONNX Runtime is not installed (make ort)"
        elif [ "$rc" -ne 0 ]; then
            crash_json "$oj" "" "ONNX Runtime failed ($(how_died "$rc")): $(last_error "$out/ort_${m}_$p.log")"
        fi
    done
done

echo
"$QLAB" --script scripts/bench_peers_table.lua "$out"
echo
echo "figures: $out/qlab.json, $out/torch_*.json, $out/ort_*.json; tables: $out/table.md, $out/table.json"
