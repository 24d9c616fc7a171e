#!/bin/sh
# Nothing lost when a run dies: training killed with SIGKILL mid-epoch resumes
# from its last checkpoint and ends bit-identical to an uninterrupted run; a
# save killed mid-write leaves the old file whole; a full disk and an
# unwritable folder are clear errors that leave no temporary file behind.
cd "$(dirname "$0")/../.." || exit 2
QLAB=${QLAB:-./qlab}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
passed=0; failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

# --- training: uninterrupted vs killed in epoch 2 and resumed ------------------
cat > "$T/train.lua" <<'LUA'
local qlab = require "qlab"
local out, ckpt, kill_at = arg[1], arg[2], tonumber(arg[3] or "0")
qlab.seed(7)
local m = qlab.models.small_cnn()
local data = qlab.data.fashion_mnist{split = "test"}:subset(1, 512):loader{batch = 64, shuffle = true, seed = 1}
local pid = io.open("/proc/self/stat"):read("n")
qlab.train(m, data, {epochs = 3, lr = 0.05, momentum = 0.9, quiet = true, checkpoint = ckpt, resume = true,
                     on_batch = function(s)
                       if kill_at > 0 and s.epoch == 2 and s.batch == kill_at then os.execute("kill -9 " .. pid) end
                     end})
m:save(out)
LUA
"$QLAB" --threads 1 --script "$T/train.lua" "$T/a.qlm" "$T/a.ckpt" >"$T/a.log" 2>&1 || fail "uninterrupted training ran (see $T/a.log)"
"$QLAB" --threads 1 --script "$T/train.lua" "$T/b.qlm" "$T/b.ckpt" 4 >"$T/b.log" 2>&1; rc=$?
if [ $rc -eq 137 ] && [ -f "$T/b.ckpt" ] && [ ! -f "$T/b.qlm" ]; then ok "training killed by SIGKILL in epoch 2 (exit 137), checkpoint of epoch 1 on disk"
else fail "the kill did not happen as planned (exit $rc)"; fi
"$QLAB" --threads 1 --script "$T/train.lua" "$T/b.qlm" "$T/b.ckpt" >"$T/b2.log" 2>&1 || fail "resumed training ran"
if [ -f "$T/a.qlm" ] && cmp -s "$T/a.qlm" "$T/b.qlm"; then ok "resumed run ends bit-identical to the uninterrupted one"
else fail "resumed model differs from the uninterrupted one"; fi

# --- a save killed mid-write ------------------------------------------------------
cat > "$T/saver.lua" <<'LUA'
local qlab = require "qlab"
local a = qlab.load("data/models/resnet18_fmnist.qlm")
local b = a:clone()
local w = b:param("fc.bias"):table(); w[1] = w[1] + 1
b:set_param("fc.bias", qlab.tensor(w, {#w}))
b:save(arg[2])            -- the two versions a file may hold
a:save(arg[1])
io.open(arg[1] .. ".ready", "w"):close()
while true do b:save(arg[1]); a:save(arg[1]) end
LUA
"$QLAB" --threads 1 --script "$T/saver.lua" "$T/m.qlm" "$T/m_b.qlm" >"$T/s.log" 2>&1 &
spid=$!
i=0; while [ ! -f "$T/m.qlm.ready" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.7
kill -9 $spid 2>/dev/null; wait $spid 2>/dev/null
cp data/models/resnet18_fmnist.qlm "$T/m_a.qlm"
if [ -f "$T/m.qlm.ready" ] && { cmp -s "$T/m.qlm" "$T/m_a.qlm" || cmp -s "$T/m.qlm" "$T/m_b.qlm"; }; then
    ok "save killed mid-write: the file is one whole version ($(ls "$T" | grep -c '\.tmp\.') temporary file left by the kill)"
else fail "save killed mid-write left a broken file"; fi

# --- full disk (a file size limit) and an unwritable folder --------------------------
cp data/models/small_cnn_fmnist.qlm "$T/old.qlm"
out=$(sh -c 'trap "" XFSZ; ulimit -f 16; exec "$0" -e "local q = require \"qlab\"; q.load(\"data/models/resnet18_fmnist.qlm\"):save(\"$1\")"' \
      "$QLAB" "$T/old.qlm" 2>&1); rc=$?
left=$(ls "$T" | grep -c 'old\.qlm\.tmp')
if [ $rc -ne 0 ] && echo "$out" | grep -q "old.qlm" && [ "$left" -eq 0 ] && cmp -s "$T/old.qlm" data/models/small_cnn_fmnist.qlm; then
    ok "full disk: a clear error ($(echo "$out" | head -1 | cut -c1-100)), old file intact, no temporary file"
else fail "full disk: exit $rc, $left temporary files, message: $out"; fi
out=$("$QLAB" -e 'require("qlab").load("data/models/small_cnn_fmnist.qlm"):save("/proc/qlab_test.qlm")' 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "qlab_test.qlm"; then ok "unwritable folder: a clear error ($(echo "$out" | head -1 | cut -c1-90))"
else fail "unwritable folder: exit $rc: $out"; fi

echo "$passed passed, $failed failed"
