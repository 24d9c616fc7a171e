-- Quantization-aware training: conv_bn equals conv + bn (forward and
-- gradients, fake-quant off), freezing stops ranges and BN statistics, and a
-- short QAT run of small_cnn converts within 1 % of FP32.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"
qlab.seed(3)

local train = qlab.data.fashion_mnist{split = "train"}
local test = qlab.data.fashion_mnist{split = "test"}

local function net()
  local b = qlab.nn.graph{input = {28, 28, 1}}
  local x = b:conv_bn("conv1", "bn1", b:input(), {out = 8, kernel = 3, stride = 2, padding = 1})
  x = b:conv_bn("conv2", "bn2", x, {out = 12, kernel = 3, stride = 2, padding = 1, bias = true})
  x = b:global_avgpool("pool", x)
  return b:build(b:linear("fc", x, {out = 10}))
end

local maxdiff = H.maxdiff

local function warm(m)   -- non-trivial BN statistics
  qlab.train(m, train:subset(1, 256):loader{batch = 64, seed = 1}, {epochs = 1, lr = 0.05, quiet = true})
  return m
end

H.test("conv_bn matches conv + bn: eval and training forward, and one SGD step", function()
  local m = warm(net())
  local q = m:clone()
  q:prepare_qat(qlab.qconfig.default_qat())
  q:fake_quant(false)
  local ops = {}
  for _, n in ipairs(q:nodes()) do ops[n.name] = n.op end
  assert(ops.conv1 == "conv_bn" and ops.conv2 == "conv_bn" and ops.conv1_fq == "fakequant" and not ops.bn1)
  local x, y = test:subset(1, 32):loader{batch = 32}:next()
  local d = maxdiff(q:forward(x), m:forward(x))
  assert(d < 1e-4, "eval forward differs by " .. d)
  d = maxdiff(q:forward(x, true), m:forward(x, true))
  assert(d < 1e-4, "training forward differs by " .. d)
  -- one plain SGD step (lr 1): parameter change = gradient
  local a, b = m:clone(), q:clone()
  a:train_step(qlab.optim.sgd{lr = 1}, x, y)
  b:train_step(qlab.optim.sgd{lr = 1}, x, y)
  for _, pair in ipairs{{"conv1.weight", "conv1.weight"}, {"bn1.weight", "conv1.bn.weight"},
                        {"bn2.bias", "conv2.bn.bias"}, {"conv2.bias", "conv2.bias"},
                        {"bn1.running_mean", "conv1.bn.running_mean"}, {"fc.weight", "fc.weight"}} do
    local ga = a:param(pair[1]):table()
    local gb = b:param(pair[2]):table()
    local ref = m:param(pair[1]):table()
    for i = 1, #ga do
      local da, db = ga[i] - ref[i], gb[i] - ref[i]
      assert(math.abs(da - db) <= 2e-4 * math.max(1, math.abs(da)) + 1e-5,
             string.format("%s[%d]: unfused step %.6g, conv_bn step %.6g", pair[1], i, da, db))
    end
  end
end)

H.test("frozen BN and observers stop changing", function()
  local q = warm(net())
  q:prepare_qat(qlab.qconfig.default_qat())
  local ld = train:subset(1, 256):loader{batch = 64, seed = 2}
  qlab.train(q, ld, {epochs = 1, lr = 0.01, quiet = true})
  q:freeze_bn()
  q:freeze_observers()
  assert(q:bn_frozen() and q:observers_frozen())
  local rm = q:param("conv1.bn.running_mean"):table()
  local lo, hi = q:observer("conv1_fq"):range()
  qlab.train(q, ld, {epochs = 1, lr = 0.01, quiet = true})
  local rm2 = q:param("conv1.bn.running_mean"):table()
  for i = 1, #rm do assert(rm[i] == rm2[i], "running mean moved after freeze_bn") end
  local lo2, hi2 = q:observer("conv1_fq"):range()
  assert(lo == lo2 and hi == hi2, "observer range moved after freeze_observers")
end)

H.test("qlab.train freezes on schedule and says so", function()
  local q = warm(net())
  q:prepare_qat(qlab.qconfig.default_qat())
  local ld = train:subset(1, 128):loader{batch = 64, seed = 2}
  qlab.train(q, ld, {epochs = 3, lr = 0.01, quiet = true, freeze_bn_after = 1, freeze_observers_after = 2})
  assert(q:bn_frozen() and q:observers_frozen())
end)

H.test("short QAT of small_cnn converts and evaluates within 1 % of FP32", function()
  local fp32 = qlab.load("data/models/small_cnn_fmnist.qlm")
  local val = test:subset(1, 2000):loader{batch = 500}
  local base = qlab.evaluate(fp32, val).top1
  local q = fp32:clone()
  q:prepare_qat(qlab.qconfig.default_qat())
  -- lr 3e-4: at 1e-3 the result was chaotic (two FP32 conv implementations that
  -- agree to 1e-6 per step ended 0.85 points apart after one fake-quant rounding
  -- flip in epoch 1); at 3e-4 both give the same 89.85 on these images.
  qlab.train(q, train:subset(1, 3200):loader{batch = 64, shuffle = true, seed = 4},
             {epochs = 2, lr = 3e-4, momentum = 0.9, quiet = true, freeze_bn_after = 1, freeze_observers_after = 1})
  local fq = qlab.evaluate(q, val).top1
  q:convert()
  local int8 = qlab.evaluate(q, val).top1
  for _, n in ipairs(q:nodes()) do assert(n.op ~= "fakequant" and n.op ~= "conv_bn", n.name) end
  assert(math.abs(int8 - base) < 1.0, string.format("FP32 %.2f, QAT fake-quant %.2f, converted %.2f", base, fq, int8))
  assert(math.abs(int8 - fq) < 0.5, string.format("converted %.2f far from its fake-quant model %.2f", int8, fq))
end)

H.done()
