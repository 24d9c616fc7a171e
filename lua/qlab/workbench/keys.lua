-- The key table: every key of the workbench, its help line and what it does.
-- An entry's `code(app)` returns the Lua call(s) of the action (strings),
-- which the app echoes into the console log and runs there, so the log is a
-- script; `ui(app)` is a view change (moving, sorting, filtering, focus) that
-- no script needs, returning htop's flags. The help overlay and the footer
-- are drawn from this table, so what they list is what exists.
local M = {}

local LEVEL_KEYS = {{"1", "fp32", "FP32"}, {"2", "fp16", "FP16 weights"}, {"3", "bf16", "BF16 weights"},
                    {"4", "int8", "INT8 (static, calibrated)"}, {"5", "w4a8", "W4A8 (4-bit weights)"},
                    {"6", "dynamic", "dynamic INT8 (linear, lstm)"}, {"0", "keep", "keep: follow the default"}}

local function q(s) return string.format("%q", s) end

local function next_of(list, cur, step)
  for i, v in ipairs(list) do
    if v == cur then return list[(i - 1 + (step or 1)) % #list + 1] end
  end
  return list[1]
end

M.list = {}
local function add(group, keys, help, t)
  t.group, t.keys, t.help = group, keys, help
  M.list[#M.list + 1] = t
end

-- precision
for _, lk in ipairs(LEVEL_KEYS) do
  add("precision", {lk[1]}, lk[3], {code = function(app)
    local target = app:target_code()
    if not target then return nil end
    return {string.format("wb.set_precision(%s, %s)", target, q(lk[2]))}
  end})
end
add("precision", {"o"}, "next activation observer (minmax, moving avg, histogram, percentile, entropy, MSE)",
  {code = function(app)
    local target, row = app:target_code(), app:selected()
    if not target or not row then return nil end
    local cur = app.wb.planned(row.name).obs
    return {string.format("wb.set_observer(%s, %s)", target, q(next_of(app.wb.OBSERVERS, cur)))}
  end})
add("precision", {"w"}, "weights per-channel / per-tensor", {code = function(app)
  local target, row = app:target_code(), app:selected()
  if not target or not row then return nil end
  local cur = app.wb.planned(row.name).gran
  return {string.format("wb.set_granularity(%s, %s)", target, q(next_of(app.wb.GRANULARITIES, cur)))}
end})
add("precision", {"d"}, "the default: the selected layer's precision for every layer without its own",
  {code = function(app)
    local row = app:selected()
    if not row or not row.base then return nil end
    local p = app.wb.planned(row.name)
    return {string.format("wb.set_precision(\"default\", %s)", q(p.prec))}
  end})
add("precision", {"*"}, "then a precision / o / w key: apply to every layer shown", {ui = function(app)
  app.prefix = app.prefix == "*" and nil or "*"
  return app.REDRAW
end})
add("precision", {"M"}, "show the qconfig map as the Lua table m:prepare takes", {code = function() return {"wb.map()"} end})

-- workflow
add("workflow", {"p"}, "fuse + prepare m with the map", {code = function() return {"wb.prepare()"} end})
add("workflow", {"c"}, "calibrate N batches (+ / - change N)", {code = function(app)
  return {string.format("wb.calibrate(%d)", app.S.calib_batches)}
end})
add("workflow", {"v"}, "convert to the quantized kernels", {code = function() return {"wb.convert()"} end})
add("workflow", {"e"}, "evaluate top-1 / top-5 (FP32 too, once)", {code = function() return {"wb.evaluate()"} end})
add("workflow", {"x"}, "all four: prepare, calibrate, convert, evaluate", {code = function(app)
  return {"wb.prepare()", string.format("wb.calibrate(%d)", app.S.calib_batches), "wb.convert()", "wb.evaluate()"}
end})
add("workflow", {"t"}, "time: batch-1 latency and each layer's share", {code = function() return {"wb.profile()"} end})
add("workflow", {"n"}, "compare with FP32: SQNR of every layer", {code = function() return {"wb.compare()"} end})
add("workflow", {"i"}, "sensitivity: top-1 drop of each layer alone in INT8", {code = function() return {"wb.sensitivity()"} end})
add("workflow", {"R"}, "reset m to the FP32 model (the map is kept)", {code = function() return {"wb.reset()"} end})
add("workflow", {"W"}, "save the model (.qlm, atomic): edit the path, Enter", {ui = function(app)
  local name = app.S.name:gsub("%.qlm$", "")
  app.console:prefill(string.format("wb.save(%q)", name .. "_" .. app.S.phase .. ".qlm"), app)
  return app.REDRAW
end})
add("workflow", {"C-s"}, "save the session as a script (qlab --script FILE replays it)", {code = function(app)
  return {string.format("save_session(%q)", app.session_path)}
end})
add("workflow", {"+", "-"}, "more / fewer calibration batches", {ui = function(app, key)
  local n = app.S.calib_batches
  if key == "+" then n = n < 8 and n + 1 or n * 2 else n = n <= 8 and math.max(1, n - 1) or n // 2 end
  app.S.calib_batches = n
  return app.REDRAW
end})

-- the live views and their actions
local function view(v) return function(app) return app:toggle_view(v) end end
add("views and jobs", {"H"}, "calibration view: histogram, observed and chosen range, all methods", {ui = view("calib")})
add("views and jobs", {"L"}, "log / linear scale of the histogram", {ui = function(app)
  local c = app.panes.calib
  c.scale = c.scale == "log" and "linear" or "log"
  return app.REDRAW
end})
add("views and jobs", {"I"}, "sensitivity view: the ranking as it is measured, greedy steps", {ui = view("sens")})
add("views and jobs", {"T"}, "keep the top-k most sensitive layers (last ranking) in FP32", {code = function(app)
  return {string.format("wb.keep_sensitive(%d, \"fp32\")", app.topk)}
end})
add("views and jobs", {"m"}, "greedy mixed precision: each step as it goes, the result in the map",
  {code = function() return {"wb.mixed_precision()"} end})
add("views and jobs", {"K"}, "weights view: per-channel min/max, per-tensor vs per-channel cost", {ui = view("weights")})
add("views and jobs", {"B"}, "bench view: table, accuracy vs speed-up, sizes, latency by op", {ui = view("bench")})
add("views and jobs", {"b"}, "bench FP32, the current model and the models saved (quick)", {code = function(app)
  app.view_mode = "bench"
  return {"wb.bench()"}
end})
add("views and jobs", {"P"}, "write the report of the last bench (HTML, Markdown, JSON)", {code = function(app)
  return {string.format("wb.report(%q)", app.report_dir)}
end})
add("views and jobs", {"Q"}, "QAT view: the training loss per batch as it trains", {ui = view("qat")})
add("views and jobs", {"a"}, "quantization-aware training (1 epoch of 100 batches), then convert", {code = function()
  return {"wb.qat()"}
end})
add("views and jobs", {"esc"}, "cancel the running job (m as before it); in a view: back to the table", {})

-- view
add("view", {"up", "k", "down", "j"}, "move", {})
add("view", {"pgup", "pgdn", "home", "end"}, "move by a page, to the ends", {})
add("view", {"/"}, "filter layers: a Lua pattern or plain text (Enter keeps, Esc clears)", {ui = function(app)
  app:start_filter()
  return app.REDRAW
end})
add("view", {"s"}, "sort by the next column (order, name, params, MACs, SQNR, drop, latency)", {ui = function(app)
  app:next_sort()
  return app.REDRAW
end})
add("view", {"r"}, "reverse the sort", {ui = function(app)
  app.sort.rev = not app.sort.rev
  app:update_view()
  return app.REDRAW
end})
add("view", {"tab", "btab"}, "focus: table, detail pane, console", {ui = function(app, key)
  app:cycle_focus(key == "btab" and -1 or 1)
  return app.REDRAW
end})
add("view", {":"}, "focus the console (Esc leaves it)", {ui = function(app)
  app.focus = "console"
  return app.REDRAW
end})
add("view", {"?", "f1"}, "this help", {ui = function(app)
  app.overlay = "help"
  app.help_top = 0
  return app.REDRAW
end})
add("view", {"q", "C-c"}, "quit (asks once when the model has unsaved changes)", {ui = function(app)
  return app:quit()
end})

-- console (handled by the console pane; listed for the help)
M.console = {
  {"enter", "run the line (an unfinished chunk continues on the next line)"},
  {"up / down", "history (~/.qlab_history)"},
  {"tab", "complete globals, fields, methods (m:pre<Tab>); on an empty line: next pane"},
  {"pgup / pgdn", "scroll the log"},
  {"C-a C-e C-u C-k C-w", "start, end, kill line, kill to end, kill word"},
  {"C-c / C-l", "drop the line being typed / clear the log"},
  {"esc", "back to the table"},
}
M.mouse = "mouse: a click selects a row (or focuses a pane), the wheel scrolls"

M.by_key = {}
for _, e in ipairs(M.list) do
  for _, k in ipairs(e.keys) do M.by_key[k] = e end
end

return M
