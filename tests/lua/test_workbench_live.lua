-- The workbench's live views without a terminal: the calibration pane's
-- range table against the observers' own ranges, observers re-deriving
-- their range from the same statistics, the weights pane's numbers against
-- qlab.weight_stats, jobs (snapshot and restore, a cancel through the live
-- callback, the gauge), the sensitivity ranking filled node by node, and
-- the panes drawn on a fake screen. tests/sh/test_tui_jobs.sh drives the
-- real terminal.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"
local wb = require "qlab.workbench.actions"
local workbench = require "qlab.workbench"
local inspect = require "qlab.workbench.inspect"
local jobs = require "qlab.workbench.jobs"

local tmp = H.tmpdir()
local MODEL = "data/models/small_cnn_fmnist.qlm"
local out = {}
wb.out = function(line) out[#out + 1] = line end
local function said(pat)
  for _, l in ipairs(out) do if l:find(pat) then return l end end
  return nil
end

-- a screen of lines x cols that tui.text writes into; poll() hands out `events`
local function fake_tui(lines, cols, events)
  local t = {grid = {}, events = events or {}}
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
  function t.poll()
    local e = table.remove(t.events, 1)
    if e then return "key", e end
    return nil
  end
  function t.screen() local r = {} for y = 0, lines - 1 do r[#r + 1] = t.grid[y] end return table.concat(r, "\n") end
  t.erase()
  return t
end

local function close(a, b) return math.abs(a - b) <= 1e-6 * math.max(1, math.abs(a), math.abs(b)) end

H.test("range table of a known histogram: every row is the observer's own range for that method", function()
  local vals = {}
  for i = 1, 4000 do vals[i] = ((i * 37) % 1000) / 100 - 2 end   -- -2 .. 8, uniform
  vals[4001] = 40                                                -- one outlier
  local o = qlab.observer.histogram{bins = 2048}
  o:observe(qlab.tensor(vals))
  local v = inspect.ranges(o, 64)
  local mn, mx = o:minmax()
  assert(v.min == mn and v.max == mx and close(v.max, 40), v.max)
  local lo, hi = o:range()
  assert(v.lo == lo and v.hi == hi and v.kind == "histogram")
  assert(#v.table == 6, #v.table)
  for _, r in ipairs(v.table) do
    local pct = r.method:match("percentile (.+)")
    local c = o:as(r.kind, pct and {percentile = tonumber(pct)} or nil)
    local a, b = c:range()
    assert(r.lo == a and r.hi == b, r.method)
    local mse = o:range_error(a, b)
    assert(r.mse == mse, r.method)
  end
  assert(v.table[1].method == "minmax" and v.table[1].clipped == 0 and close(v.table[1].hi, 40))
  -- the outlier is what percentile 99.9 clips: 1 value in 4001, about 0.025 %
  local p999 = v.table[2]
  assert(p999.hi < 10 and p999.clipped > 0 and p999.clipped < 0.002, p999.hi .. " " .. p999.clipped)
  -- 64 columns keep the mass of 2048 bins
  local counts = o:histogram()
  local a, b = 0, 0
  for _, c in ipairs(counts) do a = a + c end
  for _, c in ipairs(v.counts) do b = b + c end
  assert(#v.counts == 64 and close(a, b) and close(a, 4001), a .. " " .. b)
  -- more columns than bins: every column shows its bin
  local wide = inspect.rebin({1, 0, 3}, 6)
  assert(#wide == 6 and wide[1] == 1 and wide[2] == 1 and wide[3] == 0 and wide[6] == 3)
end)

H.test("switching an observer re-derives the range from the same statistics, nothing recalibrated", function()
  wb.open(MODEL, {val_images = 300, calib_batches = 2})
  wb.set_precision("default", "int8")
  wb.prepare()
  wb.calibrate(2)
  local o = m:observer("conv2")
  local n = o:count()
  local elo, ehi = o:as("entropy"):range()
  wb.set_observer("conv2", "entropy")
  local now = m:observer("conv2")
  local lo, hi = now:range()
  assert(now:count() == n and now:options().kind == "entropy", now:options().kind)
  assert(lo == elo and hi == ehi and hi < select(2, o:range()), hi)
  assert(said("re%-derived from the same statistics"), "said so")
  assert(wb.state.calibrated == 2, wb.state.calibrated)
  local v = wb.ranges("conv2", 40)
  assert(v.kind == "entropy" and v.hi == ehi)
  -- the row the table marks as the layer's now
  local chosen
  for _, r in ipairs(v.table) do if r.kind == "entropy" then chosen = r end end
  assert(chosen.lo == v.lo and chosen.hi == v.hi)
  -- percentile: its own row is marked, though the observer keeps 99.99 as a float32
  wb.set_observer("conv2", "percentile")
  local marked = {}
  for _, r in ipairs(wb.ranges("conv2", 40).table) do if r.chosen then marked[#marked + 1] = r.method end end
  assert(#marked == 1 and marked[1] == "percentile 99.99", table.concat(marked, ","))
  assert(m:observer("conv2"):count() == n)
  wb.set_observer("conv2", "entropy")
  -- a layer planned FP32 keeps its map entry only
  wb.set_precision("fc2", "fp32")
  wb.set_observer("fc2", "mse")
  assert(wb.planned("fc2").obs == "mse")
end)

H.test("weights: per-channel min / max and the cost of each granularity are qlab.weight_stats'", function()
  local f = fp32:clone(); f:fuse()
  local s = qlab.weight_stats(f:param("conv2.weight"), {bits = 8})
  local s4 = qlab.weight_stats(f:param("conv2.weight"), {bits = 4})
  local v = wb.weights("conv2", 10)
  assert(v.channels == 32 and #v.cols == 10, #v.cols)
  assert(v.bits8.sqnr_per_channel_db == s.sqnr_per_channel_db and v.bits8.sqnr_per_tensor_db == s.sqnr_per_tensor_db)
  assert(v.bits4.sqnr_per_channel_db == s4.sqnr_per_channel_db)
  local lo, hi = math.huge, -math.huge
  for c = 1, 32 do lo = math.min(lo, s.min[c]); hi = math.max(hi, s.max[c]) end
  assert(v.lo == lo and v.hi == hi)
  local covered, a, b = 0, math.huge, -math.huge
  for _, c in ipairs(v.cols) do
    covered = covered + c.last - c.first + 1
    a, b = math.min(a, c.min), math.max(b, c.max)
  end
  assert(covered == 32 and a == lo and b == hi, covered)
  assert(wb.weights("pool1", 10) == nil, "no weights on a pool")
end)

H.test("jobs: a snapshot puts back the model (observers included) and the state", function()
  local n0 = m:observer("conv1"):count()
  local lo0, hi0 = m:observer("conv1"):range()
  local snap = jobs.snapshot(wb.state)
  wb.calibrate(3)
  assert(m:observer("conv1"):count() == n0 + 3 and wb.state.calibrated == 5)
  jobs.restore(wb, snap)
  local lo, hi = m:observer("conv1"):range()
  assert(m:observer("conv1"):count() == n0 and lo == lo0 and hi == hi0)
  assert(wb.state.calibrated == 2 and wb.state.phase == "calibrated" and m == wb.state.m)
  -- a converted model goes back to the prepared one
  snap = jobs.snapshot(wb.state)
  wb.convert()
  assert(wb.state.phase == "converted" and not m:is_prepared())
  jobs.restore(wb, snap)
  assert(wb.state.phase == "calibrated" and m:is_prepared() and m:observer("conv1"):count() == n0)
end)

H.test("sensitivity fills the ranking node by node; a false from the live callback stops it", function()
  local seen = {}
  wb.on_live = function(what, done, total)
    seen[#seen + 1] = {what, done, total, #wb.state.sens_rank}
    return done < 2
  end
  local rank = wb.sensitivity{images = 250, metric = "sqnr"}
  wb.on_live = nil
  assert(#seen == 2 and seen[1][2] == 1 and seen[1][3] == 5 and seen[1][4] == 1 and seen[2][4] == 2,
         #seen)
  assert(#rank == 2 and #wb.state.sens_rank == 2 and wb.state.sens_info.cancelled == true)
  -- all-but-one, another level: ranked by the SQNR won back
  local ab = wb.sensitivity{images = 250, metric = "sqnr", mode = "all_but_one", level = "w4a8"}
  assert(#ab == 5 and wb.state.sens_info.level == "w4a8" and wb.state.sens_info.mode == "all_but_one")
  for i = 2, #ab do assert(wb.sens_value(ab[i - 1], wb.state.sens_info) >= wb.sens_value(ab[i], wb.state.sens_info)) end
  assert(select(2, wb.sens_value(ab[1], wb.state.sens_info)):find("dB"))
  wb.sensitivity{images = 250, metric = "sqnr"}
  assert(#wb.state.sens_rank == 5)
  local names = wb.keep_sensitive(2)
  assert(#names == 2 and wb.planned(names[1]).prec == "fp32" and wb.planned(names[2]).prec == "fp32")
  -- the two with the lowest logits SQNR
  local sorted = {}
  for _, e in ipairs(wb.state.sens_rank) do sorted[#sorted + 1] = e end
  table.sort(sorted, function(a, b) return a.sqnr_db < b.sqnr_db end)
  assert(names[1] == sorted[1].name and names[2] == sorted[2].name, names[1] .. " " .. sorted[1].name)
end)

H.test("the ranking's order: top-1 drop, or the logits' noise when no layer costs top-1", function()
  local info = {metric = "top1", mode = "single"}
  local rank = {{name = "fc2", drop = 0, sqnr_db = 47}, {name = "conv1", drop = -0.1, sqnr_db = 38},
                {name = "conv2", drop = -0.3, sqnr_db = 37}}
  local order, _, by_noise = wb.sens_order(rank, info)
  assert(by_noise and order[1].name == "conv2" and order[2].name == "conv1" and order[3].name == "fc2")
  rank[3].drop = 0.2
  order, _, by_noise = wb.sens_order(rank, info)
  assert(not by_noise and order[1].name == "conv2" and order[2].name == "fc2" and order[3].name == "conv1")
end)

H.test("a job cancelled with Esc (from its live callback) leaves the state as before", function()
  local tui = fake_tui(30, 100, {})
  local app = workbench.new(wb, tui, {history = tmp .. "/h1", autosave = false})
  wb.out = function(line, kind) app.console:push(line, kind) end
  local function names()
    local t = {}
    for _, e in ipairs(wb.state.sens_rank) do t[#t + 1] = e.name .. string.format(" %.6f", e.sqnr_db) end
    return table.concat(t, ",")
  end
  local before = names()
  assert(#wb.state.sens_rank == 5)
  local m0 = wb.state.m
  -- Esc arrives while the first node is measured
  tui.events = {"x", "esc"}
  local ok, cancelled = jobs.run(app, 'wb.sensitivity{images = 250, metric = "sqnr"}', "key")
  wb.out = function(line) out[#out + 1] = line end
  assert(not ok and cancelled)
  assert(names() == before and #wb.state.sens_rank == 5, "the ranking is the one before: " .. names())
  assert(wb.state.m ~= m0 and wb.state.m:observer("conv1"):count() == m0:observer("conv1"):count())
  assert(app.msg:find("cancelled"), app.msg)
  local log = {}
  for _, e in ipairs(app.console.lines) do log[#log + 1] = e.text end
  log = table.concat(log, "\n")
  assert(log:find(jobs.CANCELLED, 1, true), log)
  assert(not app.job and app.view_mode == nil, "the job's view closed")
end)

H.test("the gauge: counter, rate, ETA and Esc", function()
  local app = {g = workbench.GLYPHS.ascii, job = {code = "wb.calibrate(10)", t0 = qlab.clock()}}
  app.job.inner = {done = 3, total = 10, label = "calibrating", rate = 5, eta = 1.4}
  local s = jobs.gauge_text(app, 120)
  assert(s:find("calibrating 3/10", 1, true) and s:find("5/s ETA 1 s", 1, true) and s:find("Esc cancels"), s)
  assert(s:find("[###", 1, true), s)
  assert(jobs.view_of("wb.calibrate(4)") == "calib" and jobs.view_of("wb.sensitivity()") == "sens"
         and jobs.view_of("wb.bench()") == "bench" and jobs.view_of("wb.evaluate()") == nil)
end)

H.test("panes on a fake screen: calibration, sensitivity, weights, bench", function()
  local tui = fake_tui(30, 100)
  local app = workbench.new(wb, tui, {history = tmp .. "/h2", autosave = false})
  app:select_name("conv2")
  app.view_mode = "calib"
  app:draw()
  local s = tui.screen()
  assert(s:find("calibration %- conv2") and s:find("entropy observer, 2 batches seen"), s)
  assert(s:find("minmax") and s:find("pct 99.99") and s:find("%* entropy"), s)
  assert(s:find("%[ %] entropy range 0%.%.") and s:find("%[%-%-%-"), s)
  app.view_mode = "sens"
  app:draw()
  s = tui.screen()
  assert(s:find("sensitivity") and s:find("5/5 measured") and s:find("\nconv%d +#") , s)
  -- a bar selects its layer
  app.panes.sens:on_key(app, "home")
  assert(app:selected().name == app.panes.sens.list[1].name)
  app.panes.sens:on_key(app, "j")
  assert(app:selected().name == app.panes.sens.list[2].name)
  app:select_name("conv3")
  app.view_mode = "weights"
  app:draw()
  s = tui.screen()
  assert(s:find("weights %- conv3") and s:find("64 output channels") and s:find("per%-channel +%d+%.%d dB"), s)
  app.view_mode = "bench"
  app:draw()
  assert(tui.screen():find("no bench yet"))
end)

H.test("QAT: the loss of every batch recorded as it trains, then m is the converted model", function()
  local calls = 0
  wb.on_live = function(what, done, total) calls = calls + 1; assert(what == "training" and total == 12) return true end
  local q = wb.qat{batches = 12, batch = 32}
  wb.on_live = nil
  assert(#q.losses == 12 and calls == 12 and #q.epochs == 1 and not q.running)
  for _, l in ipairs(q.losses) do assert(l > 0 and l < 10, l) end
  assert(wb.state.phase == "converted" and wb.state.m == m and not m:is_prepared())
  local tui = fake_tui(30, 100)
  local app = workbench.new(wb, tui, {history = tmp .. "/h4", autosave = false})
  app.view_mode = "qat"
  app:draw()
  local s = tui.screen()
  assert(s:find("default_qat, 12/12 batches") and s:find("loss per batch") and s:find("m is the converted QAT model"), s)
  wb.prepare()
  wb.calibrate(2)
end)

H.test("bench over the session's variants, then the report", function()
  wb.save(tmp .. "/saved.qlm")
  local suite = wb.bench{images = 250}
  assert(#suite.variants == 3 and suite.variants[1].name == "fp32" and suite.variants[3].name == "saved", #suite.variants)
  for _, v in ipairs(suite.variants) do assert(v.status == "ok", v.name .. " " .. tostring(v.error)) end
  wb.report(tmp .. "/report")
  local f = io.open(tmp .. "/report/report.html")
  assert(f, "report.html written"); f:close()
  assert(said("report written: " .. tmp:gsub("%p", "%%%0") .. "/report/report.html"))
  local tui = fake_tui(30, 100)
  local app = workbench.new(wb, tui, {history = tmp .. "/h3", autosave = false})
  app.view_mode = "bench"
  app:draw()
  local s = tui.screen()
  assert(s:find("F fp32") and s:find("C current %(calibrated%)") and s:find("1 saved") and s:find("front:"), s)
end)

H.done()
