-- FP32 vs INT8 (static PTQ) ResNet-18, side by side in one process:
-- accuracy on the 10,000-image test set, calibration time, batch-1 latency
-- (median / p95 over >= 200 runs), batch-64 throughput, 1 and 2 threads,
-- model size, and the INT8 model's per-node time.
--   ./qlab --script scripts/bench_ptq.lua [--quick] [--model resnet18|mobilenet_v2|small_cnn]
--   add --json out.json before --script to keep the figures
local qlab = require "qlab"

local quick, name = false, "resnet18"
for i = 1, #arg do
  if arg[i] == "--quick" then quick = true
  elseif arg[i] == "--model" then name = arg[i + 1] end
end
qlab.seed(0)
local path = "data/models/" .. name .. "_fmnist.qlm"
local fp32 = qlab.load(path)
local train = qlab.data.fashion_mnist{split = "train"}
local test = qlab.data.fashion_mnist{split = "test"}
local val = quick and test:subset(1, 2000):loader{batch = 500} or test:loader{batch = 500}

qlab.threads(2)
local int8 = fp32:clone()
int8:fuse()
int8:prepare(qlab.qconfig.default())
local t0 = qlab.clock()
qlab.calibrate(int8, train:loader{batch = 32, shuffle = true, seed = 1, batches = 100})
local calib_s = qlab.clock() - t0
int8:convert()

local ev = qlab.evaluate(int8, val, {reference = fp32})
local acc_fp32, acc_int8 = ev.ref_top1, ev.top1
print(string.format("%s: top-1 FP32 %.2f %%, INT8 %.2f %% (drop %.2f; %d ties; agrees with FP32 on %.2f %%, "
  .. "flips %d lost / %d gained) on %s test images; calibration 100x32 in %.2f s", name, acc_fp32, acc_int8,
  acc_fp32 - acc_int8, ev.ties, ev.agree, ev.flips.lost, ev.flips.gained, quick and "2,000" or "10,000", calib_s))
print(string.format("size: FP32 %.2f MB, INT8 %.2f MB (%.2fx smaller); kernels %s",
  fp32:size_bytes() / 1e6, int8:size_bytes() / 1e6, fp32:size_bytes() / int8:size_bytes(), qlab.cpu().isa))

local runs1, runs64 = quick and 50 or 200, quick and 5 or 30
local rows = {}
print(string.format("%-8s %-5s %12s %12s %14s", "threads", "model", "b1 median", "b1 p95", "b64 img/s"))
for _, th in ipairs{1, 2} do
  qlab.threads(th)
  local r = {threads = th}
  for _, pair in ipairs{{"fp32", fp32}, {"int8", int8}} do
    local t1 = qlab.time_forward(pair[2], {batch = 1, runs = runs1, warmup = 20})
    local t64 = qlab.time_forward(pair[2], {batch = 64, runs = runs64, warmup = 3})
    r[pair[1]] = {b1_median_ms = t1.median, b1_p95_ms = t1.p95, b64_images_per_s = t64.images_per_s}
    print(string.format("%-8d %-5s %9.3f ms %9.3f ms %14.0f", th, pair[1], t1.median, t1.p95, t64.images_per_s))
  end
  r.speedup_b1 = r.fp32.b1_median_ms / r.int8.b1_median_ms
  r.speedup_b64 = r.int8.b64_images_per_s / r.fp32.b64_images_per_s
  print(string.format("%-8d INT8 speed-up: %.2fx at batch 1, %.2fx at batch 64", th, r.speedup_b1, r.speedup_b64))
  rows[#rows + 1] = r
end

qlab.threads(1)
print("\nINT8 per-node time, batch 1, one thread (top 12):")
local prof = qlab.profile(int8, {batch = 1, runs = quick and 20 or 100})
table.sort(prof, function(a, b) return a.ms > b.ms end)
for i = 1, math.min(12, #prof) do
  print(string.format("  %-26s %-16s %8.3f ms %5.1f %%", prof[i].name, prof[i].op, prof[i].ms, 100 * prof[i].share))
end

qlab.record("bench_ptq", {model = name, top1_fp32 = acc_fp32, top1_int8 = acc_int8, ties_int8 = ev.ties,
                          agree_int8 = ev.agree, flips_int8 = ev.flips, calibration_s = calib_s,
                          size_fp32 = fp32:size_bytes(), size_int8 = int8:size_bytes(), isa = qlab.cpu().isa,
                          timings = rows})
