-- The weights pane (key K): for the selected conv / linear layer, each
-- output channel's weight range as a vertical strip (one column per
-- channel, or per group of channels when there are more than columns;
-- the zero line dotted), and what one scale for the whole tensor costs
-- against one scale per channel, in SQNR and MSE at 8 and 4 bits, from
-- the FP32 weights (qlab.weight_stats through wb.weights).
local charts = require "qlab.workbench.charts"

local M = {}

function M:draw(app, r)
  local tui, g = app.tui, app.g
  local row = app:selected()
  local name = row and row.name or "-"
  local x = tui.text(r.y, r.x, string.format(" weights %s %s ", g.dot, name), "title_focus")
  tui.text(r.y, r.x + x, " up/dn layer  w per-channel / per-tensor  K back", "dim", r.w - x)
  local tw = 40
  local cw = r.w - tw - 9
  local key = (row and row.name or "") .. "\0" .. cw
  if not self.cache or self.cache.key ~= key then self.cache = {key = key, v = row and app.wb.weights(name, cw)} end
  local v = self.cache.v
  if not v then
    tui.text(r.y + 2, r.x + 2, string.format("%s has no weights to show (conv2d and linear layers do)", name), "warn", r.w - 4)
    return
  end
  -- the strip: rows map hi (top) .. lo (bottom)
  local sh = r.h - 4
  local lw = 8
  local function rowof(val) return sh - charts.col(val, v.lo, v.hi, sh) end   -- 0 = top
  local zr = rowof(0)
  tui.text(r.y + 1, r.x, string.format("%7.3g", v.hi), "dim", lw)
  tui.text(r.y + sh, r.x, string.format("%7.3g", v.lo), "dim", lw)
  if v.lo < 0 and v.hi > 0 then tui.text(r.y + 1 + zr, r.x, "      0", "dim", lw) end
  local bar = g.bar
  -- columns per channel when there is room: a bar and a gap
  local step = math.max(1, math.min(3, cw // #v.cols))
  local bw = step > 1 and step - 1 or 1
  for i, c in ipairs(v.cols) do
    local top, bot = rowof(c.max), rowof(c.min)
    local xx = r.x + lw + (i - 1) * step
    for k = 0, sh - 1 do
      if k >= top and k <= bot then tui.text(r.y + 1 + k, xx, bar:rep(bw), (k == zr) and "warn" or "ok", bw)
      elseif k == zr then tui.text(r.y + 1 + k, xx, g.dot:rep(step), "dim", step) end
    end
  end
  local per = v.cols[1] and (v.cols[1].last - v.cols[1].first + 1) or 1
  tui.text(r.y + sh + 1, r.x + lw, string.format("%d output channels%s: min..max of each", v.channels,
           per > 1 and string.format(" (%d per column)", per) or ""), "dim", cw)
  tui.text(r.y + sh + 2, r.x + lw, string.format("widest channel %.1fx the narrowest (max |w|)", v.spread), "normal", cw)
  -- the costs
  local tx = r.x + r.w - tw
  for k = 1, r.h - 1 do tui.text(r.y + k, tx - 1, g.v, "frame") end
  tui.text(r.y + 1, tx, string.format("%-12s %12s %12s", "scale", "SQNR 8-bit", "SQNR 4-bit"), "header", tw)
  local s8, s4 = v.bits8, v.bits4
  local p = app.wb.planned(name)
  local function line(y, label, a, b, mine)
    tui.text(y, tx, string.format("%-12s %9.1f dB %9.1f dB", label, a, b), mine and "sel" or "normal", tw)
  end
  line(r.y + 2, "per-tensor", s8.sqnr_per_tensor_db, s4.sqnr_per_tensor_db, p.gran == "per_tensor")
  line(r.y + 3, "per-channel", s8.sqnr_per_channel_db, s4.sqnr_per_channel_db, p.gran == "per_channel")
  tui.text(r.y + 5, tx, string.format("per-channel gains %.1f dB at 8 bits,", s8.sqnr_per_channel_db - s8.sqnr_per_tensor_db),
           "normal", tw)
  tui.text(r.y + 6, tx, string.format("%.1f dB at 4 bits", s4.sqnr_per_channel_db - s4.sqnr_per_tensor_db), "normal", tw)
  tui.text(r.y + 7, tx, string.format("MSE 8-bit: %.3g per-tensor,", s8.mse_per_tensor), "dim", tw)
  tui.text(r.y + 8, tx, string.format("          %.3g per-channel", s8.mse_per_channel), "dim", tw)
  tui.text(r.y + 10, tx, string.format("plan: %s (the highlighted row)", (p.gran or ""):gsub("_", "-")), "dim", tw)
end

return M
