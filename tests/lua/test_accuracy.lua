-- Accuracy as users know it: ties go to the lower class index (PyTorch's
-- argmax), so a tie is never a free hit; evaluate's top-1 equals an
-- independent argmax count; agreement and flips against a reference.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"
qlab.seed(0)

local test = qlab.data.fashion_mnist{split = "test"}
local train = qlab.data.fashion_mnist{split = "train"}
local N = 600
local images = test:subset(1, N)

-- flatten -> linear with zero weights: every image gets the logits `bias`
local function constant_logits(bias)
  local b = qlab.nn.graph{input = {28, 28, 1}}
  local m = b:build(b:linear("fc", b:flatten("flat", b:input()), {out = 10}))
  m:set_param("fc.weight", qlab.zeros({10, 784}))
  m:set_param("fc.bias", qlab.tensor(bias, {10}))
  return m
end

local function count_labels(pred)   -- images whose label satisfies pred(label)
  local c = 0
  for i = 1, N do if pred(images:label(i)) then c = c + 1 end end
  return c
end

H.test("exactly tied logits: the lower class index wins, ties are counted", function()
  -- classes 2 and 5 tie at the top: label 2 is right (tied with a higher index), label 5 is not
  local bias = {0, 0, 1, 0, 0, 1, 0, 0, 0, 0}
  local r = qlab.evaluate(constant_logits(bias), images:loader{batch = 128})
  assert(r.n == N and r.ties == N, "every image is tied: " .. r.ties)
  H.near(r.top1, 100 * count_labels(function(y) return y == 2 end) / N, 1e-9, "top1")
  -- order: 2, 5, then 0, 1, 3 (equal logits by index): top-5 = labels 0..3 and 5
  H.near(r.top5, 100 * count_labels(function(y) return y <= 3 or y == 5 end) / N, 1e-9, "top5")
  -- without a tie nobody is tied
  bias[5 + 1] = 0.5
  assert(qlab.evaluate(constant_logits(bias), images:loader{batch = 128}).ties == 0)
end)

H.test("a NaN logit is never right and ranks above every number", function()
  local bias = {0, 0, 1, 0, 0, 0, 0, 0, 0, 0 / 0}
  local r = qlab.evaluate(constant_logits(bias), images:loader{batch = 100})
  assert(r.top1 == 0, "top1 " .. r.top1)
  -- order: NaN (9), 2, 0, 1, 3: top-5 hits are labels 0..3 (label 9's own NaN never counts)
  H.near(r.top5, 100 * count_labels(function(y) return y <= 3 end) / N, 1e-9, "top5")
end)

-- an argmax count written here, independently of the engine's rule
local function argmax_top1(m, loader)
  local hits, n = 0, 0
  for x, y in loader:iter() do
    local logits, labels = m:forward(x):table(), y:table()
    for i = 1, #labels do
      local best, bi = -math.huge, nil
      for k = 1, 10 do
        local v = logits[(i - 1) * 10 + k]
        if v ~= v then bi = bi or k; best = math.huge elseif not bi or v > best then best, bi = v, k end
      end
      if bi - 1 == labels[i] then hits = hits + 1 end
      n = n + 1
    end
  end
  return 100 * hits / n, n
end

local fp32 = qlab.load("data/models/small_cnn_fmnist.qlm")
local val = test:subset(1, 2000):loader{batch = 250}

H.test("evaluate equals an argmax count on a quantized small_cnn (2,000 images)", function()
  local m = fp32:clone()
  m:fuse()
  m:prepare(qlab.qconfig.default())
  qlab.calibrate(m, train:loader{batch = 32, shuffle = true, seed = 3, batches = 10})
  m:convert()
  local r = qlab.evaluate(m, val)
  local top1, n = argmax_top1(m, val)
  assert(r.n == n and n == 2000)
  H.near(r.top1, top1, 1e-12, "top1")
  H.near(qlab.evaluate(fp32, val).top1, argmax_top1(fp32, val), 1e-12, "fp32 top1")
  -- float logits: the last linear writes f32, so requantization makes no ties
  local last = m:nodes()[#m:nodes()]
  assert(last.op == "qlinear" and last.dtype == "f32", last.op .. "/" .. last.dtype)
  assert(r.ties == 0, "ties " .. r.ties)
  -- the default qconfig is accuracy-first: 8-bit activations everywhere
  for _, nd in ipairs(m:nodes()) do
    if nd.qparams then assert(nd.qparams.qmin == 0 and nd.qparams.qmax == 255, nd.name) end
  end
end)

H.test("agreement with a reference and flips each way", function()
  -- a model that differs from fp32 in known images: fc bias pushes class 0 up
  local m = fp32:clone()
  local b = m:param("fc2.bias"):table()
  b[1] = b[1] + 3
  m:set_param("fc2.bias", qlab.tensor(b, {#b}))
  local r = qlab.evaluate(m, val, {reference = fp32})
  -- the same figures from the predictions, image by image
  local agree, lost, gained, n = 0, 0, 0, 0
  for x, y in val:iter() do
    local pm, pf, labels = m:forward(x):argmax(), fp32:forward(x):argmax(), y:table()
    for i = 1, #labels do
      n = n + 1
      if pm[i] == pf[i] then agree = agree + 1 end
      local rm, rf = pm[i] - 1 == labels[i], pf[i] - 1 == labels[i]
      if rf and not rm then lost = lost + 1 end
      if rm and not rf then gained = gained + 1 end
    end
  end
  assert(agree < n and lost > 0, "the change must flip some images")
  H.near(r.agree, 100 * agree / n, 1e-12, "agree")
  assert(r.flips.lost == lost and r.flips.gained == gained, r.flips.lost .. "/" .. r.flips.gained)
  H.near(r.ref_top1, qlab.evaluate(fp32, val).top1, 1e-12, "ref_top1")
  H.near(r.top1 - r.ref_top1, 100 * (gained - lost) / n, 1e-9, "drop = flips")
  local same = qlab.evaluate(fp32:clone(), val, {reference = fp32})
  assert(same.agree == 100 and same.flips.lost == 0 and same.flips.gained == 0)
  H.raises(function() qlab.evaluate(fp32, val, {reference = fp32}) end, "another model")
  H.raises(function() qlab.evaluate(fp32, val, {reference = 3}) end, "model")
  H.raises(function() qlab.evaluate(fp32, val, {refrence = fp32}) end, "unknown option 'refrence'")
end)

H.test("an older converted file (trailing dequantize) loads, runs, and folds into float logits", function()
  local m = qlab.load("data/models/resnet18_fmnist_qat_int8.qlm")
  local nodes = m:nodes()
  assert(nodes[#nodes].op == "dequantize", nodes[#nodes].op)
  local few = test:subset(1, 500):loader{batch = 250}
  local old = m:clone()
  local r0 = qlab.evaluate(m, few)
  assert(m:fold_dequantize() == 1 and m:fold_dequantize() == 0)
  nodes = m:nodes()
  assert(nodes[#nodes].op == "qlinear" and nodes[#nodes].dtype == "f32")
  local r1 = qlab.evaluate(m, few, {reference = old})
  assert(r1.ties == 0 and r1.n == 500, "ties " .. r1.ties)
  assert(r1.agree >= 98, "float logits change few predictions: " .. r1.agree)
  assert(math.abs(r1.top1 - r0.top1) <= 1, r0.top1 .. " vs " .. r1.top1)
end)

H.done()
