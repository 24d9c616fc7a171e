-- SVG charts drawn by qlab for the report: plain strings, no scripts, no external resources.
-- Every chart is one <svg> element (valid XML, usable inline in HTML or as a file) whose data
-- series are <g class="series" data-series="NAME"> groups, so tests and readers find them.
--   svg.scatter{title, x_label, y_label, points = {{name, x, y}}, front = true}   Pareto front marked
--   svg.hbars{title, unit, bars = {{name, value, label?}}}
--   svg.stacked{title, unit, bars = {{name, parts = {{key, value}}}}, keys = {...}}
--   svg.grouped{title, unit, groups = {{name, values = {...}}}, keys = {...}}
local M = {}

M.palette = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
             "#9c755f", "#bab0ac", "#1f77b4", "#8c564b"}

function M.escape(s)
  return (tostring(s):gsub("[&<>\"']", {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
                                        ["'"] = "&#39;"}))
end
local esc = M.escape

local function num(v) return string.format("%.1f", v) end

-- A "nice" axis: ticks covering [lo, hi]
local function ticks(lo, hi, n)
  if hi <= lo then hi = lo + 1 end
  local raw = (hi - lo) / (n or 5)
  local mag = 10 ^ math.floor(math.log(raw, 10))
  local step = mag
  for _, m in ipairs{1, 2, 2.5, 5, 10} do
    if raw <= m * mag then step = m * mag; break end
  end
  local t0, out = math.floor(lo / step) * step, {}
  local t = t0
  while t <= hi + step * 1e-9 do out[#out + 1] = t; t = t + step end
  if out[#out] < hi then out[#out + 1] = out[#out] + step end
  return out, step
end

local function fmt_tick(v, step)
  local d = 0
  while d < 6 and math.abs(step * 10 ^ d - math.floor(step * 10 ^ d + 0.5)) > 1e-6 * 10 ^ d do d = d + 1 end
  return string.format("%." .. d .. "f", v)
end

local function open(w, h, title, desc)
  return {string.format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
    .. 'role="img" font-family="sans-serif" font-size="12">', w, h, w, h),
    "<title>" .. esc(title) .. "</title>", desc and ("<desc>" .. esc(desc) .. "</desc>") or "",
    string.format('<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>', w, h),
    string.format('<text x="%d" y="18" font-size="14" font-weight="bold" text-anchor="middle">%s</text>', w // 2,
                  esc(title))}
end

local function close(parts)
  parts[#parts + 1] = "</svg>"
  return table.concat(parts, "\n")
end

-- Points that no other point beats on both x and y (higher is better on both).
function M.pareto(points)
  local front = {}
  for i, p in ipairs(points) do
    local dominated = false
    for j, q in ipairs(points) do
      if i ~= j and q.x >= p.x and q.y >= p.y and (q.x > p.x or q.y > p.y) then dominated = true; break end
    end
    if not dominated then front[#front + 1] = p end
  end
  table.sort(front, function(a, b) return a.x < b.x end)
  return front
end

function M.scatter(o)
  local w, h, l, r, t, b = o.width or 620, o.height or 380, 60, 150, 34, 46
  local pts = o.points
  local parts = open(w, h, o.title, o.desc)
  if #pts == 0 then
    parts[#parts + 1] = string.format('<text x="%d" y="%d" text-anchor="middle">no data</text>', w // 2, h // 2)
    return close(parts)
  end
  local xlo, xhi, ylo, yhi = math.huge, -math.huge, math.huge, -math.huge
  for _, p in ipairs(pts) do
    xlo, xhi = math.min(xlo, p.x), math.max(xhi, p.x)
    ylo, yhi = math.min(ylo, p.y), math.max(yhi, p.y)
  end
  local xpad, ypad = math.max(0.05, (xhi - xlo) * 0.08), math.max(0.1, (yhi - ylo) * 0.1)
  local xt, xs = ticks(math.max(0, xlo - xpad), xhi + xpad, 6)
  local yt, ys = ticks(ylo - ypad, yhi + ypad, 5)
  local x0, x1, y0, y1 = xt[1], xt[#xt], yt[1], yt[#yt]
  local pw, ph = w - l - r, h - t - b
  local function X(v) return l + (v - x0) / (x1 - x0) * pw end
  local function Y(v) return t + ph - (v - y0) / (y1 - y0) * ph end
  parts[#parts + 1] = '<g class="axes" stroke="#999" stroke-width="1">'
  parts[#parts + 1] = string.format('<line x1="%s" y1="%s" x2="%s" y2="%s"/>', num(l), num(t + ph), num(l + pw), num(t + ph))
  parts[#parts + 1] = string.format('<line x1="%s" y1="%s" x2="%s" y2="%s"/>', num(l), num(t), num(l), num(t + ph))
  parts[#parts + 1] = "</g>"
  for _, v in ipairs(xt) do
    parts[#parts + 1] = string.format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#eee"/><text x="%s" y="%s" '
      .. 'text-anchor="middle" fill="#555">%s</text>', num(X(v)), num(t), num(X(v)), num(t + ph), num(X(v)),
      num(t + ph + 16), fmt_tick(v, xs))
  end
  for _, v in ipairs(yt) do
    parts[#parts + 1] = string.format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#eee"/><text x="%s" y="%s" '
      .. 'text-anchor="end" fill="#555">%s</text>', num(l), num(Y(v)), num(l + pw), num(Y(v)), num(l - 6),
      num(Y(v) + 4), fmt_tick(v, ys))
  end
  parts[#parts + 1] = string.format('<text x="%s" y="%d" text-anchor="middle">%s</text>', num(l + pw / 2), h - 8,
                                    esc(o.x_label or "x"))
  parts[#parts + 1] = string.format('<text x="14" y="%s" text-anchor="middle" transform="rotate(-90 14 %s)">%s</text>',
                                    num(t + ph / 2), num(t + ph / 2), esc(o.y_label or "y"))
  if o.front ~= false then
    local front = M.pareto(pts)
    local path = {}
    for i, p in ipairs(front) do path[#path + 1] = (i == 1 and "M" or "L") .. num(X(p.x)) .. " " .. num(Y(p.y)) end
    parts[#parts + 1] = string.format('<g class="series pareto" data-series="pareto front"><path d="%s" fill="none" '
      .. 'stroke="#e15759" stroke-width="1.5" stroke-dasharray="5 3"/></g>', table.concat(path, " "))
    for _, p in ipairs(front) do p.on_front = true end
  end
  for i, p in ipairs(pts) do
    local c = M.palette[(i - 1) % #M.palette + 1]
    parts[#parts + 1] = string.format('<g class="series" data-series="%s"><circle cx="%s" cy="%s" r="%d" fill="%s" '
      .. 'stroke="%s" stroke-width="2"><title>%s: %s</title></circle></g>', esc(p.name), num(X(p.x)), num(Y(p.y)),
      p.on_front and 6 or 4, c, p.on_front and "#e15759" or c, esc(p.name), esc(p.tip or ""))
    -- legend on the right: colour, name, a star on the front
    local ly = t + 14 + (i - 1) * 16
    parts[#parts + 1] = string.format('<circle cx="%d" cy="%d" r="4" fill="%s"/><text x="%d" y="%d">%s%s</text>',
      w - r + 12, ly - 4, c, w - r + 22, ly, esc(p.name), p.on_front and " *" or "")
  end
  if o.front ~= false then
    parts[#parts + 1] = string.format('<text x="%d" y="%d" fill="#e15759">* Pareto front</text>', w - r + 12,
                                      t + 14 + #pts * 16 + 6)
  end
  return close(parts)
end

local function scale_max(v)
  local tk, st = ticks(0, v > 0 and v or 1, 5)
  return tk[#tk], tk, st
end

-- Horizontal bars, one per name.
-- vertical grid lines and labels of a horizontal value axis: plot [l, l + pw] x [y0, y1]
local function x_ticks(parts, tk, top, st, l, pw, y0, y1)
  for _, v in ipairs(tk) do
    local x = l + v / top * pw
    parts[#parts + 1] = string.format('<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#eee"/><text x="%s" y="%d" '
      .. 'text-anchor="middle" fill="#555">%s</text>', num(x), y0, num(x), y1, num(x), y1 + 14, fmt_tick(v, st))
  end
end

function M.hbars(o)
  local bars = o.bars
  local rowh, l, r, t = 22, 150, 90, 34
  local w, h = o.width or 620, t + #bars * rowh + 40
  local parts = open(w, h, o.title, o.desc)
  local vmax = 0
  for _, b in ipairs(bars) do vmax = math.max(vmax, b.value) end
  local top, tk, st = scale_max(vmax)
  local pw = w - l - r
  x_ticks(parts, tk, top, st, l, pw, t, t + #bars * rowh)
  for i, b in ipairs(bars) do
    local y = t + (i - 1) * rowh
    local bw = top > 0 and b.value / top * pw or 0
    parts[#parts + 1] = string.format('<g class="series" data-series="%s"><text x="%d" y="%s" text-anchor="end">%s'
      .. '</text><rect x="%d" y="%s" width="%s" height="%d" fill="%s"><title>%s: %s</title></rect><text x="%s" '
      .. 'y="%s" fill="#333">%s</text></g>', esc(b.name), l - 6, num(y + rowh * 0.68), esc(b.name), l, num(y + 3),
      num(bw), rowh - 6, b.color or M.palette[1], esc(b.name), esc(b.label or b.value), num(l + bw + 4),
      num(y + rowh * 0.68), esc(b.label or fmt_tick(b.value, st / 10)))
  end
  parts[#parts + 1] = string.format('<text x="%s" y="%d" text-anchor="middle">%s</text>', num(l + pw / 2), h - 6,
                                    esc(o.unit or ""))
  return close(parts)
end

-- Stacked horizontal bars: one per name, a segment per key (same colour per key across bars).
function M.stacked(o)
  local bars, keys = o.bars, o.keys
  local rowh, l, r, t = 24, 130, 150, 34
  local w = o.width or 620
  local h = math.max(t + #bars * rowh + 40, t + #keys * 16 + 20)
  local parts = open(w, h, o.title, o.desc)
  local colour = {}
  for i, k in ipairs(keys) do colour[k] = M.palette[(i - 1) % #M.palette + 1] end
  local vmax = 0
  for _, b in ipairs(bars) do
    local s = 0
    for _, p in ipairs(b.parts) do s = s + p[2] end
    vmax = math.max(vmax, s)
  end
  local top, tk, st = scale_max(vmax)
  local pw = w - l - r
  x_ticks(parts, tk, top, st, l, pw, t, t + #bars * rowh)
  for i, b in ipairs(bars) do
    local y, x = t + (i - 1) * rowh, l
    parts[#parts + 1] = string.format('<g class="series" data-series="%s"><text x="%d" y="%s" text-anchor="end">%s</text>',
      esc(b.name), l - 6, num(y + rowh * 0.68), esc(b.name))
    for _, p in ipairs(b.parts) do
      local bw = top > 0 and p[2] / top * pw or 0
      parts[#parts + 1] = string.format('<rect class="segment" data-key="%s" x="%s" y="%s" width="%s" height="%d" '
        .. 'fill="%s"><title>%s %s: %s %s</title></rect>', esc(p[1]), num(x), num(y + 3), num(bw), rowh - 6,
        colour[p[1]] or "#999", esc(b.name), esc(p[1]), string.format("%.4g", p[2]), esc(o.unit or ""))
      x = x + bw
    end
    parts[#parts + 1] = "</g>"
  end
  for i, k in ipairs(keys) do
    local ly = t + 10 + (i - 1) * 16
    parts[#parts + 1] = string.format('<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>',
      w - r + 14, ly - 9, colour[k], w - r + 30, ly, esc(k))
  end
  parts[#parts + 1] = string.format('<text x="%s" y="%d" text-anchor="middle">%s</text>', num(l + pw / 2), h - 6,
                                    esc(o.unit or ""))
  return close(parts)
end

-- Grouped horizontal bars: per name, one bar per key.
function M.grouped(o)
  local groups, keys = o.groups, o.keys
  local barh, gap, l, r, t = 9, 8, 130, 160, 34
  local rowh = #keys * barh + gap
  local w = o.width or 620
  local h = math.max(t + #groups * rowh + 40, t + #keys * 16 + 20)
  local parts = open(w, h, o.title, o.desc)
  local vmax = 0
  for _, g in ipairs(groups) do for _, v in ipairs(g.values) do vmax = math.max(vmax, v) end end
  local top, tk, st = scale_max(vmax)
  local pw = w - l - r
  x_ticks(parts, tk, top, st, l, pw, t, t + #groups * rowh)
  for i, g in ipairs(groups) do
    local y = t + (i - 1) * rowh
    parts[#parts + 1] = string.format('<g class="series" data-series="%s"><text x="%d" y="%s" text-anchor="end">%s</text>',
      esc(g.name), l - 6, num(y + rowh / 2 + 2), esc(g.name))
    for k, v in ipairs(g.values) do
      parts[#parts + 1] = string.format('<rect class="segment" data-key="%s" x="%d" y="%s" width="%s" height="%d" '
        .. 'fill="%s"><title>%s %s: %s %s</title></rect>', esc(keys[k]), l, num(y + (k - 1) * barh), num(top > 0 and
        v / top * pw or 0), barh - 1, M.palette[(k - 1) % #M.palette + 1], esc(g.name), esc(keys[k]),
        string.format("%.4g", v), esc(o.unit or ""))
    end
    parts[#parts + 1] = "</g>"
  end
  for k, key in ipairs(keys) do
    local ly = t + 10 + (k - 1) * 16
    parts[#parts + 1] = string.format('<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>',
      w - r + 14, ly - 9, M.palette[(k - 1) % #M.palette + 1], w - r + 30, ly, esc(key))
  end
  parts[#parts + 1] = string.format('<text x="%s" y="%d" text-anchor="middle">%s</text>', num(l + pw / 2), h - 6,
                                    esc(o.unit or ""))
  return close(parts)
end

return M
