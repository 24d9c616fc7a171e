-- The layer table: one row per node of m (name, op, output shape, params,
-- MACs, planned and actual precision, observer and weight granularity,
-- range, SQNR vs FP32, sensitivity drop, share of latency), filtered and
-- sorted by the app; columns are added by priority as the width allows.
local M = {}

local function human(n, unit)
  if not n or n == 0 then return "-" end
  if n < 1000 then return tostring(n) end
  if n < 1e6 then return string.format("%.1fk", n / 1e3) end
  if n < 1e9 then return string.format("%.2fM", n / 1e6) end
  return string.format("%.2fG", n / 1e9)
end
M.human = human

local short_obs = {minmax = "mm", moving_average = "mavg", histogram = "hist", percentile = "pct", entropy = "ent",
                   mse = "mse"}
M.short_obs = short_obs
local prec_style = {fp32 = "p_fp32", fp16 = "p_half", bf16 = "p_half", int8 = "p_int8", w4a8 = "p_w4",
                    dynamic = "p_dyn", dyn8 = "p_dyn", u8 = "dim"}
M.prec_style = prec_style
local plan_name = {dynamic = "dyn8"}

local function fmt_db(v)
  if v == nil then return "-" end
  if v == math.huge then return "inf" end
  return string.format("%.1f", v)
end
M.fmt_db = fmt_db

local function fmt_range(rg)
  if not rg then return "-" end
  return string.format("%.3g..%.3g", rg[1], rg[2])
end
M.fmt_range = fmt_range

-- id, title, width, right-aligned, cell(row) -> text [, style]
local COLS = {
  {"name", "layer", 12, false, function(r) return r.name, r.base and "normal" or "dim" end},
  {"op", "op", 9, false, function(r) return r.op, "dim" end},
  {"plan", "plan", 6, false, function(r)
    if not r.plan then return "-", "dim" end
    return (plan_name[r.plan] or r.plan) .. (r.own and "*" or ""), prec_style[r.plan]
  end},
  {"actual", "now", 5, false, function(r) return r.actual, prec_style[r.actual] or "normal" end},
  {"obs", "observer", 8, false, function(r)
    if not r.obs then return "-", "dim" end
    local w = (r.base_op == "conv2d" or r.base_op == "linear") and (r.gran == "per_tensor" and "/pt" or "/pc") or ""
    return short_obs[r.obs] .. w
  end},
  {"sqnr", "SQNR", 5, true, function(r) return fmt_db(r.sqnr) end},
  {"drop", "drop", 5, true, function(r) return r.drop and string.format("%.2f", r.drop) or "-" end},
  {"params", "params", 7, true, function(r) return human(r.params) end},
  {"shape", "shape", 10, false, function(r) return r.shape, "dim" end},
  {"macs", "MACs", 7, true, function(r) return human(r.macs) end},
  {"share", "time%", 5, true, function(r) return r.share and string.format("%.1f", 100 * r.share) or "-" end},
  {"range", "range", 15, false, function(r) return fmt_range(r.range) end},
}
local REQUIRED, FIRST = 4, 6   -- columns always shown; those the name shrinks for (observer, SQNR)
local sort_col = {order = nil, name = "name", params = "params", macs = "macs", sqnr = "sqnr", drop = "drop",
                  share = "share"}

-- the columns that fit in w, the name as wide as the longest (12 to 28)
local function columns(w, name_w)
  name_w = math.max(12, math.min(28, name_w))
  local used = 0
  for i = 2, FIRST do used = used + COLS[i][3] + 1 end
  local nw = math.max(14, math.min(name_w, w - used - 1))
  if nw + used + 1 > w then
    nw = name_w
    used = 0
    for i = 2, REQUIRED do used = used + COLS[i][3] + 1 end
    nw = math.max(8, math.min(nw, w - used - 1))
  end
  local cols, widths = {COLS[1]}, {nw}
  used = nw + 1
  for i = 2, #COLS do
    if i <= REQUIRED or used + COLS[i][3] + 1 <= w then
      cols[#cols + 1] = COLS[i]
      widths[#widths + 1] = COLS[i][3]
      used = used + COLS[i][3] + 1
    end
  end
  return cols, widths
end

local function pad(s, w, right)
  local n = utf8.len(s) or #s
  if n >= w then return s end
  return right and (string.rep(" ", w - n) .. s) or (s .. string.rep(" ", w - n))
end

function M:draw(app, r)
  local tui, g = app.tui, app.g
  local view = app.view
  local focused = app.focus == "table"
  local vis = r.h - 2
  if app.sel < app.top then app.top = app.sel end
  if app.sel > app.top + vis - 1 then app.top = app.sel - vis + 1 end
  app.top = math.max(1, math.min(app.top, math.max(1, #view - vis + 1)))
  self.rect, self.vis = r, vis
  -- title
  local title = string.format(" layers %d/%d ", #view, #(app.S.rows or {}))
  local tw = tui.text(r.y, r.x, title, focused and "title_focus" or "title")
  local info = {}
  if app.filter ~= "" then info[#info + 1] = "filter /" .. app.filter .. "/" end
  info[#info + 1] = "sort " .. app.sort.key .. (app.sort.rev and " rev" or "")
  if app.prefix == "*" then info[#info + 1] = "* all shown" end
  tui.text(r.y, r.x + tw, " " .. table.concat(info, " " .. g.dot .. " "), "dim", r.w - tw)
  -- header
  local longest = 0
  for _, row in ipairs(app.S.rows or {}) do longest = math.max(longest, #row.name) end
  local cols, widths = columns(r.w, longest)
  local x = r.x
  tui.text(r.y + 1, r.x, "", "header", r.w, true)
  for i, c in ipairs(cols) do
    local t = c[2]
    if sort_col[app.sort.key] == c[1] then t = t .. ((app.sort.rev and g.up) or g.down) end
    tui.text(r.y + 1, x, pad(t, widths[i], c[4]), "header", widths[i])
    x = x + widths[i] + 1
  end
  -- rows
  for k = 0, vis - 1 do
    local row = view[app.top + k]
    if not row then break end
    local y = r.y + 2 + k
    local sel = app.top + k == app.sel
    local rowstyle = sel and (focused and "sel" or "sel_idle") or nil
    if rowstyle then tui.text(y, r.x, "", rowstyle, r.w, true) end
    x = r.x
    for i, c in ipairs(cols) do
      local text, style = c[5](row)
      text = tostring(text)
      if (utf8.len(text) or #text) > widths[i] then
        text = text:sub(1, widths[i] - 1) .. g.more
      end
      tui.text(y, x, pad(text, widths[i], c[4]), rowstyle or style or "normal", widths[i])
      x = x + widths[i] + 1
    end
  end
  if #view == 0 then tui.text(r.y + 2, r.x + 1, "no layer matches the filter (/ then Esc clears it)", "warn", r.w - 1) end
end

function M:on_key(app, key)
  local vis = self.vis or 10
  local moves = {up = -1, k = -1, down = 1, j = 1, pgup = -vis, pgdn = vis}
  if moves[key] then app:select(app.sel + moves[key]) return app.REDRAW end
  if key == "home" or key == "g" then app:select(1) return app.REDRAW end
  if key == "end" or key == "G" then app:select(#app.view) return app.REDRAW end
  return nil
end

function M:on_mouse(app, kind, y, x)
  if kind == "wheelup" then app:select(app.sel - 3)
  elseif kind == "wheeldown" then app:select(app.sel + 3)
  elseif kind == "click" then
    app.focus = "table"
    if y >= 2 then app:select(app.top + y - 2) end
  end
  return app.REDRAW
end

return M
