-- Argument checks for the library's Lua functions, so a wrong argument is an
-- error naming the function (as the C functions' are), not a stray "attempt
-- to index" from deep inside.
local M = {}
local registry = debug.getregistry()

-- x must be a live object of class ("Model", "Loader", ...); level as error()'s
function M.object(x, class, fname, argn, level)
  local what = class:lower()
  if getmetatable(x) ~= registry["qlab." .. class] then
    local got = getmetatable(x) and getmetatable(x).__name or type(x)
    error(string.format("%s: argument #%d must be a %s, got %s", fname, argn, what, got), (level or 2) + 1)
  end
  if not pcall(tostring, x) or tostring(x):find("(freed)", 1, true) then
    error(string.format("%s: argument #%d is a freed %s", fname, argn, what), (level or 2) + 1)
  end
  return x
end

function M.model(x, fname, argn, level) return M.object(x, "Model", fname, argn or 1, (level or 2) + 1) end

return M
