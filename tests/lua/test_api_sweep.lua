-- The Lua API sweep: every public function of the library tables and every
-- method of every object class, enumerated (so new ones are covered without
-- editing this file), called with nil, wrong types, NaN, huge and negative
-- numbers, empty tables, freed objects and objects of the wrong class. Each
-- call either returns or raises a Lua error whose message names the
-- function; a crash ends the file without its summary line (a failure).
-- Calls go through generated code (`qlab.data.idx(v)`, `o:forward(v)`), so
-- error messages name functions as they do in a user's script.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"
qlab.seed(0)
local dir = H.tmpdir()
local path = dir .. "/sweep"   -- the string argument: a path where writing is harmless

-- calls that would take the run elsewhere than the sweep means to go
local skip = {
  ["qlab.train"] = "trains for real when its arguments happen to fit",
  ["qlab.record"] = "records into --json output; covered in test_foundation",
  ["qlab.summary"] = "prints a model; harmless, and covered elsewhere",
}

local ds = qlab.data.fashion_mnist{split = "test"}:subset(1, 32)
local function objects()
  local m = qlab.load("data/models/small_cnn_fmnist.qlm")
  return {model = m, tensor = qlab.tensor({1, 2, 3, 4}, {2, 2}), dataset = ds:subset(1, 16),
          loader = ds:loader{batch = 16}, observer = qlab.observer.minmax{},
          builder = qlab.nn.graph{input = {4}}, optimizer = qlab.optim.sgd{lr = 0.1},
          qconfig = qlab.qconfig.default()}
end
local live, dead = objects(), objects()
for k, v in pairs(dead) do
  if type(v) == "userdata" and k ~= "builder" then v:free() else dead[k] = nil end
end
-- numbers are paths too (Lua converts them): note which such files exist now, to remove only ours
local numbers = {0 / 0, 1e300, -1, 0, math.maxinteger, math.mininteger}
local existed = {}
for _, v in ipairs(numbers) do
  local f = io.open(tostring(v), "rb")
  existed[tostring(v)] = f ~= nil
  if f then f:close() end
end
local values = {{"nil", nil}, {"nan", 0 / 0}, {"huge", 1e300}, {"-1", -1}, {"0", 0}, {"maxint", math.maxinteger},
                {"mininteger", math.mininteger}, {"string", path}, {"{}", {}}, {"true", true},
                {"function", function() end}}
for _, k in ipairs{"model", "tensor", "dataset", "loader", "observer", "builder", "optimizer", "qconfig"} do
  values[#values + 1] = {k, live[k]}
  if dead[k] then values[#values + 1] = {"freed " .. k, dead[k]} end
end

-- a call as a script would write it, so the error names the function
local function caller(expr)
  return assert(load("local qlab, o, v = ...; local r = " .. expr .. "; return r", "=sweep", "t"))
end

local calls, unnamed, crashed = 0, {}, {}
local function try(label, fname, f, o, v)
  calls = calls + 1
  local ok, err = pcall(f, qlab, o, v)
  if ok then return end
  if type(err) ~= "string" then crashed[#crashed + 1] = label .. ": error is a " .. type(err); return end
  if not err:find(fname, 1, true) then unnamed[#unnamed + 1] = label .. ": " .. err:gsub("\n.*", "") end
end

local function library()
  local fns = {}
  local function walk(prefix, t, depth)
    for k, v in pairs(t) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" then
        local name = prefix .. "." .. k
        if type(v) == "function" and not skip[name] then fns[#fns + 1] = name
        elseif type(v) == "table" and depth < 2 and k ~= "models" and getmetatable(v) == nil then
          walk(name, v, depth + 1)
        end
      end
    end
    local mt = getmetatable(t)   -- callable tables such as qlab.qconfig
    if mt and mt.__call then fns[#fns + 1] = prefix end
  end
  walk("qlab", qlab, 0)
  for _, z in ipairs{"small_cnn", "resnet18", "mobilenet_v2", "lstm"} do fns[#fns + 1] = "qlab.models." .. z end
  table.sort(fns)
  return fns
end

H.test("every library function, every bad argument: a named error or a result, no crash", function()
  local fns = library()
  assert(#fns > 40, "enumerated only " .. #fns .. " functions")
  for _, name in ipairs(fns) do
    local short = name:match("([%w_]+)$")
    try(name .. "()", short, caller(name .. "()"))
    local one = caller(name .. "(v)")
    for _, v in ipairs(values) do try(name .. "(" .. v[1] .. ")", short, one, nil, v[2]) end
  end
  assert(#crashed == 0, table.concat(crashed, "\n"))
  assert(#unnamed == 0, #unnamed .. " errors do not name their function:\n" .. table.concat(unnamed, "\n"))
end)

H.test("every method of every object, with bad arguments and on the wrong object", function()
  local n = 0
  for cls, obj in pairs(live) do
    local mt = getmetatable(obj)
    local idx = mt and (type(mt.__index) == "table" and mt.__index or mt.methods)
    assert(type(idx) == "table", cls .. ": methods not in a table")
    for mname, m in pairs(idx) do
      if type(m) == "function" and mname:sub(1, 1) ~= "_" and mname ~= "free" and mname ~= "train_step" then
        n = n + 1
        local one = caller("o:" .. mname .. "(v)")
        for _, v in ipairs(values) do try(cls .. ":" .. mname .. "(" .. v[1] .. ")", mname, one, obj, v[2]) end
        local self_is = caller("o." .. mname .. "(v)")   -- o.method(wrong self)
        for other, o in pairs(dead) do   -- a method called on an object of another class, or a freed one
          try(cls .. "." .. mname .. "(freed " .. other .. ")", mname, self_is, obj, o)
        end
        for other, o in pairs(live) do
          if other ~= cls then try(cls .. "." .. mname .. "(" .. other .. ")", mname, self_is, obj, o) end
        end
      end
    end
  end
  assert(n > 60, "enumerated only " .. n .. " methods")
  assert(#crashed == 0, table.concat(crashed, "\n"))
  assert(#unnamed == 0, #unnamed .. " errors do not name their method:\n" .. table.concat(unnamed, "\n"))
end)

for name, was in pairs(existed) do if not was then os.remove(name) end end
print(string.format("  %d calls", calls))
H.done()
