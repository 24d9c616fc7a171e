-- Values as the console shows them: strings quoted, tables pretty-printed to
-- a depth (keys sorted, arrays first, cycles marked), everything else by
-- tostring. pretty(v [, depth [, width]]) -> string (may hold newlines).
local M = {}

local function is_ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local function key_str(k)
  if is_ident(k) then return k end
  if type(k) == "string" then return string.format("[%q]", k) end
  return "[" .. tostring(k) .. "]"
end

local function scalar(v)
  local t = type(v)
  if t == "string" then return string.format("%q", v):gsub("\\\n", "\\n") end
  if t == "number" and math.type(v) == "float" then
    if v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%.1f", v) end
    return string.format("%.14g", v)
  end
  return tostring(v)
end

local function sorted_keys(t)
  local n = #t
  local keys = {}
  for k in pairs(t) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "string" or ta == "number" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return n, keys
end

function M.pretty(v, depth, width)
  depth = depth or 3
  width = width or 78
  local seen = {}
  local function go(x, d, indent)
    if type(x) ~= "table" then return scalar(x) end
    local mt = getmetatable(x)
    if mt and mt.__tostring then return tostring(x) end
    if seen[x] then return "<cycle " .. tostring(x) .. ">" end
    if d > depth then return "{...}" end
    seen[x] = true
    local n, keys = sorted_keys(x)
    if n == 0 and #keys == 0 then seen[x] = nil; return "{}" end
    local parts = {}
    for i = 1, n do parts[#parts + 1] = go(x[i], d + 1, indent .. "  ") end
    for _, k in ipairs(keys) do parts[#parts + 1] = key_str(k) .. " = " .. go(x[k], d + 1, indent .. "  ") end
    seen[x] = nil
    local one = "{" .. table.concat(parts, ", ") .. "}"
    if #one + #indent <= width and not one:find("\n") then return one end
    return "{\n" .. indent .. "  " .. table.concat(parts, ",\n" .. indent .. "  ") .. "\n" .. indent .. "}"
  end
  return go(v, 1, "")
end

-- Several values, tab-separated, as lua.c prints the results of an expression.
function M.values(...)
  local n = select("#", ...)
  local out = {}
  for i = 1, n do
    local v = select(i, ...)
    out[i] = type(v) == "string" and v or M.pretty(v)
  end
  return table.concat(out, "\t")
end

return M
