-- FP32 speed of ResNet-18 (torchvision topology, 28x28x1 input): inference
-- images/s at batch 1 and 64, and a training step at batch 128, with 1 and 2
-- threads, side by side in one run.
--   ./qlab --script scripts/bench_fp32.lua [--quick] [--json out.json]
local qlab = require "qlab"
local quick = arg[1] == "--quick"
qlab.seed(0)

local m = qlab.models.resnet18()
local path = "data/models/resnet18_fmnist.qlm"
local f = io.open(path, "rb")
if f then f:close(); m = qlab.load(path) end

local function train_step_rate(model, batch, steps)
  local opt = qlab.optim.sgd{lr = 0.01, momentum = 0.9}
  local x = qlab.zeros({batch, 28, 28, 1})
  for i = 1, #x do x[i] = (i * 7919 % 255) / 255 end
  local labels = {}
  for i = 1, batch do labels[i] = (i - 1) % 10 end
  local y = qlab.tensor(labels, {batch}, "s32")
  model:train_step(opt, x, y)                    -- warm-up (allocates grads, buffers)
  local t0 = qlab.clock()
  for _ = 1, steps do model:train_step(opt, x, y) end
  return batch * steps / (qlab.clock() - t0)
end

print(string.format("resnet18 FP32, %s, isa %s", path, qlab.cpu().isa))
print(string.format("%-8s %14s %14s %14s %16s", "threads", "b1 median ms", "b1 p95 ms", "b64 img/s", "train b128 img/s"))
local results = {}
for _, th in ipairs{1, 2} do
  qlab.threads(th)
  local t1 = qlab.time_forward(m, {batch = 1, runs = quick and 20 or 200, warmup = quick and 5 or 20})
  local t64 = qlab.time_forward(m, {batch = 64, runs = quick and 3 or 20, warmup = quick and 1 or 3})
  local tr = train_step_rate(m:clone(), 128, quick and 2 or 5)
  print(string.format("%-8d %14.3f %14.3f %14.0f %16.0f", th, t1.median, t1.p95, t64.images_per_s, tr))
  results[#results + 1] = {threads = th, b1_median_ms = t1.median, b1_p95_ms = t1.p95,
                           b1_images_per_s = t1.images_per_s, b64_images_per_s = t64.images_per_s,
                           train_b128_images_per_s = tr}
end
qlab.record("bench_fp32", results)
