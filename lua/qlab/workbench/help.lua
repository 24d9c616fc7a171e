-- The help overlay: every key of the key table (so the list is complete by
-- construction), the console's keys and the mouse. j / k / PgUp / PgDn
-- scroll it when it does not fit, any other key closes it.
local keys = require "qlab.workbench.keys"

local M = {}

local function lines_of()
  local out, group = {}, nil
  for _, e in ipairs(keys.list) do
    if e.group ~= group then
      group = e.group
      if #out > 0 then out[#out + 1] = {"", ""} end
      out[#out + 1] = {group, "", "title"}
    end
    out[#out + 1] = {table.concat(e.keys, " "), e.help}
  end
  out[#out + 1] = {"", ""}
  out[#out + 1] = {"console", "", "title"}
  for _, c in ipairs(keys.console) do out[#out + 1] = {c[1], c[2]} end
  out[#out + 1] = {"", ""}
  out[#out + 1] = {keys.mouse, ""}
  return out
end

function M:draw(app, r)
  local tui, g = app.tui, app.g
  local items = lines_of()
  local w = math.min(r.w - 4, 100)
  local h = math.min(r.h - 2, #items + 4)
  local y0, x0 = r.y + (r.h - h) // 2, r.x + (r.w - w) // 2
  local inner = h - 4
  local maxtop = math.max(0, #items - inner)
  app.help_top = math.max(0, math.min(app.help_top or 0, maxtop))
  tui.text(y0, x0, g.tl .. g.h:rep(w - 2) .. g.tr, "frame")
  local title = " qlab workbench: keys "
  tui.text(y0, x0 + 2, title, "title_focus")
  for k = 1, h - 2 do
    tui.text(y0 + k, x0, g.v, "frame")
    tui.text(y0 + k, x0 + 1, "", "overlay", w - 2, true)
    tui.text(y0 + k, x0 + w - 1, g.v, "frame")
  end
  tui.text(y0 + h - 1, x0, g.bl .. g.h:rep(w - 2) .. g.br, "frame")
  for k = 1, inner do
    local it = items[app.help_top + k]
    if not it then break end
    local y = y0 + k
    if it[3] then tui.text(y, x0 + 2, it[1], it[3], w - 4)
    else
      tui.text(y, x0 + 2, it[1], "key", 20)
      tui.text(y, x0 + 23, it[2], "overlay", w - 25)
    end
  end
  local foot = maxtop > 0 and string.format("j/k PgUp/PgDn scroll (%d-%d of %d), any other key closes",
    app.help_top + 1, math.min(#items, app.help_top + inner), #items) or "any key closes"
  tui.text(y0 + h - 2, x0 + 2, foot, "dim", w - 4)
end

function M:on_key(app, key)
  local step = ({j = 1, down = 1, k = -1, up = -1, pgdn = 10, pgup = -10})[key]
  if step then app.help_top = (app.help_top or 0) + step return app.REDRAW end
  app.overlay = nil
  return app.REDRAW
end

return M
