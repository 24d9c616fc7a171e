-- qlab's side of the peer benchmark (scripts/bench_peers.sh): for each model, FP32 and
-- static-PTQ INT8 (qlab.qconfig.default(): u8 histogram activations, s8 per-channel weights)
-- batch-1 median latency and batch-64 images/s at 1 and 2 threads, the calibration time of
-- 100 batches x 32 training images (2 threads), a training step at batch 128 on 2 threads
-- (FP32, and QAT after prepare_qat(qlab.qconfig.default_qat()); SGD momentum 0.9), the
-- model's MACs per image, the machine record and the measured one-core peak.
--   ./qlab --json out.json --script scripts/bench_peers.lua [--quick] [--models resnet18,mobilenet_v2]
--                                                          [--onnx DIR]
-- --onnx DIR also writes DIR/<model>_fp32.onnx and DIR/<model>_int8.onnx (QDQ, keep_fusable:
-- no Clip of the 7-bit activation ranges, so that ONNX Runtime runs its INT8 kernels) for
-- scripts/ort_compare. The figures are recorded under "bench_peers".
local qlab = require "qlab"

local quick, models, onnx_dir = false, {"resnet18", "mobilenet_v2"}, nil
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--quick" then quick = true
  elseif a == "--models" and arg[i + 1] then
    models = {}
    for name in arg[i + 1]:gmatch("[^,]+") do models[#models + 1] = name end
    i = i + 1
  elseif a == "--onnx" and arg[i + 1] then onnx_dir = arg[i + 1]; i = i + 1
  else error("bench_peers.lua: unknown argument '" .. a .. "' (--quick, --models A,B, --onnx DIR)", 0) end
  i = i + 1
end

local runs1, runs64 = quick and 20 or 200, quick and 3 or 30
local warm1, warm64 = quick and 5 or 20, quick and 1 or 3
local train_steps = quick and 2 or 8
local calib_batches = quick and 10 or 100

qlab.seed(0)
local function loadavg()   -- the 1-minute load average (other jobs on a shared machine), or nil
  local f = io.open("/proc/loadavg")
  if not f then return nil end
  local v = f:read("n")
  f:close()
  return v
end
local load_start = loadavg()
local machine = qlab.machine()
local peak = qlab.peak()
local cores = qlab.cpu().cores
-- FP32 at the best FMA rate of the CPU (oneDNN's convolutions use the widest level whatever
-- OPENBLAS_CORETYPE says); INT8 at the dot-product rate of the level qlab's INT8 kernels use.
local fp32_basis, int8_basis = {isa = "scalar", gmacs = 0}, nil
-- The amx level's FP32 stream is avx512's (AMX has no FP32 FMA): FP32 is named by the vector level.
-- With INT8 at amx, the fraction of the VNNI (avx512) peak is recorded beside it: the VNNI
-- kernels' ceiling, which AMX's tiles pass.
local vnni_basis
for _, l in ipairs(peak.levels) do
  if l.isa ~= "amx" and l.fp32_gmacs > fp32_basis.gmacs then fp32_basis = {isa = l.isa, gmacs = l.fp32_gmacs} end
  if l.isa == machine.isa then int8_basis = {isa = l.isa, gmacs = l.int8_gmacs} end
  if l.isa == "avx512" then vnni_basis = {isa = l.isa, gmacs = l.int8_gmacs} end
end
if machine.isa ~= "amx" then vnni_basis = nil end
int8_basis = int8_basis or {isa = peak.levels[#peak.levels].isa, gmacs = peak.levels[#peak.levels].int8_gmacs}
print(string.format("%s, %d cores; qlab INT8 kernels %s (best %s), OpenBLAS %s (%s), OPENBLAS_CORETYPE=%s",
  machine.cpu_model, cores, machine.isa, machine.isa_best, tostring(machine.openblas.core), tostring(machine.openblas.isa),
  tostring(machine.env.OPENBLAS_CORETYPE or "(unset)")))
print(string.format("peak of one core: FP32 %.1f GFMA/s (%s), INT8 %.1f GMAC/s (%s)%s", fp32_basis.gmacs, fp32_basis.isa,
  int8_basis.gmacs, int8_basis.isa, vnni_basis and string.format(", VNNI %.1f GMAC/s", vnni_basis.gmacs) or ""))

-- Fraction of peak of `ips` images/s whose images take `macs` multiply-adds each.
local function fraction(ips, macs, basis, threads)
  return ips * macs / (basis.gmacs * 1e9 * math.max(1, math.min(threads, cores)))
end

local function train_rate(model, batch, steps)
  local opt = qlab.optim.sgd{lr = 0.01, momentum = 0.9}
  local x = qlab.zeros({batch, 28, 28, 1})
  for k = 1, #x do x[k] = (k * 7919 % 255) / 255 end
  local labels = {}
  for k = 1, batch do labels[k] = (k - 1) % 10 end
  local y = qlab.tensor(labels, {batch}, "s32")
  model:train_step(opt, x, y)                    -- warm-up (gradients, buffers, primitives)
  local t0 = qlab.clock()
  for _ = 1, steps do model:train_step(opt, x, y) end
  return batch * steps / (qlab.clock() - t0)
end

local train = qlab.data.fashion_mnist{split = "train"}
local out = {machine = machine, peak = peak, cores = cores, isa = machine.isa, quick = quick,
             basis = {fp32 = fp32_basis, int8 = int8_basis, int8_vnni = vnni_basis},
             openblas_coretype = machine.env.OPENBLAS_CORETYPE or false,
             config = {runs_b1 = runs1, runs_b64 = runs64, warmup_b1 = warm1, warmup_b64 = warm64,
                       train_steps = train_steps, train_batch = 128, train_threads = 2,
                       calib_batches = calib_batches, calib_batch = 32, calib_threads = 2},
             models = {}}

for _, name in ipairs(models) do
  local path = "data/models/" .. name .. "_fmnist.qlm"
  local fp32 = qlab.load(path)
  local r = {name = name, file = path, timings = {}}

  qlab.threads(2)
  local int8 = fp32:clone()
  int8:fuse()
  int8:prepare(qlab.qconfig.default())
  local t0 = qlab.clock()
  qlab.calibrate(int8, train:loader{batch = 32, shuffle = true, seed = 1, batches = calib_batches})
  r.calibration_s = qlab.clock() - t0
  int8:convert()
  local mf, mi = qlab.macs(fp32), qlab.macs(int8)
  r.macs_fp32 = mf.total
  r.macs_int8 = {total = mi.total, int8 = mi.int8, f32 = mi.f32}
  -- fractions of peak count the live MACs: the taps that read the image, not its padding
  r.macs_live_fp32 = mf.live.total
  r.macs_live_int8 = {total = mi.live.total, int8 = mi.live.int8, f32 = mi.live.f32}
  print(string.format("%s: %.2f M MACs per image, %.2f M live (INT8 model: %.2f M INT8 + %.2f M FP32 live); "
    .. "calibration %d x 32 in %.3f s", name, mf.total / 1e6, mf.live.total / 1e6, mi.live.int8 / 1e6,
    mi.live.f32 / 1e6, calib_batches, r.calibration_s))
  if onnx_dir then
    fp32:save(onnx_dir .. "/" .. name .. "_fp32.onnx")
    int8:save(onnx_dir .. "/" .. name .. "_int8.onnx", {keep_fusable = true})
  end

  -- one image's time at peak: INT8 MACs at the INT8 rate, the rest (FP32 stem/head) at the FMA rate
  local function int8_fraction(ips, th, basis)
    local t = math.max(1, math.min(th, cores))
    local s = mi.live.int8 / ((basis or int8_basis).gmacs * 1e9 * t) + mi.live.f32 / (fp32_basis.gmacs * 1e9 * t)
    return ips * s
  end
  for _, th in ipairs{1, 2} do
    qlab.threads(th)
    local row = {threads = th}
    for _, pair in ipairs{{"fp32", fp32}, {"int8", int8}} do
      local prec, m = pair[1], pair[2]
      local t1 = qlab.time_forward(m, {batch = 1, runs = runs1, warmup = warm1})
      local t64 = qlab.time_forward(m, {batch = 64, runs = runs64, warmup = warm64})
      local frac = prec == "fp32" and function(ips) return fraction(ips, mf.live.total, fp32_basis, th) end
                   or function(ips) return int8_fraction(ips, th) end
      row[prec] = {b1_median_ms = t1.median, b1_p95_ms = t1.p95, b64_images_per_s = t64.images_per_s,
                   b64_median_ms = t64.median, b1_peak_fraction = frac(1e3 / t1.median),
                   b64_peak_fraction = frac(t64.images_per_s)}
      if prec == "int8" and vnni_basis then
        row[prec].b1_vnni_fraction = int8_fraction(1e3 / t1.median, th, vnni_basis)
        row[prec].b64_vnni_fraction = int8_fraction(t64.images_per_s, th, vnni_basis)
      end
      print(string.format("  %d thr %s: b1 %.3f ms (%.1f %% of peak), b64 %.0f img/s (%.1f %%)", th, prec:upper(),
        t1.median, 100 * row[prec].b1_peak_fraction, t64.images_per_s, 100 * row[prec].b64_peak_fraction))
    end
    r.timings[#r.timings + 1] = row
  end

  -- training: forward + backward ~ 3x the forward MACs, all FP32 (QAT fake-quantizes in FP32)
  qlab.threads(2)
  local tf = train_rate(fp32:clone(), 128, train_steps)
  local qat = fp32:clone()
  qat:prepare_qat(qlab.qconfig.default_qat())
  local tq = train_rate(qat, 128, train_steps)
  r.train = {threads = 2, batch = 128, steps = train_steps,
             fp32_images_per_s = tf, fp32_peak_fraction = fraction(tf, 3 * mf.live.total, fp32_basis, 2),
             qat_images_per_s = tq, qat_peak_fraction = fraction(tq, 3 * mf.live.total, fp32_basis, 2)}
  print(string.format("  training step b128, 2 threads: FP32 %.0f img/s, QAT %.0f img/s", tf, tq))
  out.models[name] = r
  fp32:free(); int8:free(); qat:free()
  collectgarbage()
end

out.loadavg = {start = load_start, finish = loadavg()}
qlab.record("bench_peers", out)
