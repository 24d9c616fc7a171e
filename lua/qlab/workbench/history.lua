-- Console input history, kept in ~/.qlab_history ($HOME respected): one
-- entry a line, newlines of multi-line chunks stored as "\n" escapes.
-- h = history.new([path]); h:add(line); h:prev(current) / h:next() -> text
local M = {}
M.__index = M

local MAX = 1000

local function encode(s) return (s:gsub("\\", "\\\\"):gsub("\n", "\\n")) end
local function decode(s) return (s:gsub("\\(.)", function(c) return c == "n" and "\n" or c end)) end

function M.default_path()
  local home = os.getenv("HOME")
  if not home or home == "" then return nil end
  return home .. "/.qlab_history"
end

function M.new(path)
  local h = setmetatable({path = path, items = {}, pos = nil}, M)
  if path then
    local f = io.open(path, "r")
    if f then
      for line in f:lines() do if line ~= "" then h.items[#h.items + 1] = decode(line) end end
      f:close()
    end
    while #h.items > MAX do table.remove(h.items, 1) end
  end
  return h
end

function M:add(line)
  self.pos, self.saved = nil, nil
  if line:match("^%s*$") or self.items[#self.items] == line then return end
  self.items[#self.items + 1] = line
  if #self.items > MAX then table.remove(self.items, 1) end
  if self.path then
    local f = io.open(self.path, "a")
    if f then f:write(encode(line), "\n"); f:close() end
  end
end

-- older entry; `current` (the line being edited) comes back after the newest
function M:prev(current)
  if #self.items == 0 then return nil end
  if not self.pos then self.pos, self.saved = #self.items + 1, current end
  if self.pos > 1 then self.pos = self.pos - 1 end
  return self.items[self.pos]
end

function M:next()
  if not self.pos then return nil end
  self.pos = self.pos + 1
  if self.pos > #self.items then
    local s = self.saved
    self.pos, self.saved = nil, nil
    return s or ""
  end
  return self.items[self.pos]
end

return M
