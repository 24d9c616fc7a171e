-- The workbench without a terminal: the actions (the map, its Lua code, the
-- workflow, every precision), the console (expressions, errors, multi-line,
-- completion, history), the panes drawn on a fake screen (as WeeChat tests
-- its interface on a fake ncurses), and a saved session replayed by the
-- real binary. tests/sh/test_tui.sh drives the real terminal.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"
local wb = require "qlab.workbench.actions"
local workbench = require "qlab.workbench"
local complete = require "qlab.workbench.complete"
local history = require "qlab.workbench.history"
local pretty = require "qlab.workbench.pretty"

local tmp = H.tmpdir()
local MODEL = "data/models/small_cnn_fmnist.qlm"
local out = {}
wb.out = function(line) out[#out + 1] = line end
local function said(pat)
  for _, l in ipairs(out) do if l:find(pat) then return l end end
  return nil
end

-- a screen of lines x cols that tui.text writes into
local function fake_tui(lines, cols)
  local t = {grid = {}}
  function t.info() return {utf8 = false, color = false} end
  function t.size() return lines, cols end
  function t.erase() for y = 0, lines - 1 do t.grid[y] = string.rep(" ", cols) end end
  function t.text(y, x, s, style, w, pad)
    if y < 0 or y >= lines or x >= cols then return 0 end
    w = (w and w >= 0) and math.min(w, cols - x) or cols - x
    s = s:sub(1, w)
    if pad then s = s .. string.rep(" ", w - #s) end
    local row = t.grid[y]
    t.grid[y] = row:sub(1, x) .. s .. row:sub(x + #s + 1)
    return #s
  end
  function t.width(s) return utf8.len(s) or #s end
  function t.cursor() end
  function t.refresh() end
  function t.beep() end
  function t.drain() return nil end
  function t.screen() local r = {} for y = 0, lines - 1 do r[#r + 1] = t.grid[y] end return table.concat(r, "\n") end
  t.erase()
  return t
end

H.test("open: the fused model, the globals, an FP32 map", function()
  wb.open(MODEL, {val_images = 500, calib_batches = 2})
  assert(wb.state.phase == "fp32" and #wb.state.rows == 8, #wb.state.rows)
  assert(m == wb.state.m and fp32 == wb.state.fp32 and data.val and wb == _G.wb and save_session)
  assert(wb.map_code(true) == "m:prepare{default = false}", wb.map_code(true))
  assert(wb.state.macs.conv2 == 14 * 14 * 32 * 16 * 9, wb.state.macs.conv2)
end)

H.test("set_precision / observer / granularity: the map and its Lua code", function()
  wb.set_precision("default", "int8")
  wb.set_precision("fc2", "fp16")
  wb.set_precision("fc1", "dynamic")
  wb.set_precision("conv.*", "w4a8")
  wb.set_observer("conv3", "entropy")
  wb.set_granularity({"conv1"}, "per_tensor")
  assert(wb.planned("conv3").prec == "w4a8" and wb.planned("conv3").obs == "entropy")
  assert(wb.planned("pool1").prec == "int8" and not wb.planned("pool1").own)
  local code = wb.map_code()
  assert(code:find("local w4a8 = qlab.qconfig.w4a8()", 1, true), code)
  assert(code:find("conv3 = w4a8_ent", 1, true) and code:find("fc1 = false", 1, true), code)
  -- the code is the map: run it on a fused clone, compare the plans
  local a = fp32:clone(); a:fuse()
  assert(load(code, "=map", "t", {m = a, qlab = qlab}))()
  local b = fp32:clone(); b:fuse(); b:prepare(wb.qconfig_map())
  local pa, pb = a:plan(), b:plan()
  for i = 1, #pa do
    assert(pa[i].mode == pb[i].mode and pa[i].act == pb[i].act and pa[i].weight == pb[i].weight, pa[i].name)
  end
  wb.set_precision("conv2", "keep")
  assert(wb.planned("conv2").prec == "int8")
  H.raises(function() wb.set_precision("conv1", "int3") end, "unknown precision")
  H.raises(function() wb.set_precision("nope", "int8") end, "matches no layer")
  H.raises(function() wb.set_precision("conv1", "dynamic") end, "linear and lstm")
end)

H.test("prepare, calibrate, convert, evaluate: every precision as planned", function()
  wb.prepare()
  assert(wb.state.phase == "prepared" and m:is_prepared())
  wb.calibrate(2)
  assert(said("calibrated on 2 batches"))
  wb.convert()
  local now = {}
  for _, r in ipairs(wb.state.rows) do now[r.name] = r.actual end
  assert(now.conv1 == "w4a8" and now.conv2 == "int8" and now.fc1 == "dyn8" and now.fc2 == "fp16", pretty.pretty(now))
  local r = wb.evaluate()
  assert(r.n == 500 and r.top1 > 50 and wb.state.fp32_result.top1 > 80, r.top1)
  assert(said("evaluate %(converted%): top%-1"))
  H.raises(function() wb.calibrate(2) end, "converted")
  wb.compare(1)
  assert(wb.state.sqnr.conv2 and wb.state.sqnr.conv2 > 10, tostring(wb.state.sqnr.conv2))
  wb.save(tmp .. "/q.qlm")
  assert(qlab.load(tmp .. "/q.qlm"):size_bytes() == m:size_bytes())
  wb.reset()
  assert(wb.state.phase == "fp32" and wb.planned("fc2").prec == "fp16")
end)

H.test("console: expressions, statements, errors with traceback, multi-line", function()
  local tui = fake_tui(24, 80)
  local app = workbench.new(wb, tui, {history = tmp .. "/hist"})
  wb.out = function(line, kind) app.console:push(line, kind) end
  local c = app.console
  assert(c:exec("1+1", "input", app))
  assert(c.lines[#c.lines].text == "2")
  assert(c:exec("local t = {a = 1, b = {2, 3}}; return t", "input", app))
  assert(c.lines[#c.lines].text == "{a = 1, b = {2, 3}}", c.lines[#c.lines].text)
  assert(not c:exec("error('boom')", "input", app))
  local log = {}
  for _, e in ipairs(c.lines) do log[#log + 1] = e.text end
  log = table.concat(log, "\n")
  assert(log:find("boom") and log:find("stack traceback"), log)
  -- an unfinished chunk waits for more
  c.input = "for i = 1, 2 do"; c:submit(app)
  assert(c.pending)
  c.input = "x_sum = (x_sum or 0) + i"; c:submit(app)
  c.input = "end"; c:submit(app)
  assert(not c.pending and x_sum == 3, tostring(x_sum))
  local h = history.new(tmp .. "/hist")
  assert(h.items[#h.items] == "for i = 1, 2 do\nx_sum = (x_sum or 0) + i\nend")
end)

H.test("completion: globals, fields, methods", function()
  local line, cur, cands = complete.complete("m:pre", 5)
  assert(line == "m:prepare" and cur == 9 and #cands == 2, line)
  line = complete.complete("qlab.qconfig.w4", 15)
  assert(line == "qlab.qconfig.w4a8", line)
  line = complete.complete("wb.set_pre", 10)
  assert(line == "wb.set_precision(", line)
  local _, _, none = complete.complete("nosuch.x", 8)
  assert(#none == 0)
end)

H.test("history: Up / Down, persisted", function()
  local p = tmp .. "/h2"
  local h = history.new(p)
  h:add("a = 1"); h:add("b = 2")
  assert(h:prev("typing") == "b = 2" and h:prev() == "a = 1" and h:prev() == "a = 1")
  assert(h:next() == "b = 2" and h:next() == "typing")
  assert(#history.new(p).items == 2)
end)

H.test("panes on a fake screen: 80x24, filter, sort, keys echoed, size message", function()
  wb.open(MODEL, {val_images = 500, calib_batches = 2})
  local tui = fake_tui(24, 80)
  local app = workbench.new(wb, tui, {history = tmp .. "/hist3"})
  wb.out = function(line, kind) app.console:push(line, kind) end
  app:draw()
  local s = tui.screen()
  assert(s:find("layers 8/8") and s:find("\nconv1 +conv2d +fp32") and s:find("small_cnn_fmnist.qlm"), s)
  app:on_key("j"); app:on_key("j")
  assert(app:selected().name == "conv2")
  app:on_key("4")
  app:draw()
  s = tui.screen()
  assert(s:find('> wb.set_precision%("conv2", "int8"%)') and s:find("\nconv2 +conv2d +int8%*"), s)
  app:on_key("/"); app:on_key("f"); app:on_key("c"); app:on_key("enter")
  assert(#app.view == 2 and app:selected().name == "fc1")
  app:on_key("*"); app:on_key("2")
  assert(wb.planned("fc1").prec == "fp16" and wb.planned("fc2").prec == "fp16")
  local echoed
  for _, e in ipairs(app.console.lines) do if e.kind == "code" then echoed = e.text end end
  assert(echoed == 'wb.set_precision("fc.*", "fp16")', echoed)   -- the filter as a map pattern
  app:on_key("esc")
  assert(#app.view == 8)
  app:on_key("s"); app:on_key("s")   -- name, then params
  assert(app.sort.key == "params" and app.view[1].name == "conv3", app.view[1].name)
  app:on_key("?")
  app:draw()
  assert(tui.screen():find("qlab workbench: keys"))
  app:on_key("x")   -- any key closes the help
  assert(not app.overlay)
  local small = fake_tui(15, 60)
  app.tui = small
  app:draw()
  assert(small.screen():find("at least 80x24"), small.screen())
  app.tui = tui
  assert(app:on_key("q") == app.BREAK)
end)

H.test("a saved session replays headless with the same top-1", function()
  wb.open(MODEL, {val_images = 500, calib_batches = 2})
  wb.session = {}
  local tui = fake_tui(40, 120)
  local app = workbench.new(wb, tui, {history = tmp .. "/hist4", session_path = tmp .. "/s.lua"})
  wb.out = function(line, kind) app.console:push(line, kind) end
  for _, k in ipairs{"j", "j", "5", "G", "6", "x"} do app:on_key(k) end
  assert(wb.state.phase == "converted" and wb.state.result, "x ran the workflow")
  app.console:exec("wb.state.result.top1", "input", app)
  app.console:exec("local k = 2; return k * 21", "input", app)
  app.console:exec("local m = nil", "input", app)   -- its own scope: m stays the model
  app.console:exec("wb.show(m:size_bytes() > 0)", "input", app)
  app:on_key("C-s")
  local top1 = string.format("%.2f", wb.state.result.top1)
  local bin = os.getenv("QLAB_TEST_BIN") or "./qlab"
  local p = io.popen(bin .. " --threads 1 --script " .. tmp .. "/s.lua 2>&1")
  local text = p:read("a")
  p:close()
  assert(text:find("evaluate (converted): top-1 " .. top1 .. " %", 1, true), text)
  assert(text:find("\n" .. tostring(wb.state.result.top1):gsub("%.", "%%.") .. "\n"), text)
  assert(text:find("\n42\ntrue\n", 1, true), text)
end)

H.done()
