-- Lab 2, part 4: per-channel vs per-tensor weight scales. One scale per
-- output channel follows each filter's own range; one per tensor lets the
-- largest filter set the step for all (depthwise convolutions suffer most).
--   ./qlab --script lua/labs/lab02/part4_per_channel.lua [--quick] [--model NAME]
local qlab = require "qlab"
local lab = require "labs.lab02.common"

local function run(ctx)
  local fp32 = lab.load(ctx)
  local base = lab.measure(ctx, fp32)
  local rows, res = {{"fp32", base}}, {variants = {fp32 = base}}
  -- TODO: the same 8-bit histogram activations, two weight granularities
  for _, v in ipairs{{"per_channel", qlab.qconfig.default}, {"per_tensor", qlab.qconfig.per_tensor}} do
    local m = qlab.ptq(fp32, v[2](), ctx.calib())
    local r = lab.measure(ctx, m, fp32, base)
    rows[#rows + 1] = {"ptq int8 " .. v[1]:gsub("_", "-"), r}
    res.variants["ptq_int8_" .. v[1]] = r
    -- the worst layer's weight SQNR shows where per-tensor loses
    m:free()
  end
  lab.print_table("Part 4, per-channel vs per-tensor weights on " .. ctx.model_name, rows)
  local pc, pt = res.variants.ptq_int8_per_channel, res.variants.ptq_int8_per_tensor
  print(string.format("per-channel %.2f %%, per-tensor %.2f %%: per-channel is %.2f points better", pc.top1, pt.top1,
                      pc.top1 - pt.top1))
  return res
end

if ... ~= "labs.lab02.part4_per_channel" then lab.main("part4_per_channel", run, arg) end
return run
