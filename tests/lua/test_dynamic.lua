-- Dynamic quantization and half-precision weights: quantize_dynamic on the
-- lstm model (s8, f16, bf16), files with their real dtypes and sizes, a mixed
-- FP32 / FP16 / INT8 model from a prepare map, errors.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"
qlab.seed(0)

local test = qlab.data.fashion_mnist{split = "test"}
local train = qlab.data.fashion_mnist{split = "train"}
local tmp = H.tmpdir()
local x16 = test:subset(1, 16):loader{batch = 16}:next()

local maxdiff = H.maxdiff

local function file_size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

local function ops(m)
  local t = {}
  for _, n in ipairs(m:nodes()) do t[n.name] = n.op .. "/" .. n.precision end
  return t
end

H.test("quantize_dynamic on the lstm model: s8, f16, bf16 run close to FP32; the model is untouched", function()
  local m = qlab.models.lstm()
  local ref = m:forward(x16)
  local tol = {s8 = 0.02, f16 = 1e-3, bf16 = 0.01}
  local want = {s8 = {"dlstm/dyn8", "dlinear/dyn8"}, f16 = {"f16lstm/f16", "f16linear/f16"},
                bf16 = {"bf16lstm/bf16", "bf16linear/bf16"}}
  for _, dt in ipairs{"s8", "f16", "bf16"} do
    local d = qlab.quantize_dynamic(m, {types = {"linear", "lstm"}, dtype = dt})
    local o = ops(d)
    assert(o.lstm == want[dt][1] and o.fc == want[dt][2] and o.last == "seq_last/f32", dt .. ": " .. o.lstm .. " " .. o.fc)
    local diff = maxdiff(d:forward(x16), ref)
    assert(diff < tol[dt], string.format("%s: max |logit diff| %.4g", dt, diff))
  end
  local o = ops(m)
  assert(o.lstm == "lstm/f32" and o.fc == "linear/f32", "the input model changed")
  -- types and exclude choose the nodes
  local only_fc = ops(qlab.quantize_dynamic(m, {types = {"linear"}}))
  assert(only_fc.lstm == "lstm/f32" and only_fc.fc == "dlinear/dyn8")
  local no_fc = ops(qlab.quantize_dynamic(m, {exclude = {"f."}}))
  assert(no_fc.lstm == "dlstm/dyn8" and no_fc.fc == "linear/f32")
  local no_fc2 = ops(qlab.quantize_dynamic(m, {dtype = "f16", exclude = {fc = false}}))
  assert(no_fc2.lstm == "f16lstm/f16" and no_fc2.fc == "linear/f32")
end)

H.test("dynamic models save and load with I8 / F16 / BF16 tensors and the right sizes", function()
  local m = qlab.models.lstm()
  local fp32_path = tmp .. "/fp32.qlm"
  m:save(fp32_path)
  local ratio = {s8 = 3.5, f16 = 1.95, bf16 = 1.95}
  for _, dt in ipairs{"s8", "f16", "bf16"} do
    local d = qlab.quantize_dynamic(m, {dtype = dt})
    local path = tmp .. "/" .. dt .. ".qlm"
    d:save(path)
    local st = qlab.read_tensors(path)
    if dt == "s8" then
      assert(st["lstm.weight_ih_l0"]:dtype() == "s8" and st["lstm.weight_hh_l0"]:dtype() == "s8")
      assert(st["lstm.weight_ih_l0_scale"]:dtype() == "f32" and st["lstm.weight_hh_l0_zero_point"]:dtype() == "s32")
      assert(st["fc.weight"]:dtype() == "s8" and st["fc.weight_scale"]:dtype() == "f32")
    else
      assert(st["lstm.weight_ih_l0"]:dtype() == dt and st["fc.weight"]:dtype() == dt)
      assert(st["lstm.bias_hh_l0"]:dtype() == "f32" and st["fc.bias"]:dtype() == "f32")
    end
    local back = qlab.load(path)
    assert(maxdiff(back:forward(x16), d:forward(x16)) == 0, dt .. ": reloaded model differs")
    local r = m:size_bytes() / d:size_bytes()
    assert(r > ratio[dt], string.format("%s: size ratio %.3f", dt, r))
    local rf = file_size(fp32_path) / file_size(path)
    assert(rf > ratio[dt] * 0.95, string.format("%s: file size ratio %.3f", dt, rf))
  end
end)

H.test("a mixed FP32 / FP16 / INT8 model from a prepare map runs, saves and loads", function()
  local m = qlab.models.small_cnn()
  qlab.train(m, train:subset(1, 128):loader{batch = 64, seed = 1}, {epochs = 1, lr = 0.05, quiet = true})
  local ref = m:forward(x16)
  m:fuse()
  m:prepare{default = qlab.qconfig.default(), conv2 = qlab.qconfig.f16(), fc1 = qlab.qconfig.bf16(), fc2 = false}
  local plan = {}
  for _, p in ipairs(m:plan()) do plan[p.name] = p end
  assert(plan.conv1.mode == "int8" and plan.conv2.mode == "f16" and plan.fc1.mode == "bf16" and plan.fc2.mode == "f32")
  assert(plan.conv2.observed, "an INT8 consumer (pool2) reads conv2: its output is observed")
  qlab.calibrate(m, train:subset(1, 256):loader{batch = 64})
  m:convert()
  local o = ops(m)
  assert(o.conv1 == "qconv2d/int8" and o.conv2 == "f16conv2d/f16" and o.conv3 == "qconv2d/int8", o.conv2)
  assert(o.fc1 == "bf16linear/bf16" and o.fc2 == "linear/f32")
  assert(o.pool1_dequant == "dequantize/f32" and o.conv2_quant == "quantize/u8", "boundaries around the f16 conv")
  local y = m:forward(x16)
  local diff = maxdiff(y, ref)
  assert(diff < 0.5, "mixed model far from FP32: " .. diff)
  local path = tmp .. "/mixed.qlm"
  m:save(path)
  local st = qlab.read_tensors(path)
  assert(st["conv2.weight"]:dtype() == "f16" and st["fc1.weight"]:dtype() == "bf16" and st["conv1.weight"]:dtype() == "s8")
  assert(st["fc2.weight"]:dtype() == "f32")
  local back = qlab.load(path)
  assert(maxdiff(back:forward(x16), y) == 0, "reloaded mixed model differs")
  -- an f16-only map needs no calibration
  local h = qlab.models.small_cnn()
  h:prepare{default = qlab.qconfig.f16()}
  assert(h:is_prepared())
  h:convert()
  assert(ops(h).conv1 == "f16conv2d/f16" and ops(h).bn1 == "batchnorm2d/f32" and ops(h).fc2 == "f16linear/f16")
  assert(tostring(qlab.qconfig.bf16()):find("bf16", 1, true))
end)

H.test("errors: unknown dtype, unknown or unsupported op type, options, qconfig dtype", function()
  local m = qlab.models.lstm()
  H.raises(function() qlab.quantize_dynamic(m, {dtype = "f8"}) end, "unknown dtype 'f8'; valid dtypes: s8, f16, bf16")
  H.raises(function() qlab.quantize_dynamic(m, {types = {"gru"}}) end, "unknown op type 'gru'; valid types: linear, lstm, conv2d")
  H.raises(function() qlab.quantize_dynamic(m, {types = {"conv2d"}, dtype = "s8"}) end, "dtype s8 does not apply to conv2d")
  H.raises(function() qlab.quantize_dynamic(m, {typs = {"linear"}}) end, "unknown option 'typs'")
  H.raises(function() qlab.quantize_dynamic(m, {exclude = {"nope"}}) end, "'nope' matches no node")
  H.raises(function() qlab.quantize_dynamic(m, {types = {}}) end, "types must be a list")
  H.raises(function() qlab.qconfig{dtype = "f8"} end, "dtype must be")
  H.raises(function() qlab.qconfig{dtype = "f16", weight = qlab.observer.minmax{}} end, "takes no observers")
  local d = qlab.quantize_dynamic(m, {dtype = "int8"})   -- an alias
  assert(ops(d).fc == "dlinear/dyn8")
end)

-- With the trained baseline (when it has been shipped): the issue's accuracy targets on 2,000 test images.
local f = io.open("data/models/lstm_fmnist.qlm", "rb")
if f then
  f:close()
  H.test("trained lstm: dynamic INT8 within 0.5 % and FP16 within 0.1 % of FP32 (2,000 images)", function()
    local m = qlab.load("data/models/lstm_fmnist.qlm")
    local val = test:subset(1, 2000):loader{batch = 500}
    local base = qlab.evaluate(m, val).top1
    local d8 = qlab.evaluate(qlab.quantize_dynamic(m, {dtype = "s8"}), val).top1
    local d16 = qlab.evaluate(qlab.quantize_dynamic(m, {dtype = "f16"}), val).top1
    assert(base - d8 < 0.5, string.format("fp32 %.2f dyn8 %.2f", base, d8))
    assert(math.abs(base - d16) < 0.1, string.format("fp32 %.2f f16 %.2f", base, d16))
  end)
end

H.done()
