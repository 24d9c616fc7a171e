-- QConfigs and the prepare map.
--   qlab.qconfig{activation = Observer, weight = Observer}   (a missing one: default()'s)
--   qlab.qconfig.default()    -- u8 affine histogram activations on the full 8 bits, s8 symmetric
--                               per-channel minmax weights: accuracy first, exact on every ISA
--   qlab.qconfig.per_tensor() -- the same with one weight scale per tensor
--   qlab.qconfig.w4a8()       -- 4-bit per-channel weights, the same 8-bit activations
--   qlab.qconfig.fast_7bit()  -- default() with 7-bit activations (reduce_range, codes 0..127), as
--                               PyTorch's fbgemm default: on AVX2 CPUs without VNNI the INT8 GEMM
--                               then multiplies with maddubs at twice the rate; it costs accuracy
--                               on models less converged than ours (VNNI runs 8 bits at full speed)
--   qlab.qconfig.f16(), qlab.qconfig.bf16()   -- {dtype = "f16"}: conv / linear / lstm weights stored
--                               half, f32 activations, no observers (FP32, FP16 and INT8 in one model)
--   model:prepare(map)        -- map: a QConfig (everything) or a table:
--     default = qc                        every quantizable node
--     ["op:linear"] = qc | false          by op type ("linear" also works when no node is named so)
--     ["layer4.1.conv2"] = qc | false     by node name
--     ["layer4%..*"] = false              by Lua pattern (anchored), longer patterns win
--   false keeps a node FP32. Keys matching no node and no op are errors (typos).
local core = require "qlab.core"

local M = {}
local QConfig = {}
QConfig.__index = QConfig
QConfig.__name = "qlab.QConfig"

function QConfig:__tostring()
  if self.dtype then return "QConfig(" .. self.dtype .. " weights, f32 activations)" end
  local a, w = self.activation:options(), self.weight:options()
  local function width(o)   -- reduce_range drops one bit of codes
    return o.reduce_range and string.format("%d-bit (reduce_range)", o.bits - 1) or string.format("%d-bit", o.bits)
  end
  return string.format("QConfig(activation = %s %s %s, weight = %s %s %s %s)",
    a.kind, a.dtype, width(a), w.kind, w.dtype, width(w), w.per_channel and "per-channel" or "per-tensor")
end

local function is_observer(x) return getmetatable(x) == debug.getregistry()["qlab.Observer"] end

local function new_qconfig(t)
  if type(t) ~= "table" then error("qconfig: give {activation = Observer, weight = Observer}", 3) end
  for k in pairs(t) do
    if k ~= "activation" and k ~= "weight" and k ~= "dtype" then error("qconfig: unknown field '" .. tostring(k) .. "'", 3) end
  end
  if t.dtype == "f16" or t.dtype == "bf16" then   -- half weights: nothing to observe
    if t.activation or t.weight then error("qconfig: a " .. t.dtype .. " qconfig takes no observers", 3) end
    return setmetatable({dtype = t.dtype}, QConfig)
  elseif t.dtype ~= nil and t.dtype ~= "int8" then
    error("qconfig: dtype must be \"int8\", \"f16\" or \"bf16\", not " .. tostring(t.dtype), 3)
  end
  -- missing observers: those of qconfig.default()
  local act = t.activation or M.default_activation()
  local w = t.weight or core.observer.minmax{dtype = "s8", symmetric = true, per_channel = true}
  if not is_observer(act) or not is_observer(w) then error("qconfig: activation and weight must be observers", 3) end
  return setmetatable({activation = act, weight = w}, QConfig)
end

M.qconfig = setmetatable({}, {__call = function(_, t) return new_qconfig(t) end})

-- The activation observer of the ready-made PTQ qconfigs: 8-bit u8 histogram.
function M.default_activation() return core.observer.histogram{bins = 2048} end

function M.qconfig.default()
  return new_qconfig{activation = M.default_activation(),
                     weight = core.observer.minmax{dtype = "s8", symmetric = true, per_channel = true}}
end

function M.qconfig.fast_7bit()
  return new_qconfig{activation = core.observer.histogram{bins = 2048, reduce_range = true},
                     weight = core.observer.minmax{dtype = "s8", symmetric = true, per_channel = true}}
end

function M.qconfig.per_tensor()
  return new_qconfig{activation = M.default_activation(),
                     weight = core.observer.minmax{dtype = "s8", symmetric = true}}
end

function M.qconfig.w4a8()
  return new_qconfig{activation = M.default_activation(),
                     weight = core.observer.minmax{dtype = "s8", symmetric = true, per_channel = true, bits = 4}}
end

function M.qconfig.f16() return new_qconfig{dtype = "f16"} end
function M.qconfig.bf16() return new_qconfig{dtype = "bf16"} end

-- QAT: moving-average min/max activations (u8 affine) and per-channel
-- symmetric moving-average weights, as PyTorch's default QAT qconfig.
function M.qconfig.default_qat()
  return new_qconfig{activation = core.observer.moving_average{},
                     weight = core.observer.moving_average{dtype = "s8", symmetric = true, per_channel = true}}
end

function M.qconfig.w4a8_qat()
  return new_qconfig{activation = core.observer.moving_average{},
                     weight = core.observer.moving_average{dtype = "s8", symmetric = true, per_channel = true, bits = 4}}
end

function M.is_qconfig(x) return getmetatable(x) == QConfig end

-- o:compare_ranges([{percentiles = {99.9, 99.99}}]): calibrate once, compare every range method.
-- For the statistics o collected (a per-tensor observer), the range each method would choose and
-- what it costs on the same histogram: {{method, lo, hi, mse, sqnr_db, chosen}, ...}, in the
-- order minmax, percentile(s), entropy, mse, histogram; `chosen` marks o's own method.
local Observer = debug.getregistry()["qlab.Observer"].__index
function Observer:compare_ranges(opts)
  require("qlab.check").object(self, "Observer", "compare_ranges", 1)
  opts = opts or {}
  if type(opts) ~= "table" then error("compare_ranges: give {percentiles = {...}}", 2) end
  local own = self:options()   -- own.percentile is a float32 (99.99 reads 99.98999786)
  local methods = {{"minmax", "minmax"}}
  for _, p in ipairs(opts.percentiles or {99.9, 99.99}) do
    methods[#methods + 1] = {string.format("percentile %g", p), "percentile", p}
  end
  for _, k in ipairs{"entropy", "mse", "histogram"} do methods[#methods + 1] = {k, k} end
  local out = {}
  for _, m in ipairs(methods) do
    local ok, o = pcall(self.as, self, m[2], m[3] and {percentile = m[3]} or nil)
    if not ok then error("compare_ranges: " .. tostring(o):gsub("^[^:]*:%d+: ", ""), 2) end
    local lo, hi = o:range()
    o:free()
    local mse, sqnr = self:range_error(lo, hi)
    out[#out + 1] = {method = m[1], kind = m[2], lo = lo, hi = hi, mse = mse, sqnr_db = sqnr,
                     chosen = m[2] == own.kind and (m[3] == nil or math.abs(m[3] - own.percentile) < 1e-4)}
  end
  return out
end

local op_names = {conv2d = 1, linear = 1, add = 1, maxpool2d = 1, global_avgpool = 1, relu = 1, relu6 = 1,
                  flatten = 1, batchnorm2d = 1, avgpool2d = 1, lstm = 1, seq_last = 1, conv_bn = 1}

-- node name -> qconfig or false, from a map (see the header)
function M.resolve(model, map, fname)
  fname = fname or "prepare"
  if M.is_qconfig(map) then map = {default = map} end
  if type(map) ~= "table" then error(fname .. ": give a QConfig or a map {default = qc, [name] = qc | false}", 3) end
  local nodes = model:nodes()
  local byname = {}
  for _, n in ipairs(nodes) do byname[n.name] = n end
  local exact, patterns, ops, default = {}, {}, {}, nil
  for k, v in pairs(map) do
    if type(k) ~= "string" then error(fname .. ": map keys must be strings", 3) end
    if v ~= false and not M.is_qconfig(v) then
      error(fname .. ": map['" .. k .. "'] must be a QConfig or false", 3)
    end
    if k == "default" then default = v
    elseif byname[k] then exact[k] = v
    elseif k:sub(1, 3) == "op:" and op_names[k:sub(4)] then ops[k:sub(4)] = v
    elseif op_names[k] then ops[k] = v
    else
      local ok, matched = pcall(function()
        for name in pairs(byname) do if name:match("^" .. k .. "$") then return true end end
        return false
      end)
      if not ok or not matched then
        error(fname .. ": '" .. k .. "' matches no node name, Lua pattern or op type", 3)
      end
      patterns[#patterns + 1] = {k, v}
    end
  end
  table.sort(patterns, function(a, b) return #a[1] > #b[1] or (#a[1] == #b[1] and a[1] < b[1]) end)
  local out = {}
  for _, n in ipairs(nodes) do
    local qc = exact[n.name]
    if qc == nil then
      for _, p in ipairs(patterns) do
        if n.name:match("^" .. p[1] .. "$") then qc = p[2]; break end
      end
    end
    if qc == nil then qc = ops[n.op] end
    if qc == nil then qc = default end
    out[n.name] = qc or false
  end
  return out
end

-- model:prepare(map): plans and observers; returns the model
function M.prepare(model, map)
  local resolved = M.resolve(model, map)
  local plans = {}
  for name, qc in pairs(resolved) do
    if qc then plans[name] = qc.dtype and {mode = qc.dtype} or {act = qc.activation, weight = qc.weight} end
  end
  return model:_prepare(plans)
end

-- qlab.ptq(fp32, map, calib): static PTQ in one call, the model untouched: a
-- fused clone prepared with map (a QConfig or a prepare map), calibrated on
-- the loader calib, converted.
function M.ptq(fp32, map, calib)
  local check = require "qlab.check"
  check.model(fp32, "ptq")
  if calib == nil then error("ptq: give (model, qconfig or map, calibration loader)", 2) end
  check.object(calib, "Loader", "ptq", 3)
  local m = fp32:clone()
  m:fuse()
  M.prepare(m, map)
  core.calibrate(m, calib)
  return m:convert()
end

-- model:prepare_qat(map): the same map, for quantization-aware training
function M.prepare_qat(model, map)
  local resolved = M.resolve(model, map, "prepare_qat")
  local plans = {}
  for name, qc in pairs(resolved) do
    if qc then plans[name] = {act = qc.activation, weight = qc.weight} end
  end
  return model:_prepare_qat(plans)
end

-- The node table with precisions and, when prepared, the plan.
function M.describe(model)
  if not pcall(model.num_params, model) then return "Model (freed)" end
  local lines = {}
  local prepared = model:is_prepared()
  local plan = prepared and model:plan() or nil
  lines[1] = string.format("%-26s %-15s %-14s %9s  %-7s%s", "node", "op", "shape", "params", "prec",
                           prepared and "  plan" or "")
  local total = 0
  for i, n in ipairs(model:nodes()) do
    local extra = ""
    if plan then
      local p = plan[i]
      extra = "  " .. p.mode .. (p.act and ("  act " .. p.act) or "") .. (p.weight and ("  w " .. p.weight) or "")
              .. (p.observed and "  [observer]" or "")
    end
    lines[#lines + 1] = string.format("%-26s %-15s %-14s %9d  %-7s%s", n.name, n.op,
      "(" .. table.concat(n.shape, ",") .. ")", n.params, n.precision, extra)
    total = total + n.params
  end
  lines[#lines + 1] = string.format("%d nodes, %d parameters, %.2f MB", #lines - 1, total, model:size_bytes() / 1e6)
  return table.concat(lines, "\n")
end

return M
