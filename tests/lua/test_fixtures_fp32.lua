-- qlab's FP32 engine against PyTorch: the fixtures in data/fixtures/ were
-- written by scripts/fixtures/make_fp32_fixtures.py (torch 1.13, references
-- computed in float64). Each holds a state_dict under PyTorch names, "input"
-- (images NHWC, sequences (N,T,F)) and the expected logits; the models are
-- rebuilt here with the same names and loaded non-strictly (the files hold
-- more than the model's parameters).
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"

local FIX = (arg[0]:match("(.*/)") or "./") .. "../../data/fixtures/"
local TOL = 1e-4

-- Largest |got - want| / max(1, |want|) over all elements; errors on shape mismatch.
local function max_rel_err(got, want)
  local gs, ws = got:shape(), want:shape()
  assert(#got == #want, string.format("%d elements vs %d expected (shapes (%s) vs (%s))",
         #got, #want, table.concat(gs, ","), table.concat(ws, ",")))
  local g, w = got:table(), want:table()
  local worst, at = 0, 1
  for i = 1, #w do
    local e = math.abs(g[i] - w[i]) / math.max(1, math.abs(w[i]))
    if e ~= e then e = math.huge end   -- NaN
    if e > worst then worst, at = e, i end
  end
  return worst, at, g[at], w[at]
end

local function assert_close(got, want, what, tol)
  tol = tol or TOL
  local err, at, g, w = max_rel_err(got, want)
  assert(err <= tol, string.format("%s: max error %.3g at element %d (got %.8g, want %.8g; tol %g)",
                                   what, err, at, g, w, tol))
  return err
end

local function assert_shape(b, node, want)
  local s = b:shape(node)
  assert(table.concat(s, ",") == table.concat(want, ","),
         string.format("node '%s': shape (%s), PyTorch has (%s)", node, table.concat(s, ","), table.concat(want, ",")))
end

-- Loads a fixture's state_dict into model; every model parameter must come from the file.
local function load(model, file)
  local n = model:load_state_dict(FIX .. file, {strict = false})
  assert(n == #model:params(), string.format("%s: loaded %d tensors, the model has %d parameters",
                                            file, n, #model:params()))
end

-- The first `n` samples of a batch-first tensor, as a new tensor.
local function first(t, n)
  local shape, vals = t:shape(), t:table()
  local per = #t // shape[1]
  local out = {}
  for i = 1, n * per do out[i] = vals[i] end
  shape[1] = n
  return qlab.tensor(out, shape)
end

-- ---------------------------------------------------------------- models

-- ResNetMini in make_fp32_fixtures.py
local function resnet_mini()
  local b = qlab.nn.graph{input = {28, 28, 1}}
  local x = b:conv2d("conv1", b:input(), {out = 8, kernel = 3, stride = 1, padding = 1, bias = false})
  x = b:relu("relu", b:batchnorm2d("bn1", x))
  x = b:maxpool2d("maxpool", x, {kernel = 3, stride = 2, padding = 1})
  assert_shape(b, x, {14, 14, 8})
  -- layer1.0: torchvision BasicBlock 8 -> 16, stride 2, with downsample
  local y = b:conv_bn("layer1.0.conv1", "layer1.0.bn1", x, {out = 16, kernel = 3, stride = 2, padding = 1},
                      "relu", "layer1.0.relu")
  y = b:conv_bn("layer1.0.conv2", "layer1.0.bn2", y, {out = 16, kernel = 3, padding = 1}, false)
  local idn = b:conv_bn("layer1.0.downsample.0", "layer1.0.downsample.1", x, {out = 16, kernel = 1, stride = 2}, false)
  x = b:relu("layer1.0.relu2", b:add("layer1.0.add", y, idn))
  assert_shape(b, x, {7, 7, 16})
  x = b:conv2d("dw", x, {out = 16, kernel = 3, padding = 1, groups = 16, bias = true})
  x = b:relu6("relu6", x)
  x = b:avgpool2d("pool", x, {kernel = 2, stride = 2})
  assert_shape(b, x, {3, 3, 16})
  x = b:global_avgpool("avgpool", x)
  x = b:linear("fc", x, {out = 10})
  return b:build(x)
end

-- ConvMix in make_fp32_fixtures.py
local function convmix()
  local b = qlab.nn.graph{input = {28, 28, 1}}
  local x = b:conv2d("conv1", b:input(), {out = 6, kernel = 3, stride = 2, padding = 2, dilation = 2, bias = true})
  assert_shape(b, x, {14, 14, 6})
  x = b:relu("relu", b:batchnorm2d("bn1", x))
  x = b:avgpool2d("pool1", x, {kernel = 3, stride = 2, padding = 1, ceil_mode = true, count_include_pad = true})
  assert_shape(b, x, {8, 8, 6})
  x = b:conv2d("conv2", x, {out = 12, kernel = 3, padding = 2, dilation = 2, groups = 3, bias = false})
  assert_shape(b, x, {8, 8, 12})
  x = b:relu6("relu6", b:batchnorm2d("bn2", x))
  x = b:avgpool2d("pool2", x, {kernel = 3, stride = 2, padding = 1, ceil_mode = true, count_include_pad = false})
  assert_shape(b, x, {5, 5, 12})
  x = b:maxpool2d("maxpool", x, {kernel = 2, stride = 2, ceil_mode = true})
  assert_shape(b, x, {3, 3, 12})
  x = b:conv2d("conv3", x, {out = 16, kernel = {1, 3}, stride = {2, 1}, padding = {0, 1}, bias = true})
  assert_shape(b, x, {2, 3, 16})
  x = b:relu("relu3", x)
  x = b:flatten("flatten", x)   -- NCHW order, as torch.flatten
  x = b:linear("fc", x, {out = 10})
  return b:build(x)
end

-- LSTMNet in make_fp32_fixtures.py
local function lstm_net()
  local b = qlab.nn.graph{input = {28, 28}}
  local x = b:lstm("lstm", b:input(), {hidden = 32, layers = 2})
  x = b:seq_last("last", x)
  x = b:linear("fc", x, {out = 10})
  return b:build(x)
end

-- Eval-mode check: the whole batch, twice (buffers reused), and one sample alone.
local function check_eval(build, file)
  local t, meta = qlab.read_tensors(FIX .. file)
  assert(meta.generator == "scripts/fixtures/make_fp32_fixtures.py", "fixture metadata: generator missing")
  local model = build()
  load(model, file)
  local err = assert_close(model:forward(t.input), t.expected, file .. " forward")
  assert_close(model:forward(t.input), t.expected, file .. " second forward")
  local one = model:forward(first(t.input, 1))
  assert_close(one, first(t.expected, 1), file .. " forward of sample 1 alone")
  return err
end

-- ---------------------------------------------------------------- tests

H.test("read_tensors: shapes, dtypes, metadata", function()
  local t, meta = qlab.read_tensors(FIX .. "fp32_train_step.safetensors")
  assert(meta.torch and meta.torch ~= "", "metadata 'torch' missing")
  assert(table.concat(t.input:shape(), ",") == "4,28,28,1")
  assert(t.input:dtype() == "f32")
  assert(t.labels:dtype() == "s32", "labels dtype " .. t.labels:dtype())
  local want = {3, 7, 0, 9}
  for i, v in ipairs(t.labels:table()) do assert(v == want[i], "labels differ at " .. i) end
  assert(table.concat(t["conv1.weight"]:shape(), ",") == "8,1,3,3")
  assert(#t.loss == 1)
end)

H.test("read_tensors: a missing file is an error naming it", function()
  H.raises(function() qlab.read_tensors(FIX .. "no_such_fixture.safetensors") end, "no_such_fixture.safetensors")
end)

H.test("resnet_mini (conv, bn, maxpool, BasicBlock, depthwise, relu6, avgpool, fc) matches PyTorch", function()
  check_eval(resnet_mini, "fp32_resnet_mini.safetensors")
end)

H.test("a raw PyTorch state_dict (0-dim I64 num_batches_tracked) loads and matches PyTorch", function()
  local file = "torch_state_dict.safetensors"   -- scripts/fixtures/make_state_dict_fixture.py
  local t = qlab.read_tensors(FIX .. file)
  assert(t["bn1.num_batches_tracked"]:dtype() == "s32", "I64 reads as s32")
  local model = resnet_mini()
  load(model, file)
  assert_close(model:forward(t.input), t.expected, file .. " forward")
  -- strict: num_batches_tracked is no mismatch; the extra input / expected tensors are
  local ok, err = pcall(function() resnet_mini():load_state_dict(FIX .. file) end)
  assert(not ok and err:find("2 unexpected: input, expected") and not err:find("num_batches"), err)
end)

H.test("convmix (dilation, strides, groups, ceil_mode pools, count_include_pad, 1x3 kernel, flatten) matches PyTorch", function()
  check_eval(convmix, "fp32_convmix.safetensors")
end)

H.test("lstm (2 layers, batch_first, last step, fc) matches PyTorch", function()
  check_eval(lstm_net, "fp32_lstm.safetensors")
end)

local BN = {"bn1", "layer1.0.bn1", "layer1.0.bn2", "layer1.0.downsample.1"}

local function check_running_stats(model, t, what)
  for _, bn in ipairs(BN) do
    for _, s in ipairs{"running_mean", "running_var"} do
      assert_close(model:param(bn .. "." .. s), t["after." .. bn .. "." .. s], what .. ": " .. bn .. "." .. s)
    end
  end
end

H.test("train-mode forward (batch statistics) and BN running stats match PyTorch", function()
  local file = "fp32_train_step.safetensors"
  local t = qlab.read_tensors(FIX .. file)
  local model = resnet_mini()
  load(model, file)
  assert_close(model:forward(t.input, true), t.expected_train, "training-mode logits")
  check_running_stats(model, t, "after one training forward")
end)

-- One SGD step (lr 1, no momentum, no weight decay) is p - grad: the change of
-- every trainable parameter is PyTorch's gradient.
H.test("train step: loss and every gradient match PyTorch", function()
  local file = "fp32_train_step.safetensors"
  local t = qlab.read_tensors(FIX .. file)
  local model = resnet_mini()
  load(model, file)
  local before = {}
  for _, name in ipairs(model:params()) do before[name] = model:param(name):table() end
  local loss = model:train_step(qlab.optim.sgd{lr = 1.0}, t.input, t.labels, 1.0)
  H.near(loss, t.loss[1], TOL, "cross-entropy loss")
  local checked = 0
  for _, name in ipairs(model:params()) do
    local want = t["grad." .. name]
    if want then
      local after, b = model:param(name):table(), before[name]
      local g = {}
      for i = 1, #b do g[i] = b[i] - after[i] end
      assert_close(qlab.tensor(g, want:shape()), want, "grad." .. name)
      -- and relative to the gradient's own scale (gradients are small)
      local scale = 0
      for _, v in ipairs(want:table()) do scale = math.max(scale, math.abs(v)) end
      local err = 0
      for i, v in ipairs(want:table()) do err = math.max(err, math.abs(g[i] - v)) end
      assert(err <= 1e-3 * scale, string.format("grad.%s: max error %.3g, %.3g of its largest element %.3g",
                                                name, err, err / scale, scale))
      checked = checked + 1
    end
  end
  assert(checked == 16, string.format("compared %d gradients, the fixture has 16", checked))
  check_running_stats(model, t, "after train_step")
end)

H.done()
