-- Layer sensitivity and mixed precision on the shipped models (lab part 5):
-- for each model and each starting precision (INT8, W4A8): the SQNR and
-- top-1 sensitivity rankings (top 5 shown), the fully quantized model, the
-- "top-k layers kept FP32" models (k = 1, 5, 10, from the top-1 ranking) and
-- the greedy step-up search (w4a8 -> int8 -> f16 -> fp32), against FP32:
-- accuracy, size, batch-1 latency.
--   ./qlab --script scripts/sensitivity.lua [--quick] [--model resnet18|mobilenet_v2|small_cnn]
--          [--budget 0.3] [--k 3] [--precision int8|w4a8] [--threads 2] [--dir data/models]
-- Latencies are batch-1 medians at the same thread count.
--   add --json out.json before --script to keep the figures
local qlab = require "qlab"

local quick, names, budget, k, precisions = false, nil, 0.3, 3, {"int8", "w4a8"}
local threads, dir = 2, "data/models"
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--quick" then quick = true
  elseif a == "--model" then names = names or {}; names[#names + 1] = arg[i + 1]; i = i + 1
  elseif a == "--budget" then budget = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--k" then k = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--precision" then precisions = {arg[i + 1]}; i = i + 1
  elseif a == "--threads" then threads = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--dir" then dir = arg[i + 1]; i = i + 1
  else error("sensitivity.lua: unknown argument '" .. tostring(a) .. "'") end
  i = i + 1
end
names = names or {"resnet18", "mobilenet_v2"}

qlab.seed(0)
qlab.threads(threads)
local train = qlab.data.fashion_mnist{split = "train"}
local test = qlab.data.fashion_mnist{split = "test"}
-- final figures and the greedy search on the whole test set (2,000 images
-- with --quick), as the lab's PyTorch figures; the top-1 sweeps on its first
-- 2,000 (1,000), the SQNR rankings on its first 256
local nval = quick and 2000 or 10000
local val = test:subset(1, nval):loader{batch = 256}
local sweep = test:subset(1, quick and 1000 or 2000):loader{batch = 256}
local calib_batches = quick and 32 or 100
local function calib() return train:loader{batch = 32, shuffle = true, seed = 1, batches = calib_batches} end
local runs = quick and 30 or 100

local function db(v) return v == nil and "-" or v == math.huge and "inf" or string.format("%.2f", v) end

local qconfigs = {int8 = qlab.qconfig.default, w4a8 = qlab.qconfig.w4a8}

local function latency(m)
  return qlab.time_forward(m, {batch = 1, runs = runs, warmup = 10}).median
end

local function quantized(fp32, map) return qlab.ptq(fp32, map, calib()) end

local function row(label, m, ref, fp32)
  local e = qlab.evaluate(m, val, fp32 and {reference = fp32} or nil)
  local r = {variant = label, top1 = e.top1, ties = e.ties, agree = e.agree, size_bytes = m:size_bytes(),
             latency_ms = latency(m)}
  if ref then r.drop, r.speedup = ref.top1 - r.top1, ref.latency_ms / r.latency_ms end
  return r
end

local function print_rows(rows)
  print(string.format("  %-26s %8s %7s %6s %8s %9s %12s %8s", "variant", "top-1", "drop", "ties", "agree %", "size MB",
                      "b1 latency", "speedup"))
  for _, r in ipairs(rows) do
    print(string.format("  %-26s %7.2f%% %7.2f %6d %8s %9.2f %9.3f ms %7.2fx", r.variant, r.top1, r.drop or 0, r.ties,
                        r.agree and string.format("%.2f", r.agree) or "-", r.size_bytes / 1e6, r.latency_ms,
                        r.speedup or 1))
  end
end

local function print_rank(title, rank, info, n)
  print(string.format("  %s: %d nodes in %.1f s (%d images); fully quantized: sqnr %s dB%s", title, #rank,
                      info.seconds, info.n, db(info.quantized.sqnr_db),
                      info.metric == "top1" and string.format(", top-1 %.2f vs FP32 %.2f", info.quantized.top1,
                                                              info.top1_fp32) or ""))
  print(string.format("    %-4s %-28s %-7s %9s %9s %10s %9s %8s", "rank", "node", "op", "drop/gain", "sqnr dB", "kl",
                      "params", "int8 ms"))
  for j = 1, math.min(n, #rank) do
    local e = rank[j]
    print(string.format("    %-4d %-28s %-7s %9s %9s %10.2e %9d %8s", j, e.name, e.op,
                        e.drop and string.format("%.2f", e.drop) or e.gain_db and string.format("+%.2f dB", e.gain_db)
                        or "-", db(e.sqnr_db), e.kl, e.params,
                        e.time and string.format("%.3f", e.time) or "-"))
  end
end

local results = {}
for _, name in ipairs(names) do
  local path = dir .. "/" .. name .. "_fmnist.qlm"
  local f = io.open(path, "rb")
  if not f then
    io.stderr:write(string.format("sensitivity.lua: %s not found (train it with scripts/train_baselines.lua); skipped\n", path))
  else
    f:close()
    local fp32 = qlab.load(path)
    local fused = fp32:clone()
    fused:fuse()
    local fe = qlab.evaluate(fp32, val)
    local ref = {variant = "fp32", top1 = fe.top1, ties = fe.ties, agree = 100, size_bytes = fused:size_bytes(),
                 latency_ms = latency(fused)}
    print(string.format("\n== %s: FP32 top-1 %.2f %% on %d test images, %.2f MB, batch-1 %.3f ms (%d threads, %s)",
                        name, ref.top1, nval, ref.size_bytes / 1e6, ref.latency_ms, qlab.threads(), qlab.cpu().isa))
    local res = {model = name, fp32 = ref, precisions = {}}
    for _, pname in ipairs(precisions) do
      local qc = assert(qconfigs[pname], "unknown precision " .. pname)()
      print(string.format("\n-- %s at %s", name, pname))
      local o = {data = sweep, calib = calib(), qconfig = qc, quiet = quick, calib_batches = calib_batches}
      o.metric = "sqnr"
      local rs, is = qlab.sensitivity(fp32, o)
      print_rank("SQNR ranking", rs, is, 5)
      o.mode, o.calib, o.time = "all_but_one", calib(), false
      local ra, ia = qlab.sensitivity(fp32, o)
      print_rank("SQNR ranking, all quantized but one (gain in dB when kept FP32)", ra, ia, 5)
      o.metric, o.mode, o.calib = "top1", "single", calib()
      local rt, it = qlab.sensitivity(fp32, o)
      print_rank("top-1 ranking", rt, it, 5)

      local rows = {ref}
      local full = quantized(fp32, qc)
      rows[#rows + 1] = row(pname, full, ref, fp32)
      full:free()
      for _, kk in ipairs{1, 5, 10} do
        local map = {default = qc}
        for j = 1, math.min(kk, #rt) do map[rt[j].name] = false end
        local m = quantized(fp32, map)
        rows[#rows + 1] = row(string.format("%s, top-%d FP32", pname, kk), m, ref, fp32)
        m:free()
      end
      local mp = qlab.mixed_precision(fp32, {data = val, calib = calib(), qconfig = qc, budget = budget, k = k,
                                             quiet = quick, latency_runs = quick and 10 or 30, rank = rs,
                                             calib_batches = calib_batches})
      print(string.format("  greedy search (budget %.2f points on %d images, levels %s): %d steps",
                          budget, val:samples(), table.concat(mp.levels, " > "), #mp.steps))
      print(string.format("    %4s %-28s %-11s %8s %7s %9s %10s", "step", "node", "change", "top-1", "drop", "size MB",
                          "b1 ms"))
      print(string.format("    %4d %-28s %-11s %7.2f%% %7.2f %9.2f %10.3f", 0, "(all " .. mp.start.level .. ")", "",
                          mp.start.top1, mp.start.drop, mp.start.size_bytes / 1e6, mp.start.latency_ms))
      for _, s in ipairs(mp.steps) do
        print(string.format("    %4d %-28s %-11s %7.2f%% %7.2f %9.2f %10.3f", s.step, s.node, s.from .. ">" .. s.to,
                            s.top1, s.drop, s.size_bytes / 1e6, s.latency_ms))
      end
      rows[#rows + 1] = row(string.format("%s, greedy mixed", pname), mp.model, ref, fp32)
      mp.model:free()
      print_rows(rows)
      res.precisions[pname] = {sqnr_rank = rs, sqnr_info = is, top1_rank = rt, top1_info = it,
                               all_but_one_rank = ra, all_but_one_info = ia,
                               table = rows, greedy = {steps = mp.steps, start = mp.start, precision = mp.precision,
                                                       levels = mp.levels, budget = budget}}
    end
    results[#results + 1] = res
  end
end
qlab.record("sensitivity", results)
