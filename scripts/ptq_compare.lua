-- Static PTQ side by side: per-channel vs per-tensor weights, and the six
-- activation observers, on the shipped models. Top-1 on the test set.
-- Activations on the full 8 bits, as qlab.qconfig.default(); --7bit observes
-- them with reduce_range (codes 0..127), as qlab.qconfig.fast_7bit().
--   ./qlab --script scripts/ptq_compare.lua [--quick] [--7bit] [model ...]
--   (default models: resnet18 mobilenet_v2; --quick: 2,000 test images, 20 calibration batches)
local qlab = require "qlab"

local quick, reduce, models = false, false, {}
for _, a in ipairs(arg) do
  if a == "--quick" then quick = true elseif a == "--7bit" then reduce = true else models[#models + 1] = a end
end
if #models == 0 then models = {"resnet18", "mobilenet_v2"} end
qlab.seed(0)
local train = qlab.data.fashion_mnist{split = "train"}
local test = qlab.data.fashion_mnist{split = "test"}
local val = quick and test:subset(1, 2000):loader{batch = 500} or test:loader{batch = 500}
local nbatches = quick and 20 or 100
local observers = {"minmax", "moving_average", "histogram", "percentile", "entropy", "mse"}

local results = {}
for _, name in ipairs(models) do
  local fp32 = qlab.load("data/models/" .. name .. "_fmnist.qlm")
  local base = qlab.evaluate(fp32, val).top1
  print(string.format("\n%s: FP32 top-1 %.2f %% (%s test images, %d calibration batches of 32, %d-bit activations)",
    name, base, quick and "2,000" or "10,000", nbatches, reduce and 7 or 8))
  print(string.format("  %-16s %14s %14s", "activations", "per-channel", "per-tensor"))
  results[name] = {fp32 = base}
  for _, obs in ipairs(observers) do
    local row = {}
    for _, gran in ipairs{"per_channel", "per_tensor"} do
      local m = fp32:clone()
      m:fuse()
      m:prepare(qlab.qconfig{activation = qlab.observer[obs]{reduce_range = reduce},
                             weight = qlab.observer.minmax{dtype = "s8", symmetric = true,
                                                           per_channel = gran == "per_channel"}})
      qlab.calibrate(m, train:loader{batch = 32, shuffle = true, seed = 1, batches = nbatches})
      m:convert()
      local e = qlab.evaluate(m, val)
      row[gran], row[gran .. "_ties"] = e.top1, e.ties
    end
    results[name][obs] = row
    print(string.format("  %-16s %8.2f (%+.2f) %7.2f (%+.2f)", obs, row.per_channel, row.per_channel - base,
                        row.per_tensor, row.per_tensor - base))
  end
end
qlab.record("ptq_compare", results)
