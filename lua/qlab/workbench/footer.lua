-- The footer: one line of key hints for the focused pane, or what is
-- happening (a running job and its gauge, the filter being typed, the `*`
-- prefix, a message).
local M = {}

local HINTS = {
  table = {{"?", "help"}, {"1-6", "prec"}, {"o", "obs"}, {"w", "gran"}, {"p", "prepare"}, {"c", "calib"},
           {"v", "convert"}, {"e", "eval"}, {"x", "all"}, {"H I K B Q", "views"}, {"/", "filter"}, {"s", "sort"},
           {":", "lua"}, {"q", "quit"}},
  calib = {{"?", "help"}, {"up/dn", "layer"}, {"o", "observer (same statistics)"}, {"L", "log"}, {"c", "calibrate"},
           {"p", "prepare"}, {"H/esc", "back"}},
  sens = {{"?", "help"}, {"up/dn", "bar = layer"}, {"i", "run"}, {"T", "keep top-k"}, {"m", "greedy"}, {"I/esc", "back"}},
  weights = {{"?", "help"}, {"up/dn", "layer"}, {"w", "granularity"}, {"K/esc", "back"}},
  qat = {{"?", "help"}, {"a", "train"}, {"e", "evaluate"}, {"Q/esc", "back"}},
  bench = {{"?", "help"}, {"b", "bench"}, {"P", "report"}, {"W", "save a variant"}, {"B/esc", "back"}},
  detail = {{"tab", "next pane"}, {"?", "help"}, {"q", "quit"}},
  console = {{"enter", "run"}, {"tab", "complete"}, {"up/dn", "history"}, {"pgup", "log"}, {"esc", "back"}},
}

function M:draw(app, r)
  local tui = app.tui
  tui.text(r.y, r.x, "", "footer", r.w, true)
  if app.job then
    tui.text(r.y, r.x, require("qlab.workbench.jobs").gauge_text(app, r.w), "gauge", r.w, true)
    return
  end
  if app.filter_edit then
    local s = "filter (Lua pattern or text; Enter keeps, Esc clears): /" .. app.filter_edit.text
    tui.text(r.y, r.x, s, "input", r.w)
    app.cursor = {r.y, math.min(r.x + r.w - 1, r.x + tui.width(s))}
    return
  end
  if app.msg then tui.text(r.y, r.x, app.msg, "warn", r.w) return end
  if app.prefix == "*" then
    local n = 0
    for _, row in ipairs(app.view) do if row.base then n = n + 1 end end
    tui.text(r.y, r.x, string.format("* apply to the %d layers shown: 0-6 precision, o observer, w granularity, any other key cancels", n),
             "warn", r.w)
    return
  end
  local x = r.x
  local hints = (app.focus == "table" and app.view_mode and HINTS[app.view_mode]) or HINTS[app.focus] or HINTS.table
  for _, h in ipairs(hints) do
    local kw, tw = tui.width(h[1]), tui.width(h[2])
    if x + kw + tw + 2 > r.x + r.w then break end
    tui.text(r.y, x, h[1], "key")
    tui.text(r.y, x + kw + 1, h[2], "footer")
    x = x + kw + tw + 3
  end
  local right = string.format("calib %d", app.S.calib_batches)
  if x + #right + 1 <= r.x + r.w then tui.text(r.y, r.x + r.w - #right - 1, right, "dim") end
end

return M
