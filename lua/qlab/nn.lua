-- Graph-builder sugar over the C Builder: one method per op.
--   local b = qlab.nn.graph{input = {28, 28, 1}}      -- {H,W,C}, {T,F} or {F}
--   local x = b:conv2d("conv1", b:input(), {out = 64, kernel = 7, stride = 2, padding = 3, bias = false})
--   x = b:relu("relu", b:batchnorm2d("bn1", x))
--   local model = b:build(x)
-- Node handles are integers (names work too).
local core = require "qlab.core"
local nn = {}

nn.graph = core.nn.graph
local B = debug.getregistry()["qlab.Builder"].__index

-- b:<op>(name, x, opts): errors name the op the user called, not the node() below it
local function unary(op)
  return function(self, name, x, opts)
    local ok, r = pcall(B.node, self, op, name, x, opts)
    if ok then return r end
    r = tostring(r):gsub("^[^:]*:%d+: ", ""):gsub("to 'node'", "to '" .. op .. "'")
    error(r:find(op, 1, true) and r or op .. ": " .. r, 2)
  end
end

for _, op in ipairs{"conv2d", "batchnorm2d", "relu", "relu6", "maxpool2d", "avgpool2d",
                    "global_avgpool", "linear", "flatten", "lstm", "seq_last"} do
  B[op] = unary(op)
end

local add = unary("add")
function B:add(name, a, b) return add(self, name, {a, b}) end

-- conv -> batchnorm -> relu (or relu6 with act = "relu6", none with act = false),
-- named "<conv>", "<bn>", "<act>" as torchvision names them.
function B:conv_bn(conv, bn, x, opts, act, actname)
  if type(conv) ~= "string" or type(bn) ~= "string" or type(opts) ~= "table" then
    error("conv_bn: give (conv name, bn name, input, conv options [, act [, act name]])", 2)
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if o.bias == nil then o.bias = false end
  x = self:batchnorm2d(bn, self:conv2d(conv, x, o))
  if act ~= false then x = self:node(act or "relu", actname or (bn .. ".relu"), x) end
  return x
end

return nn
