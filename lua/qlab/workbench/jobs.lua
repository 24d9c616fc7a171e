-- Jobs: one Lua call of the workbench at a time (a key's action or a typed
-- line), with the screen alive while it runs. The engine's progress
-- callback (tui.on_progress) and the actions' live callbacks (wb.on_live:
-- sensitivity node by node, greedy steps, bench variants) update the gauge
-- (done / total, rate, ETA), redraw and read the keys that came meanwhile:
-- Esc cancels, a resize redraws, any other key is answered "a job is
-- running". Lua-only loops redraw from a count hook, which also raises the
-- cancel where no callback can (a pcall inside bench goes on otherwise).
--
-- A cancelled job leaves the state as it was: before every job the model
-- is cloned (observers included: a cancelled calibration leaves no
-- half-collected statistics, a cancelled convert the prepared model) with
-- the fields of wb.state a job changes, and put back on cancel.
local qlab = require "qlab"

local M = {}

M.CANCELLED = "cancelled (Esc): the state is as it was before the job"

-- the fields of wb.state an action may change (S.m is cloned apart)
local FIELDS = {"phase", "calibrated", "range", "result", "result_phase", "latency", "fp32_latency", "sqnr",
                "sqnr_output", "share", "sens", "sens_rank", "sens_info", "dirty", "calib_batches", "map",
                "fp32_result", "mp", "bench", "saved_path", "saved", "report_path", "qat"}

local function copy(v, depth)
  if type(v) ~= "table" or getmetatable(v) or depth == 0 then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x, depth - 1) end
  return t
end

-- What wb.state is now, enough to put it back (wb.state's own tables are
-- copied three levels deep: the map, ranges, drops).
function M.snapshot(S)
  local snap = {m = S.m and S.m:clone(), fields = {}}
  for _, k in ipairs(FIELDS) do snap.fields[k] = copy(S[k], 3) end
  if S.data then snap.calib = S.data.calib end
  return snap
end

function M.restore(wb, snap)
  local S = wb.state
  for _, k in ipairs(FIELDS) do S[k] = snap.fields[k] end
  if snap.calib then S.data.calib = snap.calib end
  if snap.m then
    S.m = snap.m
    _G.m = snap.m
  end
  S.version = S.version + 1
  wb.refresh()
end

---------------------------------------------------------------------------
-- the running job

local function now() return qlab.clock() end

-- Reads every pending event: Esc cancels, other keys say so; resizes are
-- taken by the next draw (tui.size is current).
local function poll(app, job)
  local tui = app.tui
  if not tui.poll then return end
  for _ = 1, 64 do
    local kind, a = tui.poll()
    if not kind then break end
    if kind == "key" then
      if a == "esc" or a == "C-c" then
        job.cancel = true
        app.msg = "cancelling " .. job.code .. " ..."
      else
        app.msg = "a job is running (" .. job.code .. "): Esc cancels it"
      end
    end
  end
end

local function redraw(app, job)
  local t = now()
  if t - (job.drawn or 0) < 0.05 then return end
  job.drawn = t
  poll(app, job)
  pcall(app.draw, app)
end

-- a gauge's numbers: done / total of the named counter, its rate and ETA
local function advance(g, done, total, label)
  local t = now()
  if not g.t0 or g.label ~= label or done < (g.done or 0) then
    g.t0, g.d0 = t, done
  end
  g.done, g.total, g.label = done, total, label
  local dt = t - g.t0
  if dt > 0.2 and done > g.d0 then
    g.rate = (done - g.d0) / dt
    g.eta = (total - done) / g.rate
  elseif done ~= g.d0 then g.rate, g.eta = nil, nil end
end

-- engine progress (calibration batches, evaluation batches, timing runs)
function M.progress(app, done, total, label)
  local job = app.job
  if not job then return false end
  job.inner = job.inner or {}
  advance(job.inner, done, total, label)
  redraw(app, job)
  return job.cancel == true
end

-- an action's live step (sensitivity nodes, greedy steps, bench variants)
function M.live(app, what, done, total)
  local job = app.job
  if not job then return true end
  job.outer = job.outer or {}
  advance(job.outer, done, total, what)
  job.inner = nil
  job.drawn = 0
  redraw(app, job)
  return not job.cancel
end

-- The view a job's code shows while it runs (the calibration pane for a
-- calibration, ...), or nil.
local VIEWS = {{"wb%.calibrate", "calib"}, {"qlab%.calibrate", "calib"}, {"wb%.sensitivity", "sens"},
               {"wb%.mixed_precision", "sens"}, {"wb%.bench", "bench"}, {"wb%.qat", "qat"}}
M.VIEW_KEYS = {calib = "H", sens = "I", weights = "K", bench = "B", qat = "Q"}
M.VIEW_NAMES = {calib = "calibration", sens = "sensitivity", weights = "weights", bench = "bench", qat = "QAT"}
function M.view_of(code)
  for _, v in ipairs(VIEWS) do if code:find(v[1]) then return v[2] end end
  return nil
end

-- Runs one chunk of code as the job; returns ok (false when it failed or
-- was cancelled) and whether it was cancelled.
function M.run(app, code, how)
  local wb = app.wb
  local snap = M.snapshot(wb.state)
  local job = {code = code, t0 = now()}
  app.job = job
  -- the job's own view while it runs (the calibration histogram, the
  -- ranking as it fills), then the view the user had
  local prev, jv = app.view_mode, M.view_of(code)
  if jv then app.view_mode = jv end
  pcall(app.draw, app)
  local last = now()
  debug.sethook(function()
    if job.cancel then error("cancelled (Esc)", 0) end
    local t = now()
    if t - last > 0.1 then last = t; redraw(app, job) end
  end, "", 1000)
  wb.on_live = function(what, done, total) return M.live(app, what, done, total) end
  local ok = app.console:exec(code, how or "key", app)
  debug.sethook()
  wb.on_live = nil
  app.job = nil
  local cancelled = job.cancel == true
  if jv and app.view_mode == jv and prev ~= jv then
    app.view_mode = prev
    app.msg = string.format("%s shows the %s view again", M.VIEW_KEYS[jv], M.VIEW_NAMES[jv])
  end
  if cancelled then
    M.restore(wb, snap)
    app.console:push("-- " .. M.CANCELLED, "comment")
    app.msg = "cancelled: m is as it was before " .. code
  else
    snap.m = nil   -- the clone goes with the snapshot
  end
  collectgarbage()
  return ok and not cancelled, cancelled
end

-- The gauge's text: the job, its counter, rate and ETA (w columns at most).
function M.gauge_text(app, w)
  local j = app.job
  local g = app.g
  local s = string.format("%s %.1f s", j.code, now() - j.t0)
  if #s > w // 2 then s = s:sub(1, w // 2 - 1) .. g.more end
  local parts = {}
  for _, c in ipairs{j.outer or false, j.inner or false} do
    if c and c.total and c.total > 0 then
      local p = string.format("%s %d/%d", c.label or "", c.done, c.total)
      if c.rate then
        p = p .. string.format(" %.3g/s ETA %.0f s", c.rate, math.max(0, c.eta))
      end
      parts[#parts + 1] = p
    end
  end
  local main = j.outer or j.inner
  if main and main.total and main.total > 0 then
    local text = table.concat(parts, " " .. g.dot .. " ")
    local bw = math.max(8, math.min(30, w - #s - #text - 20))
    local fill = math.floor(bw * main.done / main.total + 0.5)
    s = string.format("%s [%s%s] %s", s, g.bar:rep(fill), g.empty:rep(bw - fill), text)
  else
    s = s .. " ..."
  end
  return s .. "  " .. g.dot .. " Esc cancels"
end

return M
