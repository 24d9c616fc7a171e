-- Lab 2, bonus: ONNX. Export the FP32 and the INT8 model (QDQ form: int8
-- weights per channel, int32 bias, QuantizeLinear / DequantizeLinear around
-- float ops, which ONNX Runtime fuses into its INT8 kernels), read them back,
-- and, where ONNX Runtime is installed (make ort), run both in ORT beside qlab.
--   ./qlab --script lua/labs/lab02/bonus_onnx.lua [--quick] [--model NAME]
local qlab = require "qlab"
local lab = require "labs.lab02.common"

local function file_size(p)
  local f = io.open(p, "rb")
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

local function run(ctx)
  local dir = "out/lab02"
  os.execute("mkdir -p " .. dir)
  local fp32 = lab.load(ctx)
  local base = lab.measure(ctx, fp32)
  local int8 = qlab.ptq(fp32, qlab.qconfig.default(), ctx.calib())
  -- TODO 1: export both; the files are what any ONNX runtime reads
  local f_fp32, f_int8 = dir .. "/" .. ctx.model_name .. "_fp32.onnx", dir .. "/" .. ctx.model_name .. "_int8.onnx"
  fp32:save(f_fp32)
  int8:save(f_int8)
  -- TODO 2: read them back: the same outputs on qlab's kernels
  local back = qlab.load(f_int8)
  local r_int8, r_back = lab.measure(ctx, int8, fp32, base), lab.measure(ctx, back, fp32, base)
  lab.print_table("Bonus, ONNX export of " .. ctx.model_name, {{"fp32", base}, {"ptq int8", r_int8},
                  {"int8 from .onnx", r_back}})
  print(string.format("files: %s (%.2f MB), %s (%.2f MB, QDQ)", f_fp32, file_size(f_fp32) / 1e6, f_int8,
                      file_size(f_int8) / 1e6))
  local res = {variants = {fp32 = base, ptq_int8 = r_int8, int8_from_onnx = r_back},
               files = {fp32 = f_fp32, int8 = f_int8, fp32_bytes = file_size(f_fp32), int8_bytes = file_size(f_int8)}}
  -- TODO 3: ONNX Runtime on the same files (scripts/ort_compare, Node; qlab itself never needs it)
  local have_ort = io.open(".ort/node_modules/onnxruntime-node/package.json") ~= nil
  if not have_ort then
    res.ort = {skipped = "ONNX Runtime is not installed (make ort)"}
    print("ONNX Runtime: " .. res.ort.skipped)
    return res
  end
  res.ort = {}
  for _, v in ipairs{{"fp32", f_fp32}, {"int8", f_int8}} do
    local json = dir .. "/ort_" .. v[1] .. ".json"
    local cmd = string.format("scripts/ort_compare %s --n %d --threads %d %s --json %s > %s.log 2>&1", v[2],
                              ctx.quick and 1000 or 10000, ctx.threads, ctx.quick and "--no-time" or "", json, json)
    if os.execute(cmd) then
      local f = io.open(json)
      res.ort[v[1]] = qlab.json_decode(f:read("a"))
      f:close()
      local o = res.ort[v[1]]
      print(string.format("ORT %s: top-1 %.2f (qlab %.2f on the same file)", v[1], o.ort.top1, o.qlab.top1))
    else
      res.ort[v[1]] = {failed = "scripts/ort_compare failed: see " .. json .. ".log"}
      print(res.ort[v[1]].failed)
    end
  end
  return res
end

if ... ~= "labs.lab02.bonus_onnx" then lab.main("bonus_onnx", run, arg) end
return run
