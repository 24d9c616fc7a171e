-- Quantized models through ONNX: qlab's static PTQ exported in QDQ form and read
-- back gives identical outputs on the INT8 kernels; the same file read as a QDQ
-- simulation (FP32 ops between quantize / dequantize) stays within an LSB or so;
-- a QOperator model (QLinearConv, QLinearMatMul) maps onto the INT8 nodes.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"

local tmp = H.tmpdir()
local train = qlab.data.fashion_mnist{split = "train"}
local x = qlab.data.fashion_mnist{split = "test"}:loader{batch = 64}:next()

local function ptq(qc)
  qlab.seed(0)
  local m = qlab.load("data/models/small_cnn_fmnist.qlm")
  m:fuse()
  m:prepare{default = qc}
  qlab.calibrate(m, train:loader{batch = 32, shuffle = true, batches = 5})
  m:convert()
  return m
end

local function ops(m)
  local t = {}
  for _, n in ipairs(m:nodes()) do t[#t + 1] = n.op end
  return table.concat(t, " ")
end

for _, case in ipairs{
  {"7-bit activations (default)", qlab.qconfig.default(), {}},
  {"7-bit, keep_fusable", qlab.qconfig.default(), {keep_fusable = true}},
  {"per-tensor weights", qlab.qconfig.per_tensor(), {}},
} do
  H.test("onnx QDQ round trip identical: " .. case[1], function()
    local m = ptq(case[2])
    local path = tmp .. "/q.onnx"
    m:save(path, case[3])
    local back = qlab.load(path)
    assert(ops(back) == ops(m), ops(back) .. "\nvs\n" .. ops(m))
    assert(H.maxdiff(m:forward(x), back:forward(x)) == 0, "outputs differ")
  end)
end

H.test("onnx QDQ simulation close to the INT8 kernels", function()
  local m = ptq(qlab.qconfig.default())
  local path = tmp .. "/s.onnx"
  m:save(path)
  local sim = qlab.load(path, {simulate = true})
  assert(not ops(sim):find("qconv2d"), "simulation uses the INT8 kernels: " .. ops(sim))
  local d = H.maxdiff(m:forward(x), sim:forward(x))
  assert(d < 0.5, "simulation logits differ by " .. d)
end)

H.test("onnx QOperator model onto INT8 nodes", function()
  local m = qlab.load("data/fixtures/onnx/qoperator/model.onnx")
  local o = ops(m)
  assert(o:find("qconv2d") and o:find("qlinear") and o:find("qmaxpool2d"), o)
end)

os.execute("rm -rf " .. tmp)
H.done()
