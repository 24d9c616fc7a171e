-- Lab 2, part 3: quantization-aware training (QAT). Fake-quantize nodes let
-- the network learn around the rounding (straight-through gradients); batch
-- norm is folded into the weights while training, frozen after 2 epochs, the
-- observers after 3; then the same convert as PTQ.
--   ./qlab --script lua/labs/lab02/part3_qat.lua [--quick] [--model NAME]
local qlab = require "qlab"
local lab = require "labs.lab02.common"

local function run(ctx)
  local fp32 = lab.load(ctx)
  local base = lab.measure(ctx, fp32)

  -- TODO 1: the PTQ baseline QAT has to beat
  local ptq = qlab.ptq(fp32, qlab.qconfig.default(), ctx.calib())
  local rp = lab.measure(ctx, ptq, fp32, base)

  -- TODO 2: prepare for QAT (conv+bn train as one node with BN folded into the
  -- fake-quantized weight), then fine-tune with a small learning rate
  local q = fp32:clone()
  q:prepare_qat(qlab.qconfig.default_qat())
  local epochs, batches = 4, ctx.quick and 4 or 60   -- 4 epochs of 60 batches of 128 images
  local h = qlab.train(q, ctx.train:loader{batch = ctx.quick and 64 or 128, shuffle = true, seed = 2, flip = true,
                                           crop_pad = 2, batches = batches},
                       {epochs = epochs, lr = 1e-3, momentum = 0.9, weight_decay = 5e-5, schedule = "cosine",
                        freeze_bn_after = 2, freeze_observers_after = 3, quiet = ctx.quick})
  -- TODO 3: convert exactly as PTQ does
  q:convert()
  local rq = lab.measure(ctx, q, fp32, base)
  lab.print_table(string.format("Part 3, QAT of %s (%d epochs of %d batches; BN frozen after 2, observers after 3)",
                                ctx.model_name, epochs, batches), {{"fp32", base}, {"ptq int8", rp}, {"qat int8", rq}})
  local curve = {}
  for _, e in ipairs(h.epochs) do curve[#curve + 1] = string.format("%.4f", e.loss) end
  print("QAT training loss by epoch: " .. table.concat(curve, " "))
  local losses = {}
  for i, e in ipairs(h.epochs) do losses[i] = e.loss end
  return {variants = {fp32 = base, ptq_int8 = rp, qat_int8 = rq}, epochs = epochs, batches_per_epoch = batches,
          loss_curve = losses}
end

if ... ~= "labs.lab02.part3_qat" then lab.main("part3_qat", run, arg) end
return run
