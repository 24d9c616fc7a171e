-- Static post-training quantization: fusion, the prepare map, calibration,
-- convert (precision boundaries), files and sizes, errors.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"
qlab.seed(0)

local test = qlab.data.fashion_mnist{split = "test"}
local train = qlab.data.fashion_mnist{split = "train"}
local tmp = H.tmpdir()

local maxdiff = H.maxdiff

-- every fusion pattern: conv+bn, conv+bn+relu, conv+bn+relu6, conv+relu, linear+relu, add+relu
local function all_patterns()
  local b = qlab.nn.graph{input = {28, 28, 1}}
  local x = b:conv_bn("c1", "b1", b:input(), {out = 8, kernel = 3, padding = 1})                 -- conv+bn+relu
  local y = b:conv_bn("c2", "b2", x, {out = 8, kernel = 3, padding = 1}, "relu6", "r2")          -- conv+bn+relu6
  local z = b:conv_bn("c3", "b3", x, {out = 8, kernel = 1}, false)                               -- conv+bn
  x = b:relu("r4", b:add("add", y, z))                                                           -- add+relu
  x = b:relu("r5", b:conv2d("c5", x, {out = 16, kernel = 3, stride = 2, padding = 1}))          -- conv+relu
  x = b:maxpool2d("pool", x, {kernel = 2})
  x = b:flatten("flat", x)
  x = b:relu("r6", b:linear("fc1", x, {out = 32}))                                               -- linear+relu
  return b:build(b:linear("fc2", x, {out = 10}))
end

-- non-trivial BN statistics: a few training steps
local function trained(m, steps)
  qlab.train(m, train:subset(1, 64 * steps):loader{batch = 64, seed = 1}, {epochs = 1, lr = 0.05, quiet = true})
  return m
end

H.test("fusion equals the unfused model to 1e-5", function()
  local m = trained(all_patterns(), 3)
  local f = m:clone()
  assert(f:fuse() == 8, "fused count")
  local ops = {}
  for _, n in ipairs(f:nodes()) do ops[#ops + 1] = n.op end
  assert(table.concat(ops, ",") == "conv2d,conv2d,conv2d,add,conv2d,maxpool2d,flatten,linear,linear", table.concat(ops, ","))
  local x = test:subset(1, 8):loader{batch = 8}:next()
  local d = maxdiff(f:forward(x), m:forward(x))
  assert(d < 1e-5, "fused differs by " .. d)
  assert(f:param("c1.bias"), "folded bias exists")
end)

H.test("PTQ (fast_7bit) of the shipped small_cnn is within 1% of FP32 on 2,000 test images", function()
  local fp32 = qlab.load("data/models/small_cnn_fmnist.qlm")
  local val = test:subset(1, 2000):loader{batch = 500}
  local base = qlab.evaluate(fp32, val).top1
  local m = fp32:clone()
  m:fuse()
  m:prepare(qlab.qconfig.fast_7bit())
  qlab.calibrate(m, train:loader{batch = 32, shuffle = true, seed = 2, batches = 20})
  m:convert()
  local q = qlab.evaluate(m, val).top1
  assert(math.abs(q - base) < 1.0, string.format("fp32 %.2f int8 %.2f", base, q))
  -- quantized everywhere: one quantize at the input; the last linear writes f32 logits itself
  local nodes = m:nodes()
  assert(nodes[1].op == "quantize" and nodes[#nodes].op == "qlinear" and nodes[#nodes].dtype == "f32")
  for i = 2, #nodes - 1 do assert(nodes[i].dtype == "u8", nodes[i].name) end
  for i = 2, #nodes do assert(nodes[i].op:sub(1, 1) == "q", nodes[i].name .. " " .. nodes[i].op) end
  -- 7-bit activations (reduce_range): every u8 output keeps to codes 0..127, even for inputs far
  -- outside the calibrated range
  m:keep_activations(true)
  local big = test:subset(1, 8):loader{batch = 8}:next()
  local bt = big:table()
  for i = 1, #bt do bt[i] = bt[i] * 50 end
  m:forward(qlab.tensor(bt, big:shape()))
  for i = 1, #nodes - 1 do
    local qp = nodes[i].qparams
    assert(qp and qp.qmin == 0 and qp.qmax == 127, nodes[i].name)
    local codes = m:activation(nodes[i].name):table()
    for k = 1, #codes do assert(codes[k] <= 127, nodes[i].name .. " code " .. codes[k]) end
  end
  m:keep_activations(false)
  assert(nodes[#nodes].qparams == nil)
  -- file: I8 weights, about 4x smaller, same outputs after reload
  local path = tmp .. "/q.qlm"
  m:save(path)
  local st = qlab.read_tensors(path)
  assert(st["conv1.weight"]:dtype() == "s8" and st["conv1.weight_scale"]:dtype() == "f32")
  assert(st["conv1.weight_zero_point"]:dtype() == "s32")
  local m2 = qlab.load(path)
  local x = test:subset(1, 16):loader{batch = 16}:next()
  assert(maxdiff(m2:forward(x), m:forward(x)) == 0)
  assert(fp32:size_bytes() / m:size_bytes() > 3.5, "size ratio " .. fp32:size_bytes() / m:size_bytes())
end)

H.test("qlab.ptq is fuse + prepare + calibrate + convert on a clone", function()
  local fp32 = qlab.load("data/models/small_cnn_fmnist.qlm")
  local calib = train:subset(1, 256):loader{batch = 64}
  local a = qlab.ptq(fp32, qlab.qconfig.default(), calib)
  local b = fp32:clone()
  b:fuse()
  b:prepare(qlab.qconfig.default())
  qlab.calibrate(b, calib)
  b:convert()
  local x = test:subset(1, 16):loader{batch = 16}:next()
  assert(maxdiff(a:forward(x), b:forward(x)) == 0, "same model")
  assert(fp32:nodes()[1].op == "conv2d", "the FP32 model is untouched")
  H.raises(function() qlab.ptq(fp32, qlab.qconfig.default()) end, "calibration loader")
end)

H.test("a mixed map keeps chosen nodes FP32 with quantize/dequantize at the boundaries", function()
  local m = trained(all_patterns(), 2)
  m:fuse()
  local qc = qlab.qconfig.default()
  m:prepare{default = qc, c3 = false, ["fc%d"] = false}
  local plan = {}
  for _, p in ipairs(m:plan()) do plan[p.name] = p.mode end
  assert(plan.c1 == "int8" and plan.c3 == "f32" and plan.fc1 == "f32" and plan.fc2 == "f32" and plan.add == "int8")
  qlab.calibrate(m, train:subset(1, 256):loader{batch = 64})
  local x = test:subset(1, 8):loader{batch = 8}:next()
  local ref = m:forward(x)
  m:convert()
  local ops = {}
  for _, n in ipairs(m:nodes()) do ops[n.name] = n.op end
  assert(ops.c3 == "conv2d" and ops.c1 == "qconv2d" and ops.add == "qadd")
  assert(ops.c1_dequant == "dequantize", "c3 (FP32) reads c1 through a dequantize")
  assert(ops.c3_quant == "quantize", "add (INT8) reads c3 through a quantize")
  assert(ops.flat_dequant == "dequantize" and ops.fc1 == "linear")
  local d = maxdiff(m:forward(x), ref)
  assert(d < 0.5, "mixed model far from FP32: " .. d)
end)

H.test("errors: unprepared, uncalibrated, bad maps, bad observers", function()
  local m = qlab.models.small_cnn()
  H.raises(function() m:convert() end, "not prepared")
  H.raises(function() qlab.calibrate(m, test:subset(1, 8):loader{batch = 8}) end, "not prepared")
  m:prepare(qlab.qconfig.default())
  H.raises(function() m:convert() end, "never calibrated")
  H.raises(function() m:prepare{default = qlab.qconfig.default(), conv9 = false} end, "'conv9' matches no node")
  H.raises(function() m:prepare{default = 3} end, "must be a QConfig or false")
  H.raises(function() qlab.qconfig{activation = 1} end, "must be observers")
  H.raises(function() qlab.observer.minmax{bits = 9} end, "bits")
  H.raises(function() qlab.observer.histogram{dtype = "f32"} end, "dtype")
  H.raises(function() qlab.observer.minmax{bins = 10, colour = 1} end, "unknown option 'colour'")
  H.raises(function() m:prepare{default = qlab.qconfig{weight = qlab.observer.minmax{dtype = "s8"}}} end, "symmetric")
  H.raises(function() m:observer("nope") end, "no node 'nope'")
end)

H.test("observers alone, and a prepared model's observers", function()
  local o = qlab.observer.minmax{}
  o:observe(qlab.tensor({0.1, -2.0, 3.5, 0.7}, {4}))
  local s, z = o:qparams()
  H.near(s, 5.5 / 255, 1e-6, "scale")
  assert(z == 93, "zero point " .. z)   -- PyTorch: 0 - round(-2 / s) = round(92.7)
  local pc = qlab.observer.minmax{dtype = "s8", symmetric = true, per_channel = true}
  pc:observe(qlab.tensor({1, -2, 3, -4, 0.5, 0.25}, {3, 2}))
  local sc, zp = pc:qparams()
  assert(#sc == 3 and zp[1] == 0)
  H.near(sc[2], 4 / 127.5, 1e-6, "channel 2 scale")
  local m = qlab.models.small_cnn()
  m:fuse()
  m:prepare(qlab.qconfig.default())
  qlab.calibrate(m, test:subset(1, 64):loader{batch = 32})
  local ob = m:observer("conv2")
  assert(ob and ob:count() == 2)
  local counts, lo, hi = ob:histogram()
  assert(#counts == 2048 and hi > lo)
  local rlo, rhi = ob:range()
  assert(rlo >= lo - 1e-6 and rhi <= hi + 1e-6)
  assert(m:observer("pool1"), "pass-through nodes show their source's observer")
end)

H.done()
