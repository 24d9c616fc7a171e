-- Lab 2, part 1: static post-training quantization (PTQ).
--   ./qlab --script lua/labs/lab02/part1_ptq.lua [--quick] [--model resnet18|mobilenet_v2|small_cnn]
local qlab = require "qlab"
local lab = require "labs.lab02.common"

local function run(ctx)
  -- TODO 1: load the FP32 model and measure it (accuracy, latency, size)
  local fp32 = lab.load(ctx)
  local rows = {}
  local base = lab.measure(ctx, fp32)
  rows[1] = {"fp32", base}

  -- TODO 2: fuse conv+bn(+relu) and linear+relu, so that each fused block
  -- becomes one INT8 kernel (BN folds into the conv's weights and bias)
  local m = fp32:clone()
  m:fuse()

  -- TODO 3: a qconfig: 8-bit u8 activations observed by a histogram (the range
  -- minimising the L2 error), s8 symmetric per-channel weights
  local qc = qlab.qconfig.default()
  print(tostring(qc))

  -- TODO 4: prepare inserts the observers, calibrate runs data through them
  m:prepare(qc)
  qlab.calibrate(m, ctx.calib())          -- a progress bar on a terminal
  local first = m:nodes()[1].name
  local lo, hi = m:observer(first):range()
  print(string.format("observed range of %s: [%.3f, %.3f]", first, lo, hi))

  -- TODO 5: convert: INT8 weights, quantize/dequantize at the precision boundaries
  m:convert()
  local int8 = lab.measure(ctx, m, fp32, base)
  rows[2] = {"ptq int8", int8}
  lab.print_table(string.format("Part 1, static PTQ of %s (%d test images, kernels %s)", ctx.model_name, int8.n,
                                qlab.cpu().isa), rows)
  print(string.format("drop %.2f points, %.2fx smaller, %.2fx faster at batch 1, %.2fx at batch 64",
                      int8.drop, int8.size_ratio, int8.speedup_b1, int8.speedup_b64))
  return {variants = {fp32 = base, ptq_int8 = int8}}
end

if ... ~= "labs.lab02.part1_ptq" then lab.main("part1_ptq", run, arg) end
return run
