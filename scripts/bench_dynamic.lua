-- Dynamic quantization and FP16 / BF16, side by side in one process.
--  1. lstm: FP32 vs dynamic INT8 vs FP16 vs BF16 weights: top-1 on the test
--     set, batch-1 latency (median / p95) and batch-64 throughput, size.
--  2. resnet18: static INT8 (PTQ, calibrated) vs dynamic INT8, on the final
--     fc alone (the other nodes FP32) and on the whole network (dynamic INT8
--     converts only linear / lstm nodes, so there it is the fc again).
-- The trained models (data/models/lstm_fmnist.qlm, resnet18_fmnist.qlm) are
-- used when present, else randomly initialised ones (said in the output);
-- --lstm / --resnet18 FILE take another .qlm, or a training checkpoint (.ckpt)
-- whose weights are loaded into the zoo model.
--   ./qlab --script scripts/bench_dynamic.lua [--quick] [--threads N] [--skip-resnet] [--lstm FILE] [--resnet18 FILE]
--   add --json out.json before --script to keep the figures
local qlab = require "qlab"

local quick, threads, skip_resnet, files = false, 1, false, {}
for i = 1, #arg do
  if arg[i] == "--quick" then quick = true
  elseif arg[i] == "--threads" then threads = tonumber(arg[i + 1])
  elseif arg[i] == "--skip-resnet" then skip_resnet = true
  elseif arg[i] == "--lstm" or arg[i] == "--resnet18" then files[arg[i]:sub(3)] = arg[i + 1] end
end
qlab.seed(0)
local train = qlab.data.fashion_mnist{split = "train"}
local test = qlab.data.fashion_mnist{split = "test"}
local nimg = quick and 2000 or test:size()
local val = quick and test:subset(1, nimg):loader{batch = 500} or test:loader{batch = 500}
local runs1, runs64 = quick and 50 or 300, quick and 5 or 30

local function load_or_random(name)
  local path = files[name] or "data/models/" .. name .. "_fmnist.qlm"
  if path:match("%.ckpt$") then
    local m = qlab.models[name]()
    m:load_state_dict(path, {strict = false})
    return m, "weights of the training checkpoint " .. path
  end
  local f = io.open(path, "rb")
  if f then f:close(); return qlab.load(path), "trained (" .. path .. ")" end
  return qlab.models[name](), "RANDOMLY INITIALISED (" .. path .. " not found)"
end

-- Latencies of several models measured round-robin, `rounds` times, keeping
-- each model's best round: the machine is shared, and interleaving exposes
-- every model to the same background load.
local rounds = quick and 1 or 3
local function timings(models)
  local best = {}
  for _ = 1, rounds do
    for i, m in ipairs(models) do
      local t1 = qlab.time_forward(m, {batch = 1, runs = runs1, warmup = 20})
      local t64 = qlab.time_forward(m, {batch = 64, runs = runs64, warmup = 3})
      local b = best[i] or {}
      if not b.b1_median_ms or t1.median < b.b1_median_ms then b.b1_median_ms, b.b1_p95_ms = t1.median, t1.p95 end
      if not b.b64_images_per_s or t64.images_per_s > b.b64_images_per_s then
        b.b64_median_ms, b.b64_images_per_s = t64.median, t64.images_per_s
      end
      best[i] = b
    end
  end
  return best
end

local function node_ms(m, name, batch)
  for _, p in ipairs(qlab.profile(m, {batch = batch, runs = quick and 20 or 100})) do
    if p.name == name then return p.ms end
  end
end

qlab.threads(threads)
local cpu = qlab.cpu()
print(string.format("threads %d, kernels %s, f16c %s, avx512_bf16 %s (bf16 %s)", threads, cpu.isa, tostring(cpu.f16c),
  tostring(cpu.avx512_bf16), cpu.avx512_bf16 and "uses vdpbf16ps" or "widens to f32: no AVX-512 BF16 here"))

-- 1. lstm ------------------------------------------------------------------------
local lstm, how = load_or_random("lstm")
print("\nlstm: " .. how)
local variants = {
  {"fp32", lstm},
  {"dyn_int8", qlab.quantize_dynamic(lstm, {types = {"linear", "lstm"}, dtype = "s8"})},
  {"fp16", qlab.quantize_dynamic(lstm, {types = {"linear", "lstm"}, dtype = "f16"})},
  {"bf16", qlab.quantize_dynamic(lstm, {types = {"linear", "lstm"}, dtype = "bf16"})},
}
local rows, base = {}, nil
local models = {}
for i, v in ipairs(variants) do models[i] = v[2] end
local times = timings(models)
print(string.format("%-9s %8s %8s %11s %11s %12s %12s %9s", "model", "top-1 %", "drop", "b1 median", "b1 p95",
  "b64 img/s", "size bytes", "smaller"))
for i, v in ipairs(variants) do
  local name, m = v[1], v[2]
  local acc = qlab.evaluate(m, val).top1
  base = base or acc
  local t = times[i]
  local r = {model = name, top1 = acc, drop = base - acc, size_bytes = m:size_bytes(),
             size_ratio = lstm:size_bytes() / m:size_bytes(), timing = t}
  rows[#rows + 1] = r
  print(string.format("%-9s %8.2f %8.2f %8.3f ms %8.3f ms %12.0f %12d %8.2fx", name, acc, r.drop, t.b1_median_ms,
    t.b1_p95_ms, t.b64_images_per_s, r.size_bytes, r.size_ratio))
end
local d8, f16 = rows[2], rows[3]
print(string.format("targets: dyn INT8 drop %.2f %% (< 0.3) %s; FP16 drop %.2f %% (< 0.05) %s; dyn INT8 b1 speed-up %.2fx (> 1) %s;"
  .. " size %.2fx (INT8, 3.5x+) %s, %.2fx (FP16, 2x)",
  d8.drop, d8.drop < 0.3 and "ok" or "MISSED", f16.drop, math.abs(f16.drop) < 0.05 and "ok" or "MISSED",
  rows[1].timing.b1_median_ms / d8.timing.b1_median_ms,
  rows[1].timing.b1_median_ms > d8.timing.b1_median_ms and "ok" or "MISSED", d8.size_ratio,
  d8.size_ratio >= 3.5 and "ok" or "MISSED", f16.size_ratio))
local result = {lstm = {model = how, images = nimg, threads = threads, rows = rows}}

-- 2. resnet18: static vs dynamic INT8 -----------------------------------------------------
if not skip_resnet then
  local fp32, rhow = load_or_random("resnet18")
  print("\nresnet18: " .. rhow)
  local calib = train:loader{batch = 32, shuffle = true, seed = 1, batches = quick and 20 or 100}
  local function static(map)
    local m = fp32:clone()
    m:fuse()
    m:prepare(map)
    qlab.calibrate(m, calib)
    return m:convert()
  end
  local qc = qlab.qconfig.default()
  local fc_only_static = static{default = false, fc = qc}
  local fc_only_dyn = qlab.quantize_dynamic(fp32, {types = {"linear"}, dtype = "s8"})
  local all_static = static(qc)
  local all_dyn = qlab.quantize_dynamic(fp32, {types = {"linear", "lstm"}, dtype = "s8"})
  local rrows = {}
  local rvariants = {{"fp32", fp32}, {"fc static int8", fc_only_static}, {"fc dynamic int8", fc_only_dyn},
                     {"all static int8", all_static}, {"all dynamic int8", all_dyn}}
  local rmodels = {}
  for i, v in ipairs(rvariants) do rmodels[i] = v[2] end
  local rtimes = timings(rmodels)
  print(string.format("%-18s %8s %11s %12s %12s %13s", "model", "top-1 %", "b1 median", "b64 img/s", "size bytes",
    "fc ms (b1/b64)"))
  for i, v in ipairs(rvariants) do
    local m = v[2]
    local acc = qlab.evaluate(m, val).top1
    local t = rtimes[i]
    local f1, f64 = node_ms(m, "fc", 1), node_ms(m, "fc", 64)
    rrows[#rrows + 1] = {model = v[1], top1 = acc, size_bytes = m:size_bytes(), timing = t, fc_ms_b1 = f1, fc_ms_b64 = f64}
    print(string.format("%-18s %8.2f %8.3f ms %12.0f %12d %6.3f/%6.3f", v[1], acc, t.b1_median_ms, t.b64_images_per_s,
      m:size_bytes(), f1 or 0, f64 or 0))
  end
  print("(static fc: u8 in through a quantize node, requantized u8 out, then a dequantize; dynamic fc: f32 in and out,"
    .. " qparams from each batch; 'all dynamic' converts only the fc: dynamic quantization has no conv)")
  result.resnet18 = {model = rhow, images = nimg, threads = threads, rows = rrows}
end

qlab.record("bench_dynamic", result)
