-- Foundation: tensors, the graph builder, .qlm round trips, datasets and
-- loaders, evaluation, measuring, and errors for bad input.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"
qlab.seed(0)

local tmp = H.tmpdir()

H.test("tensor from values and back", function()
  local t = qlab.tensor({{1, 2, 3}, {4, 5, 6}}, {2, 3})
  assert(t:dtype() == "f32" and #t == 6)
  assert(table.concat(t:shape(), ",") == "2,3")
  local v = t:table()
  assert(v[1] == 1 and v[6] == 6 and t[5] == 5)
  t[1] = 7.5
  assert(t[1] == 7.5)
  local u = qlab.tensor({1, 2, 255}, {3}, "u8")
  assert(u:dtype() == "u8" and u[3] == 255)
  H.raises(function() qlab.tensor({1, 2, 300}, {3}, "u8") end, "does not fit dtype u8")
  H.raises(function() qlab.tensor({1, 2, 3}, {2, 2}) end, "do not fill shape")
  H.raises(function() qlab.tensor({1, "x"}) end, "must be numbers")
  H.raises(function() qlab.tensor({1}, {1}, "f64") end, "unknown dtype")
  H.raises(function() return t[7] end, "out of range")
end)

-- A ResNet-style graph with one residual block (downsample on the skip path).
local function resnet_mini()
  local b = qlab.nn.graph{input = {28, 28, 1}}
  local x = b:conv_bn("conv1", "bn1", b:input(), {out = 8, kernel = 3, padding = 1}, "relu", "relu")
  x = b:maxpool2d("maxpool", x, {kernel = 3, stride = 2, padding = 1})
  local y = b:conv_bn("layer1.0.conv1", "layer1.0.bn1", x, {out = 16, kernel = 3, stride = 2, padding = 1})
  y = b:conv_bn("layer1.0.conv2", "layer1.0.bn2", y, {out = 16, kernel = 3, padding = 1}, false)
  local d = b:conv_bn("layer1.0.downsample.0", "layer1.0.downsample.1", x, {out = 16, kernel = 1, stride = 2}, false)
  x = b:relu("layer1.0.relu2", b:add("layer1.0.add", y, d))
  x = b:global_avgpool("avgpool", x)
  return b:build(b:linear("fc", x, {out = 10}))
end

local maxdiff = H.maxdiff

local test = qlab.data.fashion_mnist{split = "test"}

H.test("resnet-style graph: build, evaluate 1000 images, save, reload", function()
  local m = resnet_mini()
  assert(#m:nodes() == 15, "nodes: " .. #m:nodes())
  local sub = test:subset(1, 1000)
  local r = qlab.evaluate(m, sub:loader{batch = 100})
  assert(r.n == 1000 and r.top1 >= 0 and r.top1 <= 100 and r.top5 >= r.top1 and r.loss > 0)
  local x = sub:loader{batch = 8}:next()
  local y1 = m:forward(x)
  assert(table.concat(y1:shape(), ",") == "8,10")
  local path = tmp .. "/mini.qlm"
  m:save(path)
  local m2 = qlab.load(path)
  assert(maxdiff(m2:forward(x), y1) == 0, "reloaded model differs")
  local r2 = qlab.evaluate(m2, sub:loader{batch = 100})
  assert(r2.top1 == r.top1 and r2.loss == r.loss)
  local c = m:clone()
  assert(maxdiff(c:forward(x), y1) == 0)
  assert(m:num_params() == m2:num_params())
end)

H.test("nodes() describes the graph", function()
  local m = resnet_mini()
  local n = m:nodes()
  assert(n[1].name == "conv1" and n[1].op == "conv2d" and n[1].params == 72)
  assert(table.concat(n[1].shape, ",") == "28,28,8")
  local add
  for _, v in ipairs(n) do if v.op == "add" then add = v end end
  assert(add and #add.inputs == 2 and add.precision == "f32")
end)

H.test("params get and set", function()
  local m = resnet_mini()
  local w = m:param("fc.weight")
  assert(table.concat(w:shape(), ",") == "10,16")
  local z = qlab.zeros({10, 16})
  m:set_param("fc.weight", z)
  assert(m:param("fc.weight")[1] == 0)
  H.raises(function() m:set_param("fc.weight", qlab.zeros({16, 10})) end, "expected f32 (10,16)")
  H.raises(function() m:param("nope.weight") end, "no parameter 'nope.weight'")
end)

H.test("seeded: same seed, same weights", function()
  qlab.seed(42); local a = resnet_mini():param("conv1.weight"):table()
  qlab.seed(42); local b = resnet_mini():param("conv1.weight"):table()
  for i = 1, #a do assert(a[i] == b[i]) end
end)

H.test("loader batches, limits, normalization", function()
  local sub = test:subset(1, 100)
  assert(#sub == 100)
  local ld = sub:loader{batch = 32}
  assert(#ld == 4 and ld:samples() == 100)
  assert(#sub:loader{batch = 32, drop_last = true} == 3)
  assert(#sub:loader{batch = 10, batches = 2} == 2)
  local n = 0
  for x, y in ld:iter() do
    n = n + 1
    assert(x:shape()[1] == y:shape()[1])
  end
  assert(n == 4)
  local x = sub:loader{batch = 4, mean = 0.5, std = 0.5}:next()
  for _, v in ipairs(x:table()) do assert(v >= -1 and v <= 1) end
  H.raises(function() sub:loader{batch = 0} end, "batch must be >= 1")
  H.raises(function() sub:loader{bacth = 3} end, "unknown option 'bacth'")
end)

H.test("fashion_mnist: real data, bad split, missing directory", function()
  local info = test:info()
  assert(info.n == 10000 and info.h == 28 and info.w == 28 and info.c == 1 and info.classes == 10)
  assert(test:label(1) == 9)
  H.raises(function() qlab.data.fashion_mnist{split = "valid"} end, "valid")
  H.raises(function() qlab.data.fashion_mnist{split = "test", dir = tmp .. "/nope"} end, "nope")
end)

H.test("bad model files are errors, not crashes", function()
  local function write(name, bytes)
    local f = assert(io.open(tmp .. "/" .. name, "wb")); f:write(bytes); f:close()
    return tmp .. "/" .. name
  end
  H.raises(function() qlab.load(tmp .. "/missing.qlm") end, "missing.qlm")
  H.raises(function() qlab.load(write("empty.qlm", "")) end, "empty.qlm")
  H.raises(function() qlab.load(write("garbage.qlm", string.rep("\255", 64))) end, "garbage.qlm")
  local m = resnet_mini()
  m:save(tmp .. "/good.qlm")
  local good = assert(io.open(tmp .. "/good.qlm", "rb")):read("a")
  for _, cut in ipairs{7, 8, 100, #good // 2, #good - 1} do
    H.raises(function() qlab.load(write("cut.qlm", good:sub(1, cut))) end, "cut.qlm")
  end
end)

H.test("wrong input shape and argument types", function()
  local m = resnet_mini()
  H.raises(function() m:forward(qlab.zeros({2, 27, 28, 1})) end, "28")
  H.raises(function() m:forward("x") end, "qlab.Tensor expected")
  H.raises(function() qlab.evaluate(m, m) end, "qlab.Loader expected")
  H.raises(function() qlab.load(12) end, "")
  H.raises(function() qlab.nn.graph{input = {0, 3}} end, "positive integers")
  local b = qlab.nn.graph{input = {8}}
  H.raises(function() b:node("warp", "w", b:input()) end, "unknown op 'warp'")
  b:linear("fc", b:input(), {out = 4})
  H.raises(function() b:linear("fc", b:input(), {out = 4}) end, "fc")
end)

H.test("measuring: clock, time_forward, memory", function()
  local m = resnet_mini()
  local t0 = qlab.clock()
  local t = qlab.time_forward(m, {batch = 2, runs = 5, warmup = 1})
  assert(qlab.clock() > t0)
  assert(t.median > 0 and t.p95 >= t.median and t.images_per_s > 0 and t.runs == 5)
  local mem = qlab.memory()
  assert(mem.current > 0 and mem.peak >= mem.current and mem.rss_peak > 0)
end)

H.test("lstm model runs on image rows", function()
  local m = qlab.models.lstm{hidden = 16}
  local x = test:subset(1, 3):loader{batch = 3}:next()
  local y = m:forward(x)
  assert(table.concat(y:shape(), ",") == "3,10")
end)

H.test("command line: exit codes, --json, traceback", function()
  local bin = os.getenv("QLAB_TEST_BIN") or "./qlab"
  local function run(args)
    local ok, how, code = os.execute(bin .. " " .. args .. " >" .. tmp .. "/out.txt 2>&1")
    return code, assert(io.open(tmp .. "/out.txt")):read("a")
  end
  local f = assert(io.open(tmp .. "/s.lua", "w"))
  f:write('local qlab = require "qlab"\nqlab.record("x", {a = 1, b = {1, 2}})\nqlab.record("arg", arg[1])\n')
  f:close()
  local code = run("--json " .. tmp .. "/r.json --script " .. tmp .. "/s.lua hello")
  assert(code == 0, "exit " .. tostring(code))
  local j = assert(io.open(tmp .. "/r.json")):read("a")
  assert(j:find('"arg":%s*"hello"') and j:find('"a":%s*1'), j)
  f = assert(io.open(tmp .. "/e.lua", "w")); f:write("local function g() error('boom') end\ng()\n"); f:close()
  local c2, out = run("--script " .. tmp .. "/e.lua")
  assert(c2 == 1 and out:find("boom") and out:find("traceback"), out)
  assert((run("--frobnicate")) == 2)
  assert((run("--script")) == 2)
  assert((run("--script " .. tmp .. "/none.lua")) == 2)
  local c3, help = run("--help")
  assert(c3 == 0 and help:find("--script FILE"))
end)

H.done()
