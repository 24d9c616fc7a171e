#!/bin/sh
# ONNX Runtime on qlab's exports: small_cnn FP32, its static PTQ in QDQ form and the
# LSTM give the same top-1 in ORT as in qlab (within 0.1 point) on the first 2,000
# test images.
# The PTQ twice: with 7-bit weights (-64..63), which every ORT kernel computes
# exactly, and with qlab's default 8-bit weights, which ORT computes exactly only
# with VNNI: without it (AVX2, AVX-512 before VNNI) ORT multiplies u8 x s8 with
# vpmaddubsw, whose pair sums saturate at 16 bits, and its top-1 drops (2.7 points
# here on an AVX2 EPYC). There that case is reported, not asserted.
# Skipped with a message where ORT (make ort: npm's onnxruntime-node under .ort/) is missing.
cd "$(dirname "$0")/../.." || exit 2
QLAB=${QLAB:-./qlab}
passed=0; failed=0
if ! command -v node >/dev/null 2>&1 || [ ! -f .ort/node_modules/onnxruntime-node/package.json ]; then
    echo "SKIP test_onnx_ort: ONNX Runtime is not installed (make ort)"
    echo "0 passed, 0 failed"; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/ptq.lua" <<'LUA'
local qlab = require "qlab"
qlab.seed(0)
local dir = arg[1]
local m = qlab.load("data/models/small_cnn_fmnist.qlm")
m:save(dir .. "/fp32.onnx")
qlab.load("data/models/lstm_fmnist.qlm"):save(dir .. "/lstm.onnx")
m:fuse()
m:prepare{default = qlab.qconfig.default()}
qlab.calibrate(m, qlab.data.fashion_mnist{split = "train"}:loader{batch = 32, shuffle = true, batches = 20})
m:convert()
m:save(dir .. "/int8.onnx")
m = qlab.load("data/models/small_cnn_fmnist.qlm")
m:fuse()
local w7 = qlab.observer.minmax{dtype = "s8", symmetric = true, per_channel = true, ch_axis = 0, reduce_range = true}
m:prepare{default = qlab.qconfig{activation = qlab.qconfig.default().activation, weight = w7}}
qlab.calibrate(m, qlab.data.fashion_mnist{split = "train"}:loader{batch = 32, shuffle = true, batches = 20})
m:convert()
m:save(dir .. "/int8w7.onnx")
m:save(dir .. "/int8w7.qlm")
LUA
if ! "$QLAB" --script "$tmp/ptq.lua" "$tmp"; then
    echo "FAIL test_onnx_ort: making the models"; echo "0 passed, 1 failed"; exit 1
fi
vnni=0; grep -q -E 'avx512_vnni|avx_vnni' /proc/cpuinfo && vnni=1
for m in fp32 int8w7 int8 lstm; do
    if [ "$m" = int8 ] && [ "$vnni" = 0 ]; then
        scripts/ort_compare "$tmp/$m.onnx" --n 2000 --no-time --qlab "$QLAB" --json "$tmp/$m.json" >"$tmp/$m.log" 2>&1 &&
            node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
                     console.log(`SKIP int8 (8-bit weights): ORT ${r.ort.top1.toFixed(2)} %, qlab ${r.qlab.top1.toFixed(2)} %; ` +
                                 "no VNNI here, so ORT saturates u8 x s8 pairs (not asserted)")' "$tmp/$m.json"
        continue
    fi
    if scripts/ort_compare "$tmp/$m.onnx" --n 2000 --no-time --qlab "$QLAB" --json "$tmp/$m.json" >"$tmp/$m.log" 2>&1 &&
       node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
                const d = Math.abs(r.ort.top1 - r.qlab.top1);
                console.log(`  ${process.argv[2]}: ORT ${r.ort.top1.toFixed(2)} %, qlab ${r.qlab.top1.toFixed(2)} %`);
                process.exit(d <= 0.1 ? 0 : 1)' "$tmp/$m.json" "$m"; then
        echo "ok   $m: same top-1 in ORT and qlab"; passed=$((passed + 1))
    else
        echo "FAIL $m: ORT and qlab top-1 differ by more than 0.1 point"; cat "$tmp/$m.log"; failed=$((failed + 1))
    fi
done
# code by code: ORT's INT8 kernels against qlab's on the 7-bit-weight model
if scripts/ort_compare --parity "$tmp/int8w7.qlm" --batch 16 --qlab "$QLAB" --json "$tmp/parity.json" >"$tmp/parity.log" 2>&1 &&
   node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1]));
            const bad = r.nodes.filter((n) => !n.ko || n.ko.max > 1);
            console.log(`  parity: ${r.nodes.length} uint8 values, largest ORT-vs-kernels gap ${Math.max(...r.nodes.map((n) => n.ko ? n.ko.max : 1e9))} LSB`);
            process.exit(r.nodes.length >= 5 && bad.length === 0 ? 0 : 1)' "$tmp/parity.json"; then
    echo "ok   parity: ORT's codes within 1 LSB of qlab's kernels at every node"; passed=$((passed + 1))
else
    echo "FAIL parity: ORT's codes differ from qlab's kernels"; cat "$tmp/parity.log"; failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
