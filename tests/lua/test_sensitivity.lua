-- Sensitivity analysis, per-layer comparison and the mixed-precision search,
-- on the shipped small_cnn with one deliberately fragile layer.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"
qlab.seed(0)

local test = qlab.data.fashion_mnist{split = "test"}
local train = qlab.data.fashion_mnist{split = "train"}
local val = test:subset(1, 400):loader{batch = 200}
local calib = train:subset(1, 256):loader{batch = 64}

-- small_cnn whose conv2 has one huge negative weight: the per-tensor weight
-- scale of conv2 is ruined (every other weight rounds to zero), while the
-- FP32 model barely changes (the fused ReLU clips that channel).
local function fragile()
  local m = qlab.load("data/models/small_cnn_fmnist.qlm")
  local w = m:param("conv2.weight")
  local t = w:table()
  t[1] = -500
  m:set_param("conv2.weight", qlab.tensor(t, w:shape()))
  return m
end

H.test("keep_activations keeps every node's output in inference", function()
  local m = qlab.load("data/models/small_cnn_fmnist.qlm")
  local x = val:next()
  m:forward(x)
  assert(m:activation("conv1") == nil, "inference frees intermediate outputs")
  assert(m:keep_activations(true) == false)
  local y = m:forward(x)
  local a = m:activation("conv1")
  assert(a and a:shape()[1] == 200 and m:activation("fc1") and m:activation("fc2"))
  local t1, t2 = m:activation("fc2"):table(), y:table()
  for i = 1, #t1 do assert(t1[i] == t2[i]) end
  assert(m:keep_activations(false) == true)
end)

H.test("compare: inf for FP32 nodes upstream of any quantization, finite for quantized ones", function()
  local fp = qlab.load("data/models/small_cnn_fmnist.qlm")
  local q = fp:clone()
  q:fuse()
  q:prepare{default = qlab.qconfig.default(), conv1 = false}
  qlab.calibrate(q, calib)
  q:convert()
  local res = qlab.compare(fp, q, val)   -- unfused FP32: compared with its fused clone
  local by, order = {}, {}
  for _, r in ipairs(res) do by[r.name] = r; order[#order + 1] = r.name end
  assert(table.concat(order, ",") == "conv1,pool1,conv2,pool2,conv3,avgpool,fc1,fc2,output", table.concat(order, ","))
  assert(by.conv1.sqnr_db == math.huge and by.conv1.mse == 0 and by.conv1.precision == "f32")
  assert(by.pool1.sqnr_db > 30 and by.pool1.sqnr_db < math.huge, "quantize at conv1's output: " .. by.pool1.sqnr_db)
  for _, n in ipairs{"conv2", "conv3", "fc1", "fc2", "output"} do
    local r = by[n]
    assert(r.sqnr_db > 15 and r.sqnr_db < 80, n .. " sqnr " .. r.sqnr_db)
    assert(r.mse > 0 and r.max_abs > 0)
  end
  assert(by.conv2.op == "qconv2d" and by.conv2.precision == "int8")
  -- the FP32 model against itself: every node identical
  for _, r in ipairs(qlab.compare(fp, fp:clone(), val, {batches = 1})) do assert(r.sqnr_db == math.huge, r.name) end
  -- the C arithmetic from Lua
  local a, b = qlab.tensor({1, 2, 3}, {3}), qlab.tensor({1, 2, 2}, {3})
  local s = qlab.compare_tensors(a, b)
  H.near(s.sqnr_db, 10 * math.log(14, 10), 1e-9, "sqnr")
  s = qlab.compare_tensors(a, b, s)
  assert(s.n == 6 and s.max_abs == 1)
end)

H.test("the fragile layer ranks first with both metrics and in both modes", function()
  local m = fragile()
  local qc = qlab.qconfig.per_tensor()
  for _, metric in ipairs{"sqnr", "top1"} do
    local rank, info = qlab.sensitivity(m, {data = val, calib = calib, qconfig = qc, metric = metric, quiet = true,
                                            time = metric == "sqnr"})
    assert(#rank == 5 and info.nodes == 5)
    assert(rank[1].name == "conv2", metric .. ": first is " .. rank[1].name)
    assert(rank[1].sqnr_db < 10 and rank[2].sqnr_db > 25, metric .. " sqnr " .. rank[1].sqnr_db .. " " .. rank[2].sqnr_db)
    assert(rank[1].kl > 100 * rank[2].kl)
    assert(rank[1].op == "conv2d" and rank[1].params == 32 * 16 * 9 + 32 and rank[1].rank == 1)
    assert(metric == "top1" or (rank[1].time > 0 and rank[1].time_fp32 > 0), "per-node times")
    if metric == "top1" then
      assert(rank[1].drop > 20 and rank[2].drop < 5, "drops " .. rank[1].drop .. " " .. rank[2].drop)
      H.near(info.top1_fp32 - info.quantized.top1 - rank[1].drop, 0, 10, "conv2 accounts for the full model's loss")
    else
      assert(rank[1].drop == nil, "sqnr mode does not measure top-1")
    end
  end
  -- all INT8 but one node: keeping conv2 FP32 buys the most
  local rank = qlab.sensitivity(m, {data = val, calib = calib, qconfig = qc, metric = "sqnr", mode = "all_but_one",
                                    quiet = true, time = false, batches = 1})
  assert(rank[1].name == "conv2" and rank[1].gain_db > 20, rank[1].name)
end)

H.test("one calibration reused equals a calibration per node", function()
  local m = qlab.load("data/models/small_cnn_fmnist.qlm")
  local o = {data = val, calib = calib, metric = "sqnr", quiet = true, time = false, batches = 1}
  local a = qlab.sensitivity(m, o)
  o.recalibrate = true
  local b = qlab.sensitivity(m, o)
  for i = 1, #a do
    assert(a[i].name == b[i].name)
    H.near(a[i].sqnr_db, b[i].sqnr_db, 1e-9, a[i].name)
  end
end)

H.test("greedy mixed precision stops as soon as the budget holds", function()
  local m = fragile()
  local o = {data = val, calib = calib, qconfig = qlab.qconfig.per_tensor(), levels = {"int8", "fp32"},
             quiet = true, latency_runs = 3}
  o.budget = 100
  local r = qlab.mixed_precision(m, o)
  assert(#r.steps == 0 and r.start.drop > 20 and r.final.within_budget, "large budget: no step")
  assert(r.model:nodes()[2].op == "qconv2d" and r.precision.conv2 == "int8")
  r.model:free()
  -- the first step raises conv2; a budget just above its drop takes exactly that step
  o.budget, o.max_steps = 0, 1
  r = qlab.mixed_precision(m, o)
  assert(#r.steps == 1 and r.steps[1].node == "conv2" and r.steps[1].from == "int8" and r.steps[1].to == "fp32")
  local d1 = r.steps[1].drop
  assert(d1 < 5 and r.steps[1].size_bytes > r.start.size_bytes and r.steps[1].latency_ms > 0)
  r.model:free()
  o.budget, o.max_steps = d1 + 0.01, nil
  r = qlab.mixed_precision(m, o)
  assert(#r.steps == 1 and r.steps[1].node == "conv2", "steps: " .. #r.steps)
  assert(r.final.within_budget and r.map.conv2 == false and r.precision.conv2 == "fp32")
  -- the returned map rebuilds the same model
  local f = m:clone()
  f:fuse()
  f:prepare(r.map)
  qlab.calibrate(f, calib)
  f:convert()
  H.near(qlab.evaluate(f, val).top1, r.final.top1, 1e-9, "map")
end)

H.test("errors and JSON", function()
  local m = qlab.models.small_cnn()
  H.raises(function() qlab.sensitivity(m, {data = val, metric = "acc"}) end, "metric must be")
  H.raises(function() qlab.sensitivity(m, {data = val, mode = "pairs"}) end, "mode must be")
  H.raises(function() qlab.sensitivity(m, {calib = calib}) end, "give data = loader")
  H.raises(function() qlab.sensitivity(m, {data = val, colour = 1}) end, "unknown option 'colour'")
  H.raises(function() qlab.mixed_precision(m, {data = val, levels = {"w4a4", "fp32"}}) end, "8-bit activations")
  H.raises(function() qlab.compare(m, m, 3) end, "loader")
  local tmp = H.tmpdir()
  local f = assert(io.open(tmp .. "/s.lua", "w"))
  f:write([[local qlab = require "qlab"
local d = qlab.data.fashion_mnist{split = "test"}:subset(1, 64):loader{batch = 64}
local r = qlab.sensitivity(qlab.models.small_cnn(), {data = d, metric = "sqnr", quiet = true, nodes = {"fc2"}})
qlab.record("sensitivity", r)]])
  f:close()
  local bin = os.getenv("QLAB_TEST_BIN") or "./qlab"
  assert(os.execute(bin .. " --json " .. tmp .. "/s.json --script " .. tmp .. "/s.lua"))
  local j = assert(io.open(tmp .. "/s.json")):read("a")
  assert(j:find('"sensitivity"') and j:find('"name":%s*"fc2"') and j:find('"sqnr_db"'), j)
end)

H.test("live views: on_node sees every entry as it is measured, on_step every greedy step; false stops", function()
  local m = fragile()
  local seen = {}
  local rank = qlab.sensitivity(m, {data = val, calib = calib, metric = "sqnr", quiet = true, time = false,
                                    on_node = function(e, i, n) seen[#seen + 1] = {e.name, i, n} end})
  assert(#seen == #rank and seen[1][2] == 1 and seen[#seen][2] == seen[1][3], "one call per node, counted")
  local names = {}
  for _, r in ipairs(rank) do names[r.name] = true end
  for _, s in ipairs(seen) do assert(names[s[1]], s[1]) end
  local partial, info = qlab.sensitivity(m, {data = val, calib = calib, metric = "sqnr", quiet = true, time = false,
                                             on_node = function(_, i) if i >= 2 then return false end end})
  assert(info.cancelled and #partial == 2, "stopped after the second node: " .. #partial)
  local steps = {}
  local mp = qlab.mixed_precision(m, {data = val, calib = calib, qconfig = qlab.qconfig.per_tensor(), budget = 0,
                                      quiet = true, latency_runs = 2, max_steps = 3,
                                      on_step = function(s) steps[#steps + 1] = s; return #steps < 2 end})
  assert(#steps == 2 and #mp.steps == 2 and mp.cancelled and steps[2].step == 2, "two steps, then stopped")
  mp.model:free()
end)

H.done()
