-- The calibration pane (key H, and by itself while a calibration runs):
-- the selected layer's activation histogram at the pane's full width,
-- redrawn every few batches during calibration, linear or log scale (L);
-- observed min / max (▲) and the range the layer's observer chooses ([ ])
-- marked, the bins it clips drawn in red; beside it, for the same
-- statistics, the range every method would choose and its error
-- (o:compare_ranges through wb.ranges). `o` switches the layer's observer:
-- the range is re-derived from these statistics, nothing is recalibrated.
local charts = require "qlab.workbench.charts"

local M = {scale = "linear"}

local function fmt(v) return string.format("%.4g", v) end

-- the data, recomputed when the state changed or calibration went on
-- (the comparison table at most twice a second during a job)
function M:data(app, name, bins)
  local job = app.job
  local tick = job and job.inner and job.inner.done or -1
  local key = table.concat({app.S.version, name, bins, tick}, "\0")
  local c = self.cache
  if c and c.key == key then return c.v end
  local t = require("qlab").clock()
  local want_table = not job or not c or c.name ~= name or t - (c.t or 0) > 0.5
  local v = app.wb.ranges(name, bins, {table = want_table})
  if v and not want_table and c and c.v then v.table = c.v.table end
  self.cache = {key = key, v = v, name = name, t = want_table and t or c.t}
  return v
end

local function table_w(w) return w >= 96 and 46 or 38 end

function M:draw(app, r)
  local tui, g, S = app.tui, app.g, app.S
  local row = app:selected()
  local name = row and row.name or "-"
  local tw = table_w(r.w)
  local cw = r.w - tw - 2
  local v = row and self:data(app, name, cw) or nil
  local title = string.format(" calibration %s %s ", g.dot, name)
  local x = tui.text(r.y, r.x, title, "title_focus")
  local info = {}
  if v then info[#info + 1] = string.format("%s observer, %d batches seen", v.kind, v.count) end
  info[#info + 1] = self.scale == "log" and "log scale" or "linear scale"
  info[#info + 1] = "up/dn layer  o observer  L log  c calibrate  H back"
  tui.text(r.y, r.x + x, " " .. table.concat(info, " " .. g.dot .. " "), "dim", r.w - x)
  if not v then
    local why
    if not row then why = "no layer selected"
    elseif not row.plan or (row.plan ~= "int8" and row.plan ~= "w4a8") then
      why = string.format("%s is not planned in INT8 (plan %s): 4 sets INT8, then p prepares, c calibrates", name,
                          tostring(row.plan))
    elseif S.phase == "fp32" then why = "not prepared: p prepares, then c calibrates (the histogram fills as batches go in)"
    elseif S.phase == "converted" then why = "m is converted: its observers are gone (p prepares again)"
    else why = string.format("no statistics yet for %s: c calibrates", name) end
    tui.text(r.y + 2, r.x + 2, why, "warn", r.w - 4)
    return
  end
  -- the histogram
  local bh = r.h - 5
  local lo_c, hi_c = charts.col(v.lo, v.hlo, v.hhi, cw), charts.col(v.hi, v.hlo, v.hhi, cw)
  charts.vbars(tui, g, r.y + 1, r.x, bh, v.counts, function(i)
    return (i < lo_c or i > hi_c) and "error" or "ok"
  end, self.scale)
  -- markers: observed min / max, then the chosen range
  local my = r.y + 1 + bh
  tui.text(my, r.x + charts.col(v.min, v.hlo, v.hhi, cw) - 1, g.up, "warn", 1)
  tui.text(my, r.x + charts.col(v.max, v.hlo, v.hhi, cw) - 1, g.up, "warn", 1)
  if hi_c > lo_c + 1 then tui.text(my + 1, r.x + lo_c, g.h:rep(hi_c - lo_c - 1), "bold", hi_c - lo_c - 1) end
  tui.text(my + 1, r.x + lo_c - 1, "[", "bold", 1)
  tui.text(my + 1, r.x + hi_c - 1, "]", "bold", 1)
  tui.text(my + 2, r.x, string.format("%s observed %s..%s  (axis %s..%s)", g.up, fmt(v.min), fmt(v.max), fmt(v.hlo),
           fmt(v.hhi)), "normal", cw)
  tui.text(my + 3, r.x, string.format("[ ] %s range %s..%s, clips %.3g %% of values", v.kind, fmt(v.lo), fmt(v.hi),
           100 * v.clipped), "bold", cw)
  -- the table: every method on the same statistics
  local tx = r.x + cw + 2
  for k = 1, r.h - 1 do tui.text(r.y + k, tx - 1, g.v, "frame") end
  local wide = tw >= 46
  local f = wide and "%s %-10s %9s %9s %6s %6s" or "%s %-9s %7s %7s %5s %5s"
  tui.text(r.y + 1, tx, string.format(f, " ", "method", "lo", "hi", "SQNR", "clip%"), "header", tw)
  local nf = wide and "%9.4g" or "%7.3g"
  for i, e in ipairs(v.table or {}) do
    local y = r.y + 1 + i
    if y >= r.y + r.h then break end
    local sq = e.sqnr_db == math.huge and "inf" or string.format("%.1f", e.sqnr_db)
    local chosen = e.chosen   -- the method of the layer's observer (compare_ranges says which)
    local method = e.method:gsub("percentile", "pct")
    local line = string.format(f, chosen and g.mark or " ", method, string.format(nf, e.lo), string.format(nf, e.hi), sq,
                               string.format("%.2f", math.max(0, 100 * e.clipped)))
    tui.text(y, tx, line, chosen and "sel" or "normal", tw)
  end
  local ny = r.y + 2 + #(v.table or {})
  if ny < r.y + r.h then
    tui.text(ny, tx, string.format("%s: the range %s has now", g.mark, name), "dim", tw)
  end
  if ny + 1 < r.y + r.h then
    tui.text(ny + 1, tx, "SQNR: the histogram quantized so", "dim", tw)
  end
end

function M:on_key(app, key)
  if key == "L" then self.scale = self.scale == "log" and "linear" or "log" return app.REDRAW end
  return nil
end

return M
