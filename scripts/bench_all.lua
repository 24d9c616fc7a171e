-- The lab's Part 6: every variant of resnet18, mobilenet_v2 and lstm benchmarked the same way
-- (qlab.bench: interleaved latency at batch 1 and 64 on 1 and 2 threads, throughput, top-1 /
-- ties / agreement with FP32, size in memory and on disk, memory, per-op breakdown, GMAC/s and
-- fraction of the measured peak), then qlab.report: report.md, results.json, report.html with
-- the lab's expected results beside ours.
-- Variants: FP32, static PTQ INT8 per-channel and per-tensor, dynamic INT8, FP16, BF16, QAT INT8,
-- W4A8 PTQ and QAT, the greedy mixed-precision model (from W4A8); those that do not apply to a
-- model are listed as skipped with the reason.
--   ./qlab --script scripts/bench_all.lua [--quick] [--full] [--images N] [--model NAME]...
--          [--out DIR] [--no-mixed] [--no-sensitivity] [--from DIR/results.json]
--   --from: render the report again from an earlier run's results.json, measuring nothing.
--   --quick: 300 test images, few runs (a smoke run); default 2,000 test images; --full: 10,000.
-- CPU-heavy (tens of minutes on two shared cores): run it once, not in a loop.
local qlab = require "qlab"

local quick, full, nimg, out, mixed, sens = false, false, nil, "out/report", true, true
local names, from
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--quick" then quick = true
  elseif a == "--full" then full = true
  elseif a == "--no-mixed" then mixed = false
  elseif a == "--no-sensitivity" then sens = false
  elseif a == "--images" then nimg = assert(tonumber(arg[i + 1]), "--images N"); i = i + 1
  elseif a == "--from" then from = assert(arg[i + 1], "--from FILE"); i = i + 1
  elseif a == "--out" then out = assert(arg[i + 1], "--out DIR"); i = i + 1
  elseif a == "--model" then names = names or {}; names[#names + 1] = assert(arg[i + 1], "--model NAME"); i = i + 1
  else error("bench_all.lua: unknown argument '" .. tostring(a) .. "'", 0) end
  i = i + 1
end
names = names or {"resnet18", "mobilenet_v2", "lstm"}
nimg = nimg or (quick and 300 or full and 10000 or 2000)

local expected = {}
local function expect(label, suite, variant, drop, speedup, size)
  expected[#expected + 1] = {label = label, suite = suite, variant = variant, drop = drop, speedup = speedup, size = size}
end
for _, n in ipairs{"resnet18", "mobilenet_v2"} do
  expect("PTQ INT8 (static, per-channel)", n, "ptq_int8", "< 1", "not stated", "4x")
  expect("QAT INT8", n, "qat_int8", "< 0.5", "not stated", "4x")
  expect("QAT W4A8", n, "qat_w4a8", "< 0.5", "not stated", "4x")
  expect("Mixed precision (greedy)", n, "mixed", "< 0.5", ">= 1.5x", "3x")
end
expect("Dynamic INT8", "lstm", "dyn_int8", "< 0.3", "> 1x at batch 1", "3.5x")
expect("FP16 weights", "lstm", "fp16", "< 0.05", "not stated", "2x")

local function loadavg()
  local f = io.open("/proc/loadavg")
  if not f then return "?" end
  local s = f:read("l")
  f:close()
  return s:match("^(%S+ %S+ %S+)") or s
end

local function print_report(rep)
  print("\nreport: " .. table.concat(rep.files, " "))
  print("\nThe lab's expected results beside ours:")
  for _, e in ipairs(rep.document.expected) do
    local o = e.ours
    if o.status == "ok" then
      print(string.format("  %-32s %-13s %-20s drop %-6s ours %6.2f | speed-up %-15s ours %5.2fx / %5.2fx | size %-4s ours %5.2fx",
        e.label, e.suite, e.variant, e.drop, o.drop or 0, e.speedup, o.speedup or 0, o.speedup_throughput or 0, e.size,
        o.size_reduction or 0))
    else
      print(string.format("  %-32s %-13s %-20s %s", e.label, e.suite, e.variant,
        o.status and (o.status .. ": " .. (o.reason or o.error or "")) or "not in this run"))
    end
  end
  print("\nRecommendations:")
  for _, r in ipairs(rep.recommendations) do print("  - " .. r.text) end
end

if from then   -- render again from an earlier run
  local f = assert(io.open(from, "rb"))
  local doc = assert(qlab.json_decode(f:read("a")))
  f:close()
  for _, s in ipairs(doc.suites) do s.machine, s.peak = doc.machine, doc.peak end
  local rep = qlab.report(doc.suites, {dir = out, title = doc.title, sensitivity = doc.sensitivity, expected = expected,
                                       command = doc.command, notes = doc.notes,
                                       sensitivity_label = "one layer at W4A8, the others FP32"})
  print_report(rep)
  return
end

qlab.seed(0)
local t_start = qlab.clock()
local load_start = loadavg()
local train = qlab.data.fashion_mnist{split = "train"}
local test = qlab.data.fashion_mnist{split = "test"}
local val = test:subset(1, nimg):loader{batch = 250}
-- the mixed-precision search and the sensitivity ranking look at other test images than the
-- evaluation (5,001 .. 6,000), unless --full evaluates on all of them
local search = test:subset(5001, quick and 200 or 1000):loader{batch = 200}
local calib_batches = quick and 4 or 100
local function calib() return train:loader{batch = 32, shuffle = true, seed = 1, batches = calib_batches} end
local function exists(path) local f = io.open(path, "rb"); if f then f:close() end return f ~= nil end

local function ptq(fp32, qc)
  return function()
    local m = fp32:clone()
    m:fuse()
    m:prepare(qc)
    qlab.calibrate(m, calib())
    return m:convert()
  end
end
local function half(fp32, qc)
  return function()
    local m = fp32:clone()
    m:fuse()
    m:prepare(qc)
    return m:convert()
  end
end

local shipped_qat = {resnet18 = {qat_int8 = "data/models/resnet18_fmnist_qat_int8.qlm"},
                     mobilenet_v2 = {qat_w4a8 = "data/models/mobilenet_v2_fmnist_qat_w4a8.qlm"}}
local qat_script = {qat_int8 = "scripts/qat_resnet18.lua", qat_w4a8 = "scripts/qat_w4a8.lua"}

local peak = qlab.peak()
local machine = qlab.machine()
local cpu = string.format("%s, %d cores, INT8 kernels %s, OpenBLAS %s, OPENBLAS_CORETYPE=%s", machine.cpu_model,
  machine.cores, machine.isa, machine.openblas.core, tostring(machine.env.OPENBLAS_CORETYPE or "(unset)"))
print("bench_all: " .. cpu)
for _, l in ipairs(peak.levels) do
  print(string.format("  peak %-6s FP32 %7.1f GMAC/s  INT8 %7.1f GMAC/s (one core)", l.isa, l.fp32_gmacs, l.int8_gmacs))
end

local suites, sensitivity = {}, {}
for _, name in ipairs(names) do
  local fp32 = qlab.load("data/models/" .. name .. "_fmnist.qlm")
  local models, skipped, notes = {{"fp32", fp32, kind = "fp32"}}, {}, {}
  local conv = name ~= "lstm"
  if conv then
    models[#models + 1] = {"ptq_int8", ptq(fp32, qlab.qconfig.default()), kind = "static"}
    models[#models + 1] = {"ptq_int8_per_tensor", ptq(fp32, qlab.qconfig.per_tensor()), kind = "static_per_tensor"}
    models[#models + 1] = {"dyn_int8", function() return qlab.quantize_dynamic(fp32, {types = {"linear"}, dtype = "s8"}) end,
                           kind = "dynamic"}
    notes.dyn_int8 = "dynamic quantization has no convolution: only the final linear layer is INT8"
    models[#models + 1] = {"fp16", half(fp32, qlab.qconfig.f16()), kind = "f16"}
    models[#models + 1] = {"bf16", half(fp32, qlab.qconfig.bf16()), kind = "bf16"}
    models[#models + 1] = {"ptq_w4a8", ptq(fp32, qlab.qconfig.w4a8()), kind = "w4a8"}
    for _, q in ipairs{{"qat_int8", "qat"}, {"qat_w4a8", "qat_w4a8"}} do
      local path = shipped_qat[name] and shipped_qat[name][q[1]]
      if path and exists(path) then
        models[#models + 1] = {q[1], function() return qlab.load(path) end, kind = q[2]}
        notes[q[1]] = "the shipped QAT model " .. path
      else
        skipped[q[1]] = string.format("no shipped %s model for %s (%s trains one; QAT is hours of CPU here)",
                                      q[1], name, qat_script[q[1]])
      end
    end
    if mixed then
      models[#models + 1] = {"mixed", function()
        local mp = qlab.mixed_precision(fp32, {data = search, calib = calib(), qconfig = qlab.qconfig.w4a8(), budget = 0.3,
                                               k = 3, quiet = true, latency_runs = 5, calib_batches = calib_batches,
                                               max_steps = quick and 2 or 6})
        local raised = {}
        for _, s in ipairs(mp.steps) do raised[#raised + 1] = string.format("%s %s>%s", s.node, s.from, s.to) end
        notes.mixed = string.format("greedy search from W4A8 (budget 0.3 points on test images 5,001-6,000): %d step%s%s",
          #mp.steps, #mp.steps == 1 and "" or "s", #raised > 0 and ": " .. table.concat(raised, ", ") or "")
        return mp.model
      end, kind = "mixed"}
    else
      skipped.mixed = "--no-mixed"
    end
  else
    local why = "static INT8 has no LSTM kernel: only the final linear layer would be quantized; dynamic INT8 is the LSTM path"
    skipped.ptq_int8, skipped.ptq_int8_per_tensor, skipped.ptq_w4a8 = why, why, why
    skipped.qat_int8, skipped.qat_w4a8 = "QAT needs static quantization: " .. why, "QAT needs static quantization: " .. why
    skipped.mixed = "the greedy search mixes static levels (W4A8 / INT8 / F16): " .. why
    for _, d in ipairs{{"dyn_int8", "s8", "dynamic"}, {"fp16", "f16", "f16"}, {"bf16", "bf16", "bf16"}} do
      models[#models + 1] = {d[1], function() return qlab.quantize_dynamic(fp32, {types = {"linear", "lstm"}, dtype = d[2]}) end,
                             kind = d[3]}
    end
  end
  print(string.format("\n== %s: %d variants, %d skipped; %d test images", name, #models, (function() local n = 0
    for _ in pairs(skipped) do n = n + 1 end return n end)(), nimg))
  local t0 = qlab.clock()
  local s = qlab.bench{name = name, models = models, data = val, reference = "fp32", batch_sizes = {1, 64}, threads = {1, 2},
                       runs = quick and {[1] = 10, [64] = 2} or (conv and {[1] = 60, [64] = 10} or {[1] = 100, [64] = 20}),
                       rounds = quick and 2 or 5, warmup = quick and 1 or 3, profile_runs = quick and 2 or 5, peak = peak,
                       skipped = skipped, notes = notes}
  print(string.format("   %.0f s", qlab.clock() - t0))
  print(string.format("   %-22s %-8s %8s %7s %8s %10s %8s %10s %7s %9s %7s", "variant", "status", "top-1", "drop",
    "agree", "b1t1 ms", "p99", "b64t2 i/s", "speedup", "size MB", "% peak"))
  for _, v in ipairs(s.variants) do
    if v.status == "ok" then
      local a, l1, ln = v.accuracy, v.latency[1], v.latency[#v.latency]
      print(string.format("   %-22s %-8s %8.2f %7.2f %8.2f %10.3f %8.3f %10.0f %7.2f %9.2f %7.1f", v.name, v.status, a.top1,
        a.drop, a.agree, l1.median, l1.p99, ln.images_per_s, ln.speedup, v.size.bytes / 1e6, 100 * ln.peak_fraction))
    else
      print(string.format("   %-22s %-8s %s", v.name, v.status, v.error or v.reason))
    end
  end
  suites[#suites + 1] = s
  if sens and conv then
    local rank = qlab.sensitivity(fp32, {data = search, calib = calib(), qconfig = qlab.qconfig.w4a8(), metric = "sqnr",
                                         batches = 2, calib_batches = calib_batches, time = false, quiet = true})
    sensitivity[name] = rank
  end
end

local cmd = "./qlab --script scripts/bench_all.lua" .. (#arg > 0 and " " .. table.concat(arg, " ") or "")
local rep = qlab.report(suites, {dir = out, title = "qlab: FP32 vs quantized variants (resnet18, mobilenet_v2, lstm)",
  sensitivity = sens and sensitivity or nil, expected = expected, command = cmd,
  sensitivity_label = "one layer at W4A8, the others FP32",
  notes = {string.format("Machine shared with other jobs on its %d cores: load average %s at the start, %s at the end; the "
             .. "variants are interleaved so that the load hits all alike, but absolute times and the spread are inflated.",
             machine.cores, load_start, loadavg()),
           string.format("Accuracy on the first %d Fashion-MNIST test images; calibration %d x 32 training images.", nimg,
             calib_batches),
           "The lab's expectations: PTQ drop < 1 %, QAT drop < 0.5 %, mixed drop < 0.5 % at >= 1.5x, size 4x / 3x (the grading "
             .. "list of scripts/grade.lua); dynamic INT8 and FP16 on the LSTM: the lab's own targets. 'not stated' where the lab "
             .. "gives no figure.",
           "Sensitivity bars: logit SQNR (dB) with one layer at W4A8, lower is more sensitive.",
           string.format("Total wall time %.0f s.", qlab.clock() - t_start)}})
print_report(rep)
qlab.record("bench_all", {report = rep.files, recommendations = rep.recommendations, expected = rep.document.expected})
