-- qlab's half of the PyTorch cross-check (scripts/ptq_vs_torch.py): static
-- PTQ of a model calibrated on a known block of training images, then every
-- test image's FP32 and INT8 prediction (argmax, ties to the lower index).
--   ./qlab --json out.json --script scripts/ptq_predictions.lua --model FILE.qlm
--          [--qconfig default|fast_7bit|per_tensor] [--calib-start I] [--calib-n N] [--quick]
-- Calibration: training images I .. I+N-1 (1-based; default 1, 3200) in
-- batches of 32, in file order, so PyTorch can take exactly the same ones.
local qlab = require "qlab"

local o = {model = "data/models/resnet18_fmnist.qlm", qconfig = "default", calib_start = 1, calib_n = 3200}
local i = 1
while i <= #arg do
  local a, v = arg[i], arg[i + 1]
  if a == "--quick" then o.quick = true; i = i + 1
  elseif a == "--model" or a == "--qconfig" or a == "--calib-start" or a == "--calib-n" then
    if not v then error(a .. " needs a value", 0) end
    o[a:sub(3):gsub("-", "_")] = tonumber(v) or v
    i = i + 2
  else error("unknown argument '" .. a .. "' (see the header of scripts/ptq_predictions.lua)", 0) end
end
local make = rawget(qlab.qconfig, o.qconfig)
if type(make) ~= "function" then error("unknown qconfig '" .. tostring(o.qconfig) .. "'", 0) end

qlab.seed(0)
local train = qlab.data.fashion_mnist{split = "train"}
local test = qlab.data.fashion_mnist{split = "test"}
if o.quick then test = test:subset(1, 2000) end
local val = test:loader{batch = 500}
local fp32 = qlab.load(o.model)
local m = fp32:clone()
m:fuse()
m:prepare(make())
qlab.calibrate(m, train:subset(o.calib_start, o.calib_n):loader{batch = 32})
m:convert()

local function predictions(model)
  local p = {}
  for x in val:iter() do
    for _, c in ipairs(model:forward(x):argmax()) do p[#p + 1] = c - 1 end
  end
  return p
end
local r = qlab.evaluate(m, val, {reference = fp32})
print(string.format("qlab %s: top-1 FP32 %.2f %%, INT8 %.2f %% (ties %d, agreement with FP32 %.2f %%), calibration %d..%d",
                    o.qconfig, r.ref_top1, r.top1, r.ties, r.agree, o.calib_start, o.calib_start + o.calib_n - 1))
qlab.record("qlab", {model = o.model, qconfig = o.qconfig, calib_start = o.calib_start, calib_n = o.calib_n,
                     n = r.n, top1_fp32 = r.ref_top1, top1_int8 = r.top1, ties = r.ties, agree_fp32 = r.agree,
                     isa = qlab.cpu().isa, pred_fp32 = predictions(fp32), pred_int8 = predictions(m)})
