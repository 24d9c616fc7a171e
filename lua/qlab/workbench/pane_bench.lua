-- The bench pane (key B): qlab.bench over the session's variants (FP32,
-- the current model, the models saved with W), run with b; the table
-- (top-1, drop, size, batch-1 latency, speed-up, throughput), accuracy vs
-- speed-up with the Pareto front, sizes, and the latency of the current
-- model by op type. P writes the report (HTML, Markdown, JSON) and says where.
local charts = require "qlab.workbench.charts"

local M = {}

local function at(v, batch)
  for _, l in ipairs(v.latency or {}) do if l.batch == batch then return l end end
  return v.latency and v.latency[1]
end

local MARKS = {"F", "C", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

function M:draw(app, r)
  local tui, g, S = app.tui, app.g, app.S
  local x = tui.text(r.y, r.x, " bench ", "title_focus")
  local hint = "b run (quick)  P report  W save a variant  B back"
  if S.report_path then hint = "report: " .. S.report_path .. "  " .. g.dot .. " " .. hint end
  tui.text(r.y, r.x + x, " " .. hint, "dim", r.w - x)
  local suite = S.bench
  if not suite then
    tui.text(r.y + 2, r.x + 2, "no bench yet: b measures FP32, the current model and every model saved (W) this session",
             "warn", r.w - 4)
    return
  end
  local big = 0
  for _, b in ipairs(suite.config.batch_sizes or {}) do big = math.max(big, b) end
  tui.text(r.y + 1, r.x, string.format("   %-24s %7s %6s %8s %9s %8s %9s", "variant", "top-1", "drop", "size MB",
           "ms b1", "speed-up", "img/s b" .. big), "header", r.w, true)
  local ok, points, y = {}, {}, r.y + 2
  for i, v in ipairs(suite.variants) do
    local mark = MARKS[i] or "?"
    if v.status == "ok" then
      ok[#ok + 1] = v
      local l1, lb = at(v, 1), at(v, big)
      tui.text(y, r.x, string.format(" %s %-24.24s %7.2f %6.2f %8.3f %9.3f %7.2fx %9.0f", mark, v.name, v.accuracy.top1,
               v.accuracy.drop or 0, v.size.bytes / 1e6, l1.median, l1.speedup or 1, lb and lb.images_per_s or 0),
               "normal", r.w)
      points[#points + 1] = {x = l1.speedup or 1, y = v.accuracy.top1, mark = mark}
    else
      tui.text(y, r.x, string.format(" %s %-24.24s %s: %s", mark, v.name, v.status, v.error or v.reason or ""), "warn", r.w)
    end
    y = y + 1
  end
  local ch = r.y + r.h - y - 1
  if ch < 4 then return end
  y = y + 1
  local w3 = (r.w - 4) // 3
  -- accuracy vs speed-up, the Pareto front in yellow
  local front = charts.scatter(tui, g, {y = y + 1, x = r.x, h = ch - 1, w = w3}, points, "speed-up", "top-1")
  local fm = {}
  for _, p in ipairs(front) do fm[#fm + 1] = p.mark end
  tui.text(y, r.x, "top-1 vs speed-up, front: " .. table.concat(fm, " "), "title", w3)
  -- size bars
  local sx = r.x + w3 + 2
  tui.text(y, sx, "size (MB)", "title", w3)
  local maxb = 0
  for _, v in ipairs(ok) do maxb = math.max(maxb, v.size.bytes) end
  for i, v in ipairs(ok) do
    if i > ch - 1 then break end
    tui.text(y + i, sx, MARKS[i] or "?", "dim", 1)
    charts.hbar(tui, g, y + i, sx + 2, w3 - 10, v.size.bytes / maxb, "ok")
    tui.text(y + i, sx + w3 - 7, string.format("%.3f", v.size.bytes / 1e6), "dim", 7)
  end
  -- latency by op type of the last variant measured (the current model when there is one)
  local ox = sx + w3 + 2
  local cur = ok[#ok]
  local bd = cur and cur.breakdown and cur.breakdown[1]
  if bd then
    tui.text(y, ox, string.format("%s: ms by op (b%d)", cur.name, bd.batch), "title", r.x + r.w - ox)
    local ops = {}
    for _, o in ipairs(bd.ops or {}) do ops[#ops + 1] = o end
    table.sort(ops, function(a, b) return a.ms > b.ms end)
    local ow = r.x + r.w - ox
    for i, o in ipairs(ops) do
      if i > ch - 1 then break end
      tui.text(y + i, ox, o.op, "normal", 10)
      charts.hbar(tui, g, y + i, ox + 11, ow - 20, o.share, "ok")
      tui.text(y + i, ox + ow - 8, string.format("%.3f", o.ms), "dim", 8)
    end
  end
end

return M
