-- Terminal charts for the live panes, drawn with qlab.tui's text calls:
-- vertical bars in eighths of a cell (histograms, weight strips),
-- horizontal bars in eighths (rankings, sizes), a scatter plot with its
-- Pareto front. ASCII fallbacks when the terminal has no UTF-8.
local M = {}

local V8 = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"}
local H8 = {"▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"}

local function utf8_ok(g) return g.bar == "█" end

-- values (one per column, >= 0) as vertical bars h rows tall at (y, x);
-- style(i) the style of column i; scale "log" plots log(1 + v).
function M.vbars(tui, g, y, x, h, values, style, scale)
  local tv, max = {}, 0
  for i, v in ipairs(values) do
    tv[i] = scale == "log" and math.log(1 + v) or v
    if tv[i] > max then max = tv[i] end
  end
  local u = utf8_ok(g)
  for i, v in ipairs(tv) do
    local eighths = max > 0 and math.floor(v / max * h * 8 + 0.5) or 0
    if v > 0 and eighths == 0 then eighths = 1 end   -- a bin with data never looks empty
    local st = style and style(i) or "ok"
    for k = 0, h - 1 do   -- k: rows from the bottom
      local e = eighths - k * 8
      if e > 0 then
        local c = e >= 8 and (u and "█" or "#") or (u and V8[e] or (e >= 4 and "#" or "."))
        tui.text(y + h - 1 - k, x + i - 1, c, st, 1)
      end
    end
  end
end

-- a horizontal bar of frac (0..1) of w columns
function M.hbar(tui, g, y, x, w, frac, style)
  frac = math.max(0, math.min(1, frac or 0))
  local eighths = math.floor(frac * w * 8 + 0.5)
  if frac > 0 and eighths == 0 then eighths = 1 end
  local full, part = eighths // 8, eighths % 8
  local u = utf8_ok(g)
  local s = (u and "█" or "#"):rep(full)
  if part > 0 then s = s .. (u and H8[part] or ".") end
  if s ~= "" then tui.text(y, x, s, style or "ok", w) end
end

-- column of value v on an axis lo..hi of w columns (1-based)
function M.col(v, lo, hi, w)
  if hi <= lo then return 1 end
  return math.max(1, math.min(w, math.floor((v - lo) / (hi - lo) * w) + 1))
end

-- the points not dominated (larger x and larger y both better): the report's rule
M.pareto = require("qlab.svg").pareto

-- points {x, y, mark} in the rect: axes labelled, Pareto front points in
-- "warn" and joined by dots; returns the front
function M.scatter(tui, g, r, points, xl, yl)
  if #points == 0 or r.h < 4 or r.w < 12 then return {} end
  local xlo, xhi, ylo, yhi = math.huge, -math.huge, math.huge, -math.huge
  for _, p in ipairs(points) do
    xlo, xhi = math.min(xlo, p.x), math.max(xhi, p.x)
    ylo, yhi = math.min(ylo, p.y), math.max(yhi, p.y)
  end
  local px, py = math.max(0.05, (xhi - xlo) * 0.1), math.max(0.05, (yhi - ylo) * 0.1)
  xlo, xhi, ylo, yhi = xlo - px, xhi + px, ylo - py, yhi + py
  local lw = 7   -- y labels
  local pw, ph = r.w - lw - 1, r.h - 2
  local ax = r.x + lw
  for k = 0, ph - 1 do tui.text(r.y + k, ax, g.v, "frame") end
  tui.text(r.y + ph, ax, g.bl .. g.h:rep(pw), "frame", pw + 1)
  tui.text(r.y, r.x, string.format("%6.2f", yhi), "dim", lw)
  tui.text(r.y + ph - 1, r.x, string.format("%6.2f", ylo), "dim", lw)
  local xs = string.format("%.2fx", xhi)
  tui.text(r.y + ph + 1, ax + 1, string.format("%.2fx", xlo), "dim", 8)
  tui.text(r.y + ph + 1, ax + pw - #xs + 1, xs, "dim", #xs)
  local mid = xl .. " " .. g.arrow
  if pw - 18 >= #mid then tui.text(r.y + ph + 1, ax + (pw - #mid) // 2 + 1, mid, "dim", #mid + 2) end
  local function pos(p)
    return r.y + ph - M.col(p.y, ylo, yhi, ph), ax + M.col(p.x, xlo, xhi, pw)
  end
  local front = M.pareto(points)
  for i = 2, #front do   -- the front as a dotted line
    local y0, x0 = pos(front[i - 1])
    local y1, x1 = pos(front[i])
    local n = math.max(math.abs(x1 - x0), math.abs(y1 - y0))
    for s = 1, n - 1 do
      tui.text(math.floor(y0 + (y1 - y0) * s / n + 0.5), math.floor(x0 + (x1 - x0) * s / n + 0.5), g.dot, "warn", 1)
    end
  end
  local on = {}
  for _, p in ipairs(front) do on[p] = true end
  for _, p in ipairs(points) do
    local y, x = pos(p)
    tui.text(y, x, p.mark, on[p] and "warn" or "normal", 1)
  end
  return front
end

return M
