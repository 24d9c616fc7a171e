-- The sensitivity pane (key I, and by itself while wb.sensitivity or
-- wb.mixed_precision runs): the ranking as a bar chart, filled node by
-- node as qlab.sensitivity's on_node reports; up / down (or a click) move
-- along the bars and select that layer; T keeps the top-k in higher
-- precision (wb.keep_sensitive). The greedy mixed-precision search's steps
-- (node, change, top-1, size, latency) are listed as they are taken.
local charts = require "qlab.workbench.charts"

local M = {sel = 1}

-- the ranking so far, most harmful first (wb.sens_order)
function M.sorted(app)
  return app.wb.sens_order(app.S.sens_rank or {}, app.S.sens_info)
end

local function draw_steps(app, r)
  local tui, mp = app.tui, app.S.mp
  tui.text(r.y, r.x, string.format("greedy mixed precision (start %s, budget %.2f points)%s", mp.level or "?",
           mp.budget or 0, mp.running and " running" or ""), "title", r.w)
  tui.text(r.y + 1, r.x, string.format("%-4s %-12s %-12s %6s %6s %8s %7s", "step", "node", "change", "top-1", "drop",
           "size MB", "ms b1"), "header", r.w)
  local first = math.max(1, #mp.steps - (r.h - 3) + 1)
  for i = first, #mp.steps do
    local s = mp.steps[i]
    local y = r.y + 2 + i - first
    if y >= r.y + r.h then break end
    tui.text(y, r.x, string.format("%-4d %-12.12s %-12.12s %6.2f %6.2f %8.3f %7.3f", s.step, s.node,
             s.from .. ">" .. s.to, s.top1, s.drop, s.size_bytes / 1e6, s.latency_ms or 0), "normal", r.w)
  end
  local y = r.y + 2 + math.min(#mp.steps, r.h - 3)
  if not mp.running and mp.final and y < r.y + r.h then
    tui.text(y, r.x, string.format("final: top-1 %.2f, drop %.2f, %.3f MB%s", mp.final.top1, mp.final.drop,
             mp.final.size_bytes / 1e6, #mp.steps == 0 and " (within budget at the start)" or ""), "ok", r.w)
  elseif #mp.steps == 0 and y < r.y + r.h then
    tui.text(y, r.x, "measuring the first step's candidates ...", "dim", r.w)
  end
end

function M:draw(app, r)
  local tui, g, S = app.tui, app.g, app.S
  local info = S.sens_info
  local list, value, by_noise = M.sorted(app)
  self.list = list
  local title = " sensitivity "
  local x = tui.text(r.y, r.x, title, "title_focus")
  local parts = {}
  if info then
    parts[#parts + 1] = string.format("%s %s %s, %d images", info.level, info.metric, info.mode, info.images)
    local total = info.total or info.nodes
    parts[#parts + 1] = string.format("%d%s measured%s", #list, total and ("/" .. total) or "",
                                      info.running and " (running)" or "")
  end
  parts[#parts + 1] = string.format("up/dn bar = layer  T keep top-%d fp32  m greedy  i run  I back", app.topk)
  tui.text(r.y, r.x + x, " " .. table.concat(parts, " " .. g.dot .. " "), "dim", r.w - x)
  local body = {y = r.y + 1, x = r.x, h = r.h - 1, w = r.w}
  if S.mp then
    if r.w >= 100 then
      local sw = 64
      draw_steps(app, {y = body.y, x = r.x + r.w - sw, h = body.h, w = sw})
      for k = 0, body.h - 1 do tui.text(body.y + k, r.x + r.w - sw - 2, g.v, "frame") end
      body.w = r.w - sw - 3
    else
      local sh = math.max(4, body.h // 2)
      draw_steps(app, {y = body.y + body.h - sh, x = r.x, h = sh, w = r.w})
      body.h = body.h - sh
    end
  end
  if #list == 0 then
    tui.text(body.y + 1, r.x + 2, info and info.running and "measuring the first layer ..." or
             "no ranking yet: i measures each layer alone in INT8 (wb.sensitivity{metric = \"sqnr\"} is faster)",
             info and "dim" or "warn", body.w - 4)
    return
  end
  -- the bars, the selected one highlighted; its layer is the table's selection
  local row = app:selected()
  for i, e in ipairs(list) do if row and e.name == row.name then self.sel = i end end
  self.sel = math.max(1, math.min(self.sel, #list))
  local vis = body.h - 1
  self.top = self.top or 1
  if self.sel < self.top then self.top = self.sel end
  if self.sel > self.top + vis - 1 then self.top = self.sel - vis + 1 end
  local nw = 4
  for _, e in ipairs(list) do nw = math.max(nw, math.min(24, #e.name)) end
  -- bars by the value the ranking is ordered by
  local max = 0
  for _, e in ipairs(list) do max = math.max(max, value(e)) end
  local lw = 18
  local bw = body.w - nw - lw - 2
  self.body = body
  for k = 0, vis - 1 do
    local e = list[self.top + k]
    if not e then break end
    local y = body.y + k
    local sel = self.top + k == self.sel
    local _, label = app.wb.sens_value(e, info)
    if e.drop and e.sqnr_db then label = string.format("%s %s %.1f dB", label, g.dot, e.sqnr_db) end
    tui.text(y, body.x, e.name, sel and "sel" or "normal", nw, true)
    charts.hbar(tui, g, y, body.x + nw + 1, bw, max > 0 and value(e) / max or 0,
                sel and "warn" or (self.top + k <= app.topk and "error" or "ok"))
    tui.text(y, body.x + nw + 2 + bw, label, sel and "sel" or "dim", lw)
  end
  local ly = body.y + math.min(vis, #list - self.top + 1)
  if ly < body.y + body.h then
    tui.text(ly, body.x, by_noise and "bars: noise of the logits vs FP32 (no layer alone costs top-1 here); labels: drop, SQNR"
             or (info and info.metric == "sqnr" and "bars: noise power of the logits vs FP32; labels: SQNR"
             or "bars: top-1 points lost with the layer alone quantized; labels: drop, logits SQNR"), "dim", body.w)
  end
end

function M:select(app, i)
  local list = self.list or M.sorted(app)
  if #list == 0 then return end
  self.sel = math.max(1, math.min(#list, i))
  app:select_name(list[self.sel].name)
end

function M:on_key(app, key)
  local moves = {up = -1, k = -1, down = 1, j = 1, pgup = -10, pgdn = 10}
  if moves[key] then self:select(app, self.sel + moves[key]) return app.REDRAW end
  if key == "home" or key == "g" then self:select(app, 1) return app.REDRAW end
  if key == "end" or key == "G" then self:select(app, math.huge) return app.REDRAW end
  return nil
end

function M:on_mouse(app, kind, y)
  if kind == "click" and self.body then
    local i = (self.top or 1) + y - (self.body.y - (app.layout.view and app.layout.view.y or 0))
    if i >= 1 then self:select(app, i) end
  elseif kind == "wheelup" then self:select(app, self.sel - 3)
  elseif kind == "wheeldown" then self:select(app, self.sel + 3) end
  return app.REDRAW
end

return M
