#!/bin/sh
# qlab vs PyTorch, same model, same machine, same run: FP32 and static-PTQ INT8
# ResNet-18 on Fashion-MNIST (accuracy, calibration time, size, batch-1 latency,
# batch-64 throughput, 1 and 2 threads), then a side-by-side ratio table.
#
#   scripts/bench_vs_torch.sh [--quick] [--out DIR]
#
# 1. ./qlab --json DIR/qlab.json --script scripts/bench_ptq.lua [--quick]
# 2. /usr/bin/python3 scripts/bench_vs_torch.py --check --json DIR/torch.json [--quick]
#    (only if Debian's python3 has torch: apt-get install python3-torch python3-torchvision)
# 3. the ratio table, and DIR/side_by_side.json with both sets of figures.
#
# A peer that crashes does not take the benchmark down: an exception inside PyTorch's timing is
# recorded as that configuration's result ("PyTorch crashed: ..."), and a PyTorch process that
# dies (a signal, a non-zero exit) is reported with its exit status and last error line in the
# PyTorch column; qlab's figures are shown either way. QLAB_TORCH_FAIL=int8:2 simulates a failure
# of PyTorch's INT8 model at two threads, to check that path.
#
# A benchmark script only: qlab's build and test suite never need Python.
set -eu

cd "$(dirname "$0")/.."

quick=""
out="out/bench_vs_torch"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick="--quick" ;;
        --out) [ $# -ge 2 ] || { echo "usage: $0 [--quick] [--out DIR]" >&2; exit 2; }
               out="$2"; shift ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: $0 [--quick] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done

PY="${QLAB_TORCH_PYTHON:-/usr/bin/python3}"   # Debian's python3, where python3-torch lives
model="data/models/resnet18_fmnist.qlm"

if [ ! -x ./qlab ]; then
    echo "bench_vs_torch: ./qlab is not built; run make first" >&2
    exit 1
fi
if [ ! -f "$model" ]; then
    echo "bench_vs_torch: $model not found; train it first:" >&2
    echo "    ./qlab --script scripts/train_baselines.lua resnet18" >&2
    exit 1
fi
has_torch=no
if [ -x "$PY" ] && "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
    has_torch=yes
else
    echo "note: PyTorch is not installed for $PY; only qlab's side will run" >&2
fi
mkdir -p "$out"
qlab_json="$out/qlab.json"
torch_json="$out/torch.json"
rm -f "$qlab_json" "$torch_json" "$out/side_by_side.json"

echo "== qlab: scripts/bench_ptq.lua $quick"
./qlab --json "$qlab_json" --script scripts/bench_ptq.lua $quick

echo
echo "== PyTorch: scripts/bench_vs_torch.py $quick"
torch_err="$out/torch.stderr"
if [ "$has_torch" = yes ]; then
    rc=0
    "$PY" scripts/bench_vs_torch.py --model "$model" --check --json "$torch_json" $quick 2>"$torch_err" || rc=$?
    if [ "$rc" -ne 0 ]; then   # the peer died: its failure is its result
        cat "$torch_err" >&2
        if [ "$rc" -gt 128 ]; then how="killed by signal $((rc - 128))"; else how="exit status $rc"; fi
        last=$(grep -i 'error' "$torch_err" | tail -1 | cut -c1-300)
        [ -n "$last" ] || last=$(grep -v '^[[:space:]]*$' "$torch_err" | tail -1 | cut -c1-300)
        echo "PyTorch crashed ($how): ${last:-no message}"
        "$PY" - "$torch_json" "PyTorch crashed ($how): ${last:-no message}" <<'PYEOF'
import json, os, sys
path, msg = sys.argv[1:3]
try:
    t = json.load(open(path))["bench_vs_torch"]   # a run that got as far as writing its figures
except Exception:
    t = {}
t["crashed"] = msg
with open(path + ".tmp", "w") as f:
    json.dump({"bench_vs_torch": t}, f, indent=2)
os.replace(path + ".tmp", path)
PYEOF
    fi
else
    echo "PyTorch is not installed for $PY, so there is nothing to compare with."
    echo "On Debian 12:  apt-get install python3-torch python3-torchvision"
    echo "(qlab's own figures are in $qlab_json)"
    exit 0
fi

echo
"$PY" - "$qlab_json" "$torch_json" "$out/side_by_side.json" <<'EOF'
import json, sys

qpath, tpath, opath = sys.argv[1:4]
q = json.load(open(qpath))["bench_ptq"]
t = json.load(open(tpath))["bench_vs_torch"]
crashed = t.get("crashed")

rows = []   # (label, qlab value, torch value, comparison text, fmt)


def faster(qv, tv, higher_is_better):
    """'1.35x faster' / '1.20x slower' from qlab's point of view."""
    if not qv or not tv:
        return "-", None
    r = (qv / tv) if higher_is_better else (tv / qv)
    if abs(r - 1) < 0.005:
        return "same", r
    return ("%.2fx faster" % r) if r >= 1 else ("%.2fx slower" % (1 / r)), r


def add(label, qv, tv, fmt, kind, why=None):
    if tv is None:   # the peer has no figure: say why instead
        why = why or crashed or "no figure"
        rows.append((label, fmt % qv, "-", why))
        return {"qlab": qv, "torch": None, "compare": why, "ratio": None}
    if kind == "points":
        cmp, r = "%+.2f points" % (qv - tv), qv - tv
    elif kind == "smaller":
        r = tv / qv if qv else None
        cmp = ("-" if not r else "same" if abs(r - 1) < 0.005 else
               ("%.2fx smaller" % r) if r > 1 else ("%.2fx larger" % (1 / r)))
    elif kind == "ratio":
        cmp, r = ("%.2f vs %.2f" % (qv, tv)), None
    else:
        cmp, r = faster(qv, tv, kind == "higher")
    rows.append((label, fmt % qv, fmt % tv, cmp))
    return {"qlab": qv, "torch": tv, "compare": cmp, "ratio": r}


merged = {"qlab": q, "torch": t, "side_by_side": {}}
s = merged["side_by_side"]
def tget(d, *keys):
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def diff(a, b):
    return None if a is None or b is None else a - b


def mb(v):
    return None if v is None else v / 1e6


s["top1_fp32"] = add("top-1 FP32 (%)", q["top1_fp32"], t.get("top1_fp32"), "%.2f", "points")
s["top1_int8"] = add("top-1 INT8 (%)", q["top1_int8"], t.get("top1_int8"), "%.2f", "points")
s["drop"] = add("INT8 accuracy drop (points)", q["top1_fp32"] - q["top1_int8"],
                diff(t.get("top1_fp32"), t.get("top1_int8")), "%.2f", "points")
s["calibration_s"] = add("calibration 100x32 (s)", q["calibration_s"], t.get("calibration_s"), "%.2f", "lower")
s["size_fp32_mb"] = add("size FP32 (MB)", q["size_fp32"] / 1e6, mb(t.get("size_fp32")), "%.2f", "smaller")
s["size_int8_mb"] = add("size INT8 (MB)", q["size_int8"] / 1e6, mb(t.get("size_int8")), "%.2f", "smaller")

tt = {r["threads"]: r for r in t.get("timings", [])}
for qr in q["timings"]:
    th = qr["threads"]
    tr = tt.get(th, {})
    pre = "%d thr " % th
    for prec in ("fp32", "int8"):
        P = prec.upper()
        why = tget(tr, prec, "error")
        s["t%d_%s_b1_median_ms" % (th, prec)] = add(pre + P + " b1 median (ms)", qr[prec]["b1_median_ms"],
                                                    tget(tr, prec, "b1_median_ms"), "%.3f", "lower", why)
        s["t%d_%s_b1_p95_ms" % (th, prec)] = add(pre + P + " b1 p95 (ms)", qr[prec]["b1_p95_ms"],
                                                 tget(tr, prec, "b1_p95_ms"), "%.3f", "lower", why)
        s["t%d_%s_b64_images_per_s" % (th, prec)] = add(pre + P + " b64 (img/s)", qr[prec]["b64_images_per_s"],
                                                        tget(tr, prec, "b64_images_per_s"), "%.0f", "higher", why)
    why = tget(tr, "int8", "error") or tget(tr, "fp32", "error")
    s["t%d_speedup_b1" % th] = add(pre + "INT8/FP32 speed-up b1 (x)", qr["speedup_b1"], tr.get("speedup_b1"),
                                   "%.2f", "ratio", why)
    s["t%d_speedup_b64" % th] = add(pre + "INT8/FP32 speed-up b64 (x)", qr["speedup_b64"], tr.get("speedup_b64"),
                                    "%.2f", "ratio", why)

torch_name = "PyTorch %s" % t.get("torch_version", "(version unknown: it crashed)").split("+")[0]
w0 = max(len(r[0]) for r in rows)
print("side by side: qlab (%s kernels) vs %s (quantized engine %s), %s test images%s" % (
    q.get("isa", "?"), torch_name, t.get("quantized_engine", "?"), "{:,}".format(t.get("n_test", 0)),
    ", quick" if t.get("quick") else ""))
if crashed:
    print(crashed)
hdr = "%-*s %12s %12s   %s" % (w0, "", "qlab", "PyTorch", "qlab vs PyTorch")
print(hdr)
print("-" * len(hdr))
for label, qv, tv, cmp in rows:
    print("%-*s %12s %12s   %s" % (w0, label, qv, tv, cmp))
print("sizes: qlab = model bytes (size_bytes), PyTorch = serialized state_dict; "
      "INT8/FP32 speed-up rows compare each framework with its own FP32")

with open(opath + ".tmp", "w") as f:
    json.dump(merged, f, indent=2)
import os
os.replace(opath + ".tmp", opath)
print("figures: %s, %s, %s" % (qpath, tpath, opath))
EOF
