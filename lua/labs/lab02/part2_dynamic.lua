-- Lab 2, part 2: dynamic quantization. Weights are quantized ahead of time,
-- activations per batch at run time, so nothing needs calibrating: the
-- choice for Linear and LSTM layers, whose inputs vary from call to call.
--   ./qlab --script lua/labs/lab02/part2_dynamic.lua [--quick] [--model NAME]
local qlab = require "qlab"
local lab = require "labs.lab02.common"

local function run(ctx)
  -- TODO 1: the LSTM classifier (rows of the image as a sequence): FP32, then
  -- dynamic INT8 and FP16 weights on its LSTM and Linear layers
  local lstm = lab.load(ctx, "lstm")
  local rows, res = {}, {variants = {}}
  local base = lab.measure(ctx, lstm)
  rows[1] = {"lstm fp32", base}
  for _, dt in ipairs{"s8", "f16"} do
    local d = qlab.quantize_dynamic(lstm, {types = {"linear", "lstm"}, dtype = dt})
    local r = lab.measure(ctx, d, lstm, base)
    rows[#rows + 1] = {"lstm dynamic " .. (dt == "s8" and "int8" or dt), r}
    res.variants["lstm_dynamic_" .. (dt == "s8" and "int8" or dt)] = r
    d:free()
  end
  res.variants.lstm_fp32 = base

  -- TODO 2: static vs dynamic on the same CNN: dynamic quantization only
  -- touches its Linear layers (the convolutions stay FP32), static PTQ
  -- quantizes everything, with calibrated activation ranges
  local cnn = lab.load(ctx)
  local cbase = lab.measure(ctx, cnn)
  rows[#rows + 1] = {ctx.model_name .. " fp32", cbase}
  local dyn = qlab.quantize_dynamic(cnn, {types = {"linear"}, dtype = "s8"})
  local rd = lab.measure(ctx, dyn, cnn, cbase)
  rows[#rows + 1] = {ctx.model_name .. " dynamic int8", rd}
  local st = qlab.ptq(cnn, qlab.qconfig.default(), ctx.calib())
  local rs = lab.measure(ctx, st, cnn, cbase)
  rows[#rows + 1] = {ctx.model_name .. " static int8", rs}
  res.variants.cnn_fp32, res.variants.cnn_dynamic_int8, res.variants.cnn_static_int8 = cbase, rd, rs
  lab.print_table("Part 2, dynamic quantization (LSTM) and static vs dynamic (" .. ctx.model_name .. ")", rows)
  print(string.format("on %s, dynamic INT8 leaves the convolutions FP32: %.2fx at batch 1, static INT8 %.2fx",
                      ctx.model_name, rd.speedup_b1, rs.speedup_b1))
  return res
end

if ... ~= "labs.lab02.part2_dynamic" then lab.main("part2_dynamic", run, arg) end
return run
