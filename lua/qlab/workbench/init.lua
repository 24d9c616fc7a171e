-- The workbench: what the interface is (focus, selection, filter, sort,
-- layout, which pane gets a key), independent of curses; qlab.tui (src/tui)
-- only puts it on the terminal. Panes (one file each) draw from the state
-- of qlab.workbench.actions and answer keys with htop's flags
-- (HANDLED | REDRAW | BREAK). Entry point: require("qlab.workbench").main(path).
--
-- A pane is a table {draw = function(pane, app, rect) end,
--                    on_key = function(pane, app, key) -> flags | nil,
--                    on_mouse = function(pane, app, kind, y, x) -> flags | nil}
-- and app.panes lists them; a user script may add one (see docs/workbench.md).
local M = {}

local App = {}
App.__index = App
App.HANDLED, App.REDRAW, App.BREAK = 1, 2, 4

M.MIN_W, M.MIN_H = 80, 24

local GLYPHS = {
  utf8 = {v = "│", h = "─", bar = "█", empty = "░", up = "▲", down = "▼", dot = "·", arrow = "→", more = "…",
          tl = "┌", tr = "┐", bl = "└", br = "┘", mark = "●"},
  ascii = {v = "|", h = "-", bar = "#", empty = ".", up = "^", down = "v", dot = "-", arrow = "->", more = "~",
           tl = "+", tr = "+", bl = "+", br = "+", mark = "*"},
}
M.GLYPHS = GLYPHS

local SORTS = {"order", "name", "params", "macs", "sqnr", "drop", "share"}

function M.new(wb, tui, opts)
  opts = opts or {}
  local info = tui.info and tui.info() or {utf8 = false}
  local app = setmetatable({
    wb = wb, S = wb.state, tui = tui, g = info.utf8 and GLYPHS.utf8 or GLYPHS.ascii,
    focus = "table", sel = 1, top = 1, filter = "", sort = {key = "order", rev = false},
    session_path = opts.session_path or "qlab_session.lua", layout = {},
    report_dir = opts.report_dir or "qlab_report", topk = opts.topk or 3,
    keys = require "qlab.workbench.keys",
  }, App)
  app.console = require("qlab.workbench.console").new(wb, opts.history or require("qlab.workbench.history").default_path())
  local home = os.getenv("HOME")
  if opts.autosave ~= false then
    wb.autosave_path = opts.autosave or (home and home ~= "" and home .. "/.qlab_last_session.lua") or nil
  end
  app.panes = {
    status = require "qlab.workbench.status",
    layers = require "qlab.workbench.layers",
    detail = require "qlab.workbench.detail",
    console = app.console,
    footer = require "qlab.workbench.footer",
    help = require "qlab.workbench.help",
    -- the live views, drawn over the table and the detail pane (app.view_mode)
    calib = require "qlab.workbench.pane_calib",
    sens = require "qlab.workbench.pane_sens",
    weights = require "qlab.workbench.pane_weights",
    bench = require "qlab.workbench.pane_bench",
    qat = require "qlab.workbench.pane_qat",
  }
  app.order = {"status", "layers", "detail", "console", "footer"}
  app:update_view()
  return app
end

---------------------------------------------------------------------------
-- the view of the rows: filter, sort, selection (by name, so it survives both)

local function matches(row, f)
  if f == "" then return true end
  for _, s in ipairs{row.name, row.op} do
    local ok, hit = pcall(string.find, s, f)
    if not ok then hit = s:find(f, 1, true) end
    if hit then return true end
  end
  return false
end

local function sort_value(row, key)
  if key == "order" then return row.index end
  if key == "name" then return row.name end
  local v = row[key]
  if v == nil then return nil end
  return v
end

function App:update_view()
  local rows = self.S.rows or {}
  local sel_name = self.view and self.view[self.sel] and self.view[self.sel].name
  local view = {}
  for _, r in ipairs(rows) do if matches(r, self.filter) then view[#view + 1] = r end end
  local key, rev = self.sort.key, self.sort.rev
  if key ~= "order" then
    local desc = key ~= "name"   -- numbers: largest first
    if key == "sqnr" then desc = false end   -- SQNR: worst (lowest) first
    table.sort(view, function(a, b)
      local va, vb = sort_value(a, key), sort_value(b, key)
      if va == nil and vb == nil then return a.index < b.index end
      if va == nil then return false end
      if vb == nil then return true end
      if va == vb then return a.index < b.index end
      if desc ~= rev then return va > vb end
      return va < vb
    end)
  elseif rev then
    local n = #view
    for i = 1, n // 2 do view[i], view[n + 1 - i] = view[n + 1 - i], view[i] end
  end
  self.view = view
  self.sel = 1
  for i, r in ipairs(view) do if r.name == sel_name then self.sel = i end end
  self.version = self.S.version
end

function App:selected() return self.view[self.sel] end

-- selects a layer by name (clearing a filter that hides it)
function App:select_name(name)
  for pass = 1, 2 do
    for i, r in ipairs(self.view) do if r.name == name then self.sel = i return true end end
    if pass == 1 and self.filter ~= "" then self.filter = ""; self:update_view() end
  end
  return false
end

-- the live views (keys H, I, K, B, Q): one at a time over the table and the
-- detail pane; a job shows its own (jobs.view_of)
App.VIEWS = {calib = "calibration", sens = "sensitivity", weights = "weights", bench = "bench", qat = "QAT"}
function App:toggle_view(v)
  self.view_mode = self.view_mode ~= v and v or nil
  return self.REDRAW
end

function App:select(i)
  local n = #self.view
  if n == 0 then self.sel = 1 return end
  self.sel = math.max(1, math.min(n, i))
end

function App:next_sort()
  for i, k in ipairs(SORTS) do
    if k == self.sort.key then self.sort.key = SORTS[i % #SORTS + 1]; break end
  end
  self.sort.rev = false
  self:update_view()
end

function App:start_filter()
  self.filter_edit = {old = self.filter, text = self.filter}
end

function App:cycle_focus(step)
  local f = self.view_mode and {"table", "console"} or {"table", "detail", "console"}
  for i, v in ipairs(f) do
    if v == self.focus then self.focus = f[(i - 1 + step) % #f + 1]; return end
  end
  self.focus = "table"
end

-- Lua code naming the layers a key applies to: the selected one, or with
-- the `*` prefix every layer shown (the map's names only)
function App:target_code()
  local names = {}
  if self.prefix == "*" then
    local shown = {}
    for _, r in ipairs(self.view) do
      if r.base then names[#names + 1] = string.format("%q", r.name); shown[r.name] = true end
    end
    self.prefix = nil
    if #names == 0 then self.msg = "no layer of the map is shown" return nil end
    -- the filter as the anchored pattern the map takes, when it names exactly these layers
    if self.filter ~= "" then
      for _, pat in ipairs{self.filter .. ".*", ".*" .. self.filter .. ".*"} do
        local ok, same = pcall(function()
          local n = 0
          for _, b in ipairs(self.S.base) do
            local hit = b.name:match("^" .. pat .. "$") ~= nil
            if hit ~= (shown[b.name] == true) then return false end
            if hit then n = n + 1 end
          end
          return n == #names
        end)
        if ok and same then return string.format("%q", pat) end
      end
    end
    return "{" .. table.concat(names, ", ") .. "}"
  end
  local r = self:selected()
  if not r then return nil end
  if not r.base then self.msg = r.name .. " was inserted by convert: it has no precision of its own" return nil end
  return string.format("%q", r.name)
end

function App:quit()
  if self.S.dirty and not self.quit_armed then
    self.quit_armed = true
    self.msg = "m has unsaved changes: q again quits, W saves it"
    return self.REDRAW
  end
  return self.BREAK
end

---------------------------------------------------------------------------
-- running actions: echoed into the console, run there; the screen shows
-- the job and the engine's progress gauge meanwhile

local jobs = require "qlab.workbench.jobs"
M.jobs = jobs

function App:run(codes, how)
  if self.job then   -- a key typed from inside a job's redraw: never two at once
    self.msg = "a job is running (" .. self.job.code .. "): Esc cancels it"
    return
  end
  for _, code in ipairs(codes) do
    local ok = jobs.run(self, code, how)
    self:drain()
    self.wb.adopt_globals()
    if how == "input" then self.wb.refresh() end   -- typed code may have changed m in place
    if not ok then break end
  end
  if self.S.version ~= self.version then self:update_view() end
end

-- the engine's progress callback: true cancels
function App:progress(done, total, label) return jobs.progress(self, done, total, label) end

-- output written to fd 1 / 2 (io.write, C code) while the screen is ours
function App:drain()
  local s = self.tui.drain()
  if not s then return false end
  s = s:gsub("\r[^\n]*\r", "\r"):gsub("[^\n]*\r", "")
  if s:sub(-1) == "\n" then s = s:sub(1, -2) end
  if s ~= "" then self.console:push(s, "output") end
  return true
end

---------------------------------------------------------------------------
-- layout and drawing

function App:compute_layout(lines, cols)
  local L = {lines = lines, cols = cols}
  L.small = lines < M.MIN_H or cols < M.MIN_W
  local sh = 2
  local ch = math.max(7, lines * 3 // 10)
  L.status = {y = 0, x = 0, h = sh, w = cols}
  L.footer = {y = lines - 1, x = 0, h = 1, w = cols}
  L.console = {y = lines - 1 - ch, x = 0, h = ch, w = cols}
  local mh = lines - sh - 1 - ch
  local dw = math.max(27, math.min(44, cols // 4))
  if self.view_mode then
    L.view = {y = sh, x = 0, h = mh, w = cols}
  else
    L.layers = {y = sh, x = 0, h = mh, w = cols - dw}
    L.detail = {y = sh, x = cols - dw, h = mh, w = dw}
  end
  self.layout = L
  return L
end

function App:draw()
  local tui = self.tui
  local lines, cols = tui.size()
  local L = self:compute_layout(lines, cols)
  if self.S.version ~= self.version then self:update_view() end
  tui.erase()
  self.cursor = nil
  if L.small then
    local msg = string.format("qlab needs a terminal of at least %dx%d", M.MIN_W, M.MIN_H)
    local now = string.format("this one is %dx%d: make it larger (q quits)", cols, lines)
    local y = math.max(0, lines // 2 - 1)
    tui.text(y, math.max(0, (cols - #msg) // 2), msg, "warn")
    tui.text(y + 1, math.max(0, (cols - #now) // 2), now, "normal")
  else
    for _, name in ipairs(self.order) do
      local p = self.panes[name]
      local hidden = L.view and (name == "layers" or name == "detail")
      local rect = L[name] or (not hidden and p and type(p.rect) == "function" and p:rect(self, L))   -- a user's pane says where it goes
      if p and p.draw and rect then p:draw(self, rect) end
    end
    if L.view then self.panes[self.view_mode]:draw(self, L.view) end
    if self.overlay then self.panes[self.overlay]:draw(self, {y = 0, x = 0, h = lines, w = cols}) end
  end
  if self.cursor and not self.overlay and not L.small then tui.cursor(self.cursor[1], self.cursor[2])
  else tui.cursor() end
  tui.refresh()
end

---------------------------------------------------------------------------
-- events

local function key_allowed_during_filter(key) return utf8.len(key) == 1 and not key:match("^%c$") end

function App:on_filter_key(key)
  local fe = self.filter_edit
  if key == "enter" then self.filter_edit = nil
  elseif key == "esc" then self.filter_edit = nil; self.filter = ""
  elseif key == "backspace" then
    local t = fe.text
    local off = utf8.offset(t, -1)
    fe.text = off and t:sub(1, off - 1) or ""
  elseif key == "C-u" then fe.text = ""
  elseif key_allowed_during_filter(key) then fe.text = fe.text .. key
  elseif key == "up" or key == "down" then
    self.filter_edit = nil
    return nil
  else return self.HANDLED end
  if self.filter_edit then self.filter = fe.text end
  self:update_view()
  return self.REDRAW
end

function App:on_key(key)
  local alt = key:match("^M%-(.+)$")
  if alt and not self.keys.by_key[key] then   -- Esc then a key, typed fast: both
    local f = self:on_key("esc")
    if f & self.BREAK ~= 0 then return f end
    return f | self:on_key(alt)
  end
  if self.layout.small then
    if key == "q" or key == "C-c" then return self:quit() end
    return self.HANDLED
  end
  if key ~= "q" and key ~= "C-c" then self.quit_armed = false end
  self.msg = nil
  if self.overlay then
    local f = self.panes[self.overlay]:on_key(self, key)
    if f then return f end
  end
  if self.filter_edit then
    local f = self:on_filter_key(key)
    if f then return f end
  end
  if self.focus == "console" then
    local f = self.console:on_key(self, key)
    if f then return f end
  elseif self.focus == "detail" then
    local f = self.panes.detail:on_key(self, key)
    if f then return f end
  end
  if self.focus ~= "console" then
    if self.view_mode then
      local v = self.panes[self.view_mode]
      local f = v.on_key and v:on_key(self, key)
      if f then return f end
      if key == "esc" and not self.prefix then self.view_mode = nil return self.REDRAW end
    end
    local f = self.panes.layers:on_key(self, key)
    if f then return f end
  end
  local e = self.keys.by_key[key]
  if e and e.code then
    local codes = e.code(self, key)
    if self.prefix and key ~= "*" and not (key:match("^%d$") or key == "o" or key == "w") then self.prefix = nil end
    if codes then self:run(codes, "key") end
    return self.REDRAW
  elseif e and e.ui then
    return e.ui(self, key)
  end
  if self.prefix then self.prefix = nil return self.REDRAW end
  if key == "esc" and self.filter ~= "" then
    self.filter = ""
    self:update_view()
    return self.REDRAW
  end
  return self.HANDLED
end

function App:on_mouse(kind, y, x)
  local L = self.layout
  if L.small or self.overlay then return self.HANDLED end
  for _, name in ipairs{"layers", "detail", "console", "view"} do
    local r = L[name]
    if r and y >= r.y and y < r.y + r.h and x >= r.x and x < r.x + r.w then
      local p = self.panes[name == "view" and self.view_mode or name]
      if p.on_mouse then return p:on_mouse(self, kind, y - r.y, x - r.x) or self.REDRAW end
    end
  end
  return self.HANDLED
end

function App:on_event(ev, a, b, c)
  if ev == "tick" then
    return self:drain() and self.REDRAW or self.HANDLED
  elseif ev == "key" then return self:on_key(a)
  elseif ev == "mouse" then return self:on_mouse(a, b, c)
  elseif ev == "resize" then return self.REDRAW
  end
  return self.HANDLED
end

---------------------------------------------------------------------------

-- The workbench on a model file: the model opens before the screen does, so
-- a bad path is a plain error message; the terminal is restored however
-- this returns (main.c closes it too, after an error).
-- opts (or a global WORKBENCH table, e.g. from qlab -e 'WORKBENCH = {...}'):
-- val_images, calib_batch, calib_batches, eval_batch (wb.open), history
-- (file), session_path (Ctrl-S), autosave (the log rewritten after every step;
-- default $HOME/.qlab_last_session.lua, false for none), report_dir (what P
-- writes, qlab_report), topk (the k of T, 3).
function M.main(path, opts)
  opts = opts or rawget(_G, "WORKBENCH") or {}
  local wb = require "qlab.workbench.actions"
  local tui = require "qlab.tui"
  wb.open(path or wb.default_model(), opts)
  local old_print, old_out = print, wb.out
  local ok, err = tui.open()
  if not ok then error("the workbench cannot start: " .. tostring(err), 0) end
  -- closed on every way out, errors included (their traceback is taken
  -- before, at the error, by the caller's message handler)
  local _ <close> = setmetatable({}, {__close = function()
    tui.on_progress(nil)
    tui.close()
    print, wb.out = old_print, old_out
  end})
  local app = M.new(wb, tui, opts)
  if opts.setup then opts.setup(app) end   -- a user's own panes and keys
  print = function(...)
    local t = table.pack(...)
    for i = 1, t.n do t[i] = tostring(t[i]) end
    app.console:push(table.concat(t, "\t", 1, t.n), "output")
  end
  wb.out = function(line, kind) app.console:push(line, kind) end
  tui.on_progress(function(done, total, label) return app:progress(done, total, label) end)
  app.console:push(string.format("-- qlab workbench on %s: ? lists the keys, : types Lua here (m, fp32, data, qlab, wb)",
                                 wb.state.path), "comment")
  -- a bug in a pane or a key handler is logged; the workbench lives on
  local function guarded(f)
    return function(...)
      local res = table.pack(xpcall(f, debug.traceback, ...))
      if res[1] then return table.unpack(res, 2, res.n) end
      if res[2] ~= app.last_error then app.console:push("workbench: " .. tostring(res[2]), "error") end
      app.last_error = res[2]
      return app.REDRAW
    end
  end
  local on_event = guarded(function(ev, a, b, c) return app:on_event(ev, a, b, c) end)
  local draw = guarded(function() app:draw() end)
  tui.loop(on_event, function()
    if draw() == app.REDRAW and app.last_error then   -- the panes cannot draw: say so, plainly
      tui.erase()
      tui.text(0, 0, "the workbench cannot draw (q quits): " .. tostring(app.last_error):match("^[^\n]*"), "error")
      tui.refresh()
    end
  end, 250)
end


M.App = App
return M
