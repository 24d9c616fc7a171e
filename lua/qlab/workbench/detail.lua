-- The detail pane: everything known of the selected layer, with a small
-- histogram of its observer once calibrated. The live views (pane_*.lua)
-- take its place and the table's when one is shown.
local layers = require "qlab.workbench.layers"

local M = {}

function M:draw(app, r)
  local tui, g, S = app.tui, app.g, app.S
  for k = 0, r.h - 1 do tui.text(r.y + k, r.x, g.v, "frame") end
  local x, w = r.x + 2, r.w - 3
  local row = app:selected()
  local focused = app.focus == "detail"
  tui.text(r.y, x, row and (" " .. row.name .. " ") or " detail ", focused and "title_focus" or "title", w)
  if not row then return end
  local lines = {}
  local function add(k, v, style) lines[#lines + 1] = {k, tostring(v), style} end
  add("op", row.op)
  add("shape", row.shape)
  add("params", string.format("%d", row.params or 0))
  add("MACs", layers.human(row.macs))
  if row.plan then
    local p = app.wb.planned(row.name)
    add("plan", row.plan .. (row.own and " (own)" or " (default)") .. (row.na and " n/a" or ""),
        layers.prec_style[row.plan])
    add("map", app.wb.map_entry(row.name), "dim")
    if row.obs then
      add("observer", row.obs)
      if row.base_op == "conv2d" or row.base_op == "linear" then add("weights", (p.gran or ""):gsub("_", "-")) end
    end
  else
    add("plan", "- (inserted by convert)", "dim")
  end
  add("now", row.actual, layers.prec_style[row.actual])
  add("range", layers.fmt_range(row.range))
  if row.qparams then add("scale/zp", string.format("%.4g / %d", row.qparams.scale, row.qparams.zero_point)) end
  add("SQNR", row.sqnr and (layers.fmt_db(row.sqnr) .. " dB") or "- (n: compare)")
  add("drop", row.drop and string.format("%.2f points", row.drop) or "- (i: sensitivity)")
  add("time", row.share and string.format("%.1f %% of batch-1", 100 * row.share) or "- (t: profile)")
  if row.inputs and #row.inputs > 0 then add("inputs", table.concat(row.inputs, ", "), "dim") end
  self.top = self.top or 0
  local y = r.y + 1
  for i = 1 + self.top, #lines do
    if y >= r.y + r.h then break end
    local l = lines[i]
    tui.text(y, x, l[1], "dim", 9)
    tui.text(y, x + 9, l[2], l[3] or "normal", w - 9)
    y = y + 1
  end
  -- the observer's histogram, when there is one
  local hist = app.wb.histogram and app.wb.histogram(row.name, w) or nil
  if hist and y + 3 < r.y + r.h then
    y = y + 1
    tui.text(y, x, "activations seen", "dim", w)
    local bars = app.g.bar == "█" and {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"} or {" ", ".", "o", "O", "#"}
    local max = 0
    for _, c in ipairs(hist.counts) do if c > max then max = c end end
    local s = {}
    for i, c in ipairs(hist.counts) do
      local v = max > 0 and c / max or 0
      if v > 0 then v = math.max(v, 0.15) end
      s[i] = bars[1 + math.floor(v * (#bars - 1) + 0.5)]
    end
    tui.text(y + 1, x, table.concat(s), "ok", w)
    tui.text(y + 2, x, string.format("%.3g", hist.lo), "dim", w // 2)
    local hi = string.format("%.3g", hist.hi)
    tui.text(y + 2, x + w - #hi, hi, "dim", #hi)
  end
end

function M:on_key(app, key)
  if key == "down" or key == "j" then self.top = (self.top or 0) + 1 return app.REDRAW end
  if key == "up" or key == "k" then self.top = math.max(0, (self.top or 0) - 1) return app.REDRAW end
  return nil
end

return M
