-- Dynamic quantization and half-precision weights, as PyTorch's quantize_dynamic:
--   qlab.quantize_dynamic(model, {types = {"linear", "lstm"}, dtype = "s8", exclude = {"fc", "layer4%..*"}})
-- returns a NEW model (the argument is untouched) whose nodes of the given op
-- types hold
--   dtype = "s8":   s8 weights per output channel, activations quantized to u8
--                   per call from their own range (linear, lstm)
--   dtype = "f16":  IEEE half weights widened inside the kernel (linear, lstm, conv2d)
--   dtype = "bf16": bfloat16 weights (AVX-512 BF16 dot products where the CPU has them)
-- exclude: node names or Lua patterns (anchored) kept FP32, as in a prepare map;
-- {name = false} entries work too.
local core = require "qlab.core"

local M = {}

local applies = {s8 = {linear = true, lstm = true}, f16 = {linear = true, lstm = true, conv2d = true},
                 bf16 = {linear = true, lstm = true, conv2d = true}}
local aliases = {int8 = "s8", qint8 = "s8", float16 = "f16", half = "f16", bfloat16 = "bf16"}
local option_keys = {types = true, dtype = true, exclude = true}

local function fail(msg) error("quantize_dynamic: " .. msg, 3) end

local function check_types(types, dtype)
  if type(types) == "string" then types = {types} end
  if type(types) ~= "table" or #types == 0 then fail("types must be a list of op types such as {\"linear\", \"lstm\"}") end
  local set = {}
  for _, t in ipairs(types) do
    if not applies[dtype][t] then
      if applies.f16[t] then
        fail(string.format("dtype %s does not apply to %s (s8: linear, lstm; f16 and bf16: linear, lstm, conv2d)", dtype, t))
      end
      fail(string.format("unknown op type '%s'; valid types: linear, lstm, conv2d", tostring(t)))
    end
    set[t] = true
  end
  return set
end

-- exclude entries -> list of patterns; each must match some node (catches typos)
local function check_exclude(exclude, nodes)
  local pats = {}
  if exclude == nil then return pats end
  if type(exclude) == "string" then exclude = {exclude} end
  if type(exclude) ~= "table" then fail("exclude must be a list of node names or Lua patterns") end
  for k, v in pairs(exclude) do
    local p = type(k) == "number" and v or (v == false and k or nil)
    if type(p) ~= "string" then fail("exclude must hold node names or Lua patterns (or name = false)") end
    local ok, hit = pcall(function()
      for _, n in ipairs(nodes) do if n.name == p or n.name:match("^" .. p .. "$") then return true end end
      return false
    end)
    if not ok or not hit then fail("exclude: '" .. p .. "' matches no node name or Lua pattern") end
    pats[#pats + 1] = p
  end
  return pats
end

function M.quantize_dynamic(model, opts)
  require("qlab.check").model(model, "quantize_dynamic")
  opts = opts or {}
  if type(opts) ~= "table" then fail("give options {types = {...}, dtype = \"s8\" | \"f16\" | \"bf16\", exclude = {...}}") end
  for k in pairs(opts) do
    if not option_keys[k] then fail("unknown option '" .. tostring(k) .. "' (types, dtype, exclude)") end
  end
  local dtype = opts.dtype or "s8"
  dtype = aliases[dtype] or dtype
  if not applies[dtype] then fail("unknown dtype '" .. tostring(opts.dtype) .. "'; valid dtypes: s8, f16, bf16") end
  local types = check_types(opts.types or {"linear", "lstm"}, dtype)
  local nodes = model:nodes()
  local exclude = check_exclude(opts.exclude, nodes)
  local names = {}
  for _, n in ipairs(nodes) do
    local keep = not types[n.op]
    for _, p in ipairs(exclude) do
      if n.name == p or n.name:match("^" .. p .. "$") then keep = true; break end
    end
    if not keep then names[#names + 1] = n.name end
  end
  return core._quantize_dynamic(model, names, dtype)
end

return M
