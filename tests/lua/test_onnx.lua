-- ONNX export and import through the Lua API: qlab -> ONNX -> qlab gives
-- identical outputs (FP32 models of the zoo; the INT8 round trip is in
-- test_onnx_qdq.lua), errors are Lua errors with the engine's message.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"

local tmp = H.tmpdir()
local test = qlab.data.fashion_mnist{split = "test"}
local x = test:loader{batch = 16}:next()

local function round_trip(name, input)
  local m = qlab.load("data/models/" .. name .. ".qlm")
  local path = tmp .. "/" .. name .. ".onnx"
  m:save(path)
  local back = qlab.load(path)
  local a, b = m:forward(input), back:forward(input)
  assert(H.maxdiff(a, b) == 0, name .. ": outputs differ by " .. H.maxdiff(a, b))
  return m, back
end

H.test("onnx round trip small_cnn identical, names kept", function()
  local m, back = round_trip("small_cnn_fmnist", x)
  local names = {}
  for _, n in ipairs(back:nodes()) do names[n.name] = n.op end
  for _, n in ipairs(m:nodes()) do assert(names[n.name] == n.op, n.name .. " lost in the round trip") end
end)

H.test("onnx round trip resnet18 identical", function() round_trip("resnet18_fmnist", x) end)
H.test("onnx round trip mobilenet_v2 identical", function() round_trip("mobilenet_v2_fmnist", x) end)
H.test("onnx round trip lstm identical", function() round_trip("lstm_fmnist", x:reshape{16, 28, 28}) end)

H.test("onnx round trip of a 2-layer LSTM (one ONNX LSTM per layer)", function()
  qlab.seed(3)
  local m = qlab.models.lstm{layers = 2, hidden = 16}
  local path = tmp .. "/lstm2.onnx"
  m:save(path)
  local seq = x:reshape{16, 28, 28}
  assert(H.maxdiff(m:forward(seq), qlab.load(path):forward(seq)) == 0)
end)

H.test("onnx fused model exports its activations", function()
  local m = qlab.load("data/models/small_cnn_fmnist.qlm")
  m:fuse()
  local path = tmp .. "/fused.onnx"
  m:save(path)
  assert(H.maxdiff(m:forward(x), qlab.load(path):forward(x)) == 0)
end)

H.test("onnx errors are Lua errors", function()
  H.raises(function() qlab.load("data/fixtures/onnx/bad_op.onnx") end, "HardSwish, opset 14")
  H.raises(function() qlab.load(tmp .. "/missing.onnx") end, "cannot open")
  local m = qlab.load("data/models/lstm_fmnist.qlm")
  local d = qlab.quantize_dynamic(m, {types = {"linear", "lstm"}, dtype = "s8"})
  H.raises(function() d:save(tmp .. "/dyn.onnx") end, "has no ONNX form")
  H.raises(function() m:save(tmp .. "/x.onnx", {everything = true}) end, "everything")
end)

os.execute("rm -rf " .. tmp)
H.done()
