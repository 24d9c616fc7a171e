-- The shipped baselines load and reach their recorded accuracy on the first
-- 2,000 test images (within 0.3 points), as data/models/baselines.lua says.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"

local f = assert(io.open("data/models/baselines.lua"), "data/models/baselines.lua missing")
local recorded = load("return " .. f:read("a"), "baselines", "t", {})()
f:close()
local sub = qlab.data.fashion_mnist{split = "test"}:subset(1, 2000)
local targets = {resnet18 = 92.0, mobilenet_v2 = 92.0, lstm = 87.0, small_cnn = 89.0}

for _, name in ipairs{"small_cnn", "lstm", "resnet18", "mobilenet_v2"} do
  local r = recorded[name]
  if r then
    H.test(name .. " reaches its recorded accuracy", function()
      local m = qlab.load("data/models/" .. name .. "_fmnist.qlm")
      local top1 = qlab.evaluate(m, sub:loader{batch = 250}).top1
      assert(math.abs(top1 - r.top1_subset2000) <= 0.3,
             string.format("%s: %.2f %% now, %.2f %% recorded", name, top1, r.top1_subset2000))
      assert(r.top1 >= targets[name], string.format("%s: recorded %.2f %% is below the %.1f %% target", name, r.top1, targets[name]))
    end)
  end
end

H.done()
