-- Tab completion of the console: globals, table fields and methods
-- (`m:pre` -> `m:prepare`), walking tables and metatables' __index tables
-- only (no __index function is ever called, so completing has no effects).
-- complete(line, cursor [, env]) -> new_line, new_cursor, candidates
local M = {}

local keywords = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
                  "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"}

-- the fields a value offers: its own (tables) and those of __index tables
local function fields(v, out, depth)
  depth = depth or 0
  if depth > 4 then return out end
  if type(v) == "table" then
    for k in pairs(v) do if type(k) == "string" then out[k] = out[k] or rawget(v, k) end end
  end
  local mt = getmetatable(v)
  if type(mt) == "table" then
    local idx = rawget(mt, "__index")
    if type(idx) == "table" and idx ~= v then fields(idx, out, depth + 1) end
  elseif type(v) == "string" then
    fields(string, out, depth + 1)
  end
  return out
end

local function lookup(v, k)
  if type(v) == "table" then
    local r = rawget(v, k)
    if r ~= nil then return r end
  end
  local mt = getmetatable(v)
  if type(mt) == "table" and type(rawget(mt, "__index")) == "table" then return lookup(rawget(mt, "__index"), k) end
  if type(v) == "string" then return string[k] end
  return nil
end

local function common_prefix(list)
  local p = list[1] or ""
  for i = 2, #list do
    local s = list[i]
    local j = 0
    while j < #p and j < #s and p:byte(j + 1) == s:byte(j + 1) do j = j + 1 end
    p = p:sub(1, j)
  end
  return p
end

function M.candidates(expr, env)
  env = env or _G
  local path, sep, part = expr:match("^(.-)([%.:])([%w_]*)$")
  local pool, methods
  if path and path ~= "" then
    local v = env
    for name in path:gmatch("[^%.:]+") do
      if not name:match("^[%a_][%w_]*$") then return {} , part end
      v = lookup(v, name)
      if v == nil then return {}, part end
    end
    pool = fields(v, {})
    methods = sep == ":"
  else
    part = expr
    pool = fields(env, {})
    for _, k in ipairs(keywords) do pool[k] = pool[k] or true end
  end
  local out = {}
  for k, val in pairs(pool) do
    if k:sub(1, #part) == part and k:match("^[%a_][%w_]*$") and (not methods or type(val) == "function") then
      out[#out + 1] = k
    end
  end
  table.sort(out)
  return out, part
end

function M.complete(line, cursor, env)
  cursor = cursor or #line
  local before, after = line:sub(1, cursor), line:sub(cursor + 1)
  local expr = before:match("[%a_][%w_%.:]*$") or ""
  if expr == "" and before:match("[%.:]$") then return line, cursor, {} end
  local cands, part = M.candidates(expr, env)
  if #cands == 0 then return line, cursor, cands end
  local add = common_prefix(cands):sub(#part + 1)
  if #cands == 1 then
    local v = nil
    local path = expr:match("^(.-)[%.:][%w_]*$")
    if not path or path == "" then v = (env or _G)[cands[1]] end
    if v == nil and path and path ~= "" then
      local obj = env or _G
      for name in path:gmatch("[^%.:]+") do obj = obj and lookup(obj, name) end
      v = obj and lookup(obj, cands[1])
    end
    if type(v) == "function" then add = add .. "(" end
  end
  return before .. add .. after, cursor + #add, cands
end

return M
