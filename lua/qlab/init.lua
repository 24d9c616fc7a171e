-- qlab: the Lua library. The C engine comes in as qlab.core; this file adds
-- the Lua-side conveniences (graph-builder sugar, the model zoo, helpers).
local core = require "qlab.core"

local qlab = {}
for k, v in pairs(core) do qlab[k] = v end

qlab.nn = require "qlab.nn"
qlab.train = require("qlab.train").train

local quant = require "qlab.quant"
qlab.qconfig = quant.qconfig
qlab.ptq = quant.ptq
qlab.quantize_dynamic = require("qlab.dynamic").quantize_dynamic
local Model = debug.getregistry()["qlab.Model"]
Model.__index.prepare = quant.prepare
Model.__index.prepare_qat = quant.prepare_qat
Model.__index.describe = quant.describe
Model.__tostring = quant.describe

local sens = require "qlab.sensitivity"
qlab.compare = sens.compare
qlab.sensitivity = sens.sensitivity
qlab.mixed_precision = sens.mixed_precision
qlab.bench = require("qlab.bench").bench
qlab.report = require("qlab.report").report

-- Model zoo: qlab.models.resnet18{...} etc., loaded on first use.
qlab.models = setmetatable({}, {
  __index = function(t, name)
    local ok, mod = pcall(require, "qlab.models." .. name)
    if not ok then
      if tostring(mod):find("module 'qlab.models." .. name .. "' not found", 1, true) then
        error("qlab.models: no model named '" .. tostring(name) .. "'", 2)
      end
      error(mod, 2)
    end
    rawset(t, name, mod)
    return mod
  end,
})

-- The methods table of a userdata class, so Lua code can add methods.
function qlab.methods(class)
  local mt = type(class) == "string" and debug.getregistry()["qlab." .. class]
  if type(mt) ~= "table" then
    error("methods: give a class name (Model, Tensor, Dataset, Loader, Observer, Optimizer, Builder), not "
          .. tostring(class), 2)
  end
  return type(mt.__index) == "table" and mt.__index or mt.methods   -- Tensor indexes elements too
end

-- Prints a model's node table (name, op, output shape, params, precision).
function qlab.summary(model, out)
  out = out or io.stdout
  out:write(string.format("%-28s %-15s %-16s %10s  %s\n", "node", "op", "shape", "params", "precision"))
  local total = 0
  for _, n in ipairs(model:nodes()) do
    out:write(string.format("%-28s %-15s %-16s %10d  %s\n", n.name, n.op,
      "(" .. table.concat(n.shape, ",") .. ")", n.params, n.precision))
    total = total + n.params
  end
  out:write(string.format("%d parameters, %.2f MB\n", total, model:size_bytes() / 1e6))
end

package.loaded.qlab = qlab
return qlab
