-- The console pane: a Lua REPL on the state the other panes draw (m, fp32,
-- data, qlab, wb), as lua.c behaves: an expression's values are printed
-- (tables pretty-printed), an unfinished chunk continues on the next line,
-- an error shows its traceback and the workbench lives on. Its log is the
-- session: code that ran (typed, or echoed from a key), output as comments.
local pretty = require "qlab.workbench.pretty"
local history = require "qlab.workbench.history"
local complete = require "qlab.workbench.complete"

local M = {}
local Console = {}
Console.__index = Console

local MAX_LINES = 5000
-- kinds saved in the session (wb.session_text) and their styles
local style_of = {code = "input", code_err = "input", output = "normal", code_out = "bold", comment = "comment",
                  error = "error", info = "dim", meta = "echo"}

function M.new(wb, hist_path)
  return setmetatable({wb = wb, lines = {}, input = "", cur = 0, pending = nil, scroll = 0,
                       hist = history.new(hist_path), title = "console"}, Console)
end

-- one log line (text may hold newlines: one entry each); returns the first entry
function Console:push(text, kind, opts)
  kind = kind or "output"
  local first
  text = tostring(text):gsub("\r", "")
  for line in (text .. "\n"):gmatch("(.-)\n") do
    local e = {text = line:gsub("\t", "  "), kind = kind, style = (opts and opts.style) or style_of[kind] or "normal",
               prefix = opts and opts.prefix}
    if opts then opts.prefix = opts.prefix and ">> " or nil end
    self.lines[#self.lines + 1] = e
    if kind ~= "info" then self.wb.session[#self.wb.session + 1] = e end
    first = first or e
  end
  while #self.lines > MAX_LINES do table.remove(self.lines, 1) end
  if self.scroll > 0 then self.scroll = self.scroll + 1 end
  return first
end

local function traceback(e)
  debug.sethook()   -- a job's hook (jobs.lua) lives only as long as its chunk runs
  local msg = type(e) == "string" and e or (pretty.pretty(e))
  local tb = debug.traceback(msg, 2)
  local keep = {}
  for line in (tb .. "\n"):gmatch("(.-)\n") do
    if line:find("in function 'xpcall'", 1, true) or line:find("workbench/console.lua", 1, true) then break end
    if not line:find("in upvalue 'chunk'", 1, true) then keep[#keep + 1] = line end   -- the chunk's wrapper (exec)
  end
  return table.concat(keep, "\n")
end

-- Runs a chunk; how = "key" (an echoed action, run as a statement) or
-- "input" (typed: an expression's values are printed). Returns ok.
function Console:exec(code, how, app)
  local entries = {}
  local opts = {prefix = "> ", style = how == "key" and "echo" or "input"}
  for line in (code .. "\n"):gmatch("(.-)\n") do
    local e = self:push(line, "code", opts)
    entries[#entries + 1] = e
  end
  local meta = code:match("^%s*save_session%s*%(") ~= nil   -- not replayed: it would rewrite the replayed file
  if meta then for _, e in ipairs(entries) do e.kind = "meta" end end
  local fn, err, is_expr
  if how ~= "key" then
    fn = load("return " .. code, "=console", "t")
    is_expr = fn ~= nil
  end
  if not fn then fn, err = load(code, "=console", "t") end
  local function failed(msg)
    for _, e in ipairs(entries) do if e.kind == "code" then e.kind = "code_err" end end
    self:push(msg, "error")
    return false
  end
  if not fn then local r = failed(err); self.wb.autosave(); return r end
  if is_expr and not meta then
    entries[1].script = "wb.show(" .. code .. ")"
    for i = 2, #entries do entries[i].skip = true end
  end
  -- the chunk drops a job's hook (jobs.lua) as it returns, inside the
  -- xpcall: a cancel it raises can only fail the chunk, never this code
  local chunk = fn
  fn = function() return (function(...) debug.sethook(); return ... end)(chunk()) end
  local res = table.pack(xpcall(fn, traceback))
  self.wb.autosave()   -- the log on disk after every step: a kill loses nothing
  if not res[1] then
    if app and app.job and app.job.cancel then   -- a cancel is no bug: its message, without a traceback
      return failed((tostring(res[2]):match("^[^\n]*"):gsub("^[^:]*:%d+: ", "")))
    end
    return failed(res[2])
  end
  if res.n > 1 then self:push(pretty.values(table.unpack(res, 2, res.n)), "output") end
  -- in the saved script each chunk keeps its own scope, as each console
  -- line has; a chunk that returned values shows them there too
  if not is_expr and not meta then
    local script
    if res.n > 1 then script = "wb.show((function()\n" .. code .. "\nend)())"
    elseif code:find("%f[%w_]local%f[^%w_]") then script = "do\n" .. code .. "\nend" end
    if script then
      entries[1].script = script
      for i = 2, #entries do entries[i].skip = true end
    end
  end
  return true
end

function Console:prefill(text, app)
  self.input, self.cur = text, #text
  app.focus = "console"
end

-- byte offset of the previous / next UTF-8 character
local function prev_char(s, i)
  if i <= 0 then return 0 end
  i = i - 1
  while i > 0 and (s:byte(i + 1) or 0) & 0xC0 == 0x80 do i = i - 1 end
  return i
end
local function next_char(s, i)
  if i >= #s then return #s end
  i = i + 1
  while i < #s and (s:byte(i + 1) or 0) & 0xC0 == 0x80 do i = i + 1 end
  return i
end

local function is_char(key) return utf8.len(key) == 1 and not key:match("^%c$") end

function Console:submit(app)
  local line = self.input
  local chunk = self.pending and (self.pending .. "\n" .. line) or line
  self.input, self.cur = "", 0
  self.scroll = 0
  if chunk:match("^%s*$") then self.pending = nil return app.REDRAW end
  -- unfinished? (lua.c: the error message ends in <eof>)
  if not load("return " .. chunk, "=console", "t") then
    local _, err = load(chunk, "=console", "t")
    if err and err:match("<eof>$") then
      self.pending = chunk
      return app.REDRAW
    end
  end
  self.pending = nil
  self.hist:add(chunk)
  app:run({chunk}, "input")
  return app.REDRAW
end

function Console:on_key(app, key)
  local s, c = self.input, self.cur
  if key == "enter" then return self:submit(app)
  elseif key == "esc" then
    if self.pending then self.pending = nil; self.input, self.cur = "", 0
    else app.focus = "table" end
    return app.REDRAW
  elseif key == "backspace" then
    local p = prev_char(s, c)
    self.input, self.cur = s:sub(1, p) .. s:sub(c + 1), p
  elseif key == "delete" or (key == "C-d" and s ~= "") then
    local n = next_char(s, c)
    self.input = s:sub(1, c) .. s:sub(n + 1)
  elseif key == "left" or key == "C-b" then self.cur = prev_char(s, c)
  elseif key == "right" or key == "C-f" then self.cur = next_char(s, c)
  elseif key == "home" or key == "C-a" then self.cur = 0
  elseif key == "end" or key == "C-e" then self.cur = #s
  elseif key == "C-u" then self.input, self.cur = s:sub(c + 1), 0
  elseif key == "C-k" then self.input = s:sub(1, c)
  elseif key == "C-w" then
    local p = s:sub(1, c):find("[%w_]*[^%w_]*$") or 1
    p = p - 1
    if p == c and c > 0 then p = prev_char(s, c) end
    self.input, self.cur = s:sub(1, p) .. s:sub(c + 1), p
  elseif key == "C-c" and (s ~= "" or self.pending) then self.input, self.cur, self.pending = "", 0, nil
  elseif key == "C-l" then self.lines = {}
  elseif key == "up" then
    local h = self.hist:prev(s)
    if h then self.input, self.cur = h, #h end
  elseif key == "down" then
    local h = self.hist:next()
    if h then self.input, self.cur = h, #h end
  elseif key == "pgup" then self.scroll = self.scroll + math.max(1, (app.layout.console.h or 8) - 3)
  elseif key == "pgdn" then self.scroll = math.max(0, self.scroll - math.max(1, (app.layout.console.h or 8) - 3))
  elseif key == "tab" then
    if s == "" and not self.pending then return nil end   -- an empty line: Tab moves the focus on
    local line, cur, cands = complete.complete(s, c)
    self.input, self.cur = line, cur
    if #cands > 1 then
      local shown = {}
      for i = 1, math.min(#cands, 40) do shown[i] = cands[i] end
      self:push(table.concat(shown, "  ") .. (#cands > 40 and string.format("  (%d more)", #cands - 40) or ""), "info")
    elseif #cands == 0 then app.tui.beep() end
  elseif is_char(key) then
    self.input, self.cur = s:sub(1, c) .. key .. s:sub(c + 1), c + #key
  else
    return nil
  end
  return app.REDRAW
end

function Console:on_mouse(app, kind)
  if kind == "wheelup" then self.scroll = self.scroll + 3
  elseif kind == "wheeldown" then self.scroll = math.max(0, self.scroll - 3)
  else app.focus = "console" end
  return app.REDRAW
end

-- display rows of an entry, wrapped at w columns
local function wrap(e, w, out)
  local text = (e.prefix or "") .. e.text
  if w < 4 then w = 4 end
  if utf8.len(text) == nil or utf8.len(text) <= w then out[#out + 1] = {text, e.style}; return end
  local chars = {}
  for _, cp in utf8.codes(text) do chars[#chars + 1] = utf8.char(cp) end
  for i = 1, #chars, w do out[#out + 1] = {table.concat(chars, "", i, math.min(#chars, i + w - 1)), e.style} end
end

function Console:draw(app, r)
  local tui, g = app.tui, app.g
  local focused = app.focus == "console"
  local title = " console " .. (focused and "(Esc: back to the table) " or "(: to type) ")
  tui.text(r.y, r.x, g.h:rep(2), "frame")
  local tw = tui.text(r.y, r.x + 2, title, focused and "title_focus" or "title")
  tui.text(r.y, r.x + 2 + tw, g.h:rep(r.w), "frame", r.w - 2 - tw)
  if app.job and app.msg then   -- what a key typed during a job got: the footer holds the gauge
    local s = " " .. app.msg .. " "
    tui.text(r.y, math.max(r.x, r.x + r.w - tui.width(s) - 2), s, "warn", r.w)
  elseif self.scroll > 0 then
    local s = string.format(" %d lines up ", self.scroll)
    tui.text(r.y, r.x + r.w - #s - 2, s, "warn")
  end
  -- the input (pending lines of an unfinished chunk above it)
  local pend = {}
  if self.pending then for line in (self.pending .. "\n"):gmatch("(.-)\n") do pend[#pend + 1] = line end end
  local log_h = r.h - 2 - #pend
  if log_h < 1 then
    local drop = 1 - log_h
    for _ = 1, drop do table.remove(pend, 1) end
    log_h = 1
  end
  -- the log: wrapped rows from the bottom, `scroll` rows up
  local rows, need = {}, log_h + self.scroll
  local i = #self.lines
  while i >= 1 and #rows < need do
    local one = {}
    wrap(self.lines[i], r.w, one)
    for k = #one, 1, -1 do rows[#rows + 1] = one[k] end
    i = i - 1
  end
  if self.scroll > #rows - log_h then self.scroll = math.max(0, #rows - log_h) end
  local first = self.scroll + 1
  for k = 0, log_h - 1 do
    local row = rows[first + (log_h - 1 - k)]
    if row then tui.text(r.y + 1 + k, r.x, row[1], row[2], r.w) end
  end
  local y = r.y + 1 + log_h
  for k, line in ipairs(pend) do tui.text(y + k - 1, r.x, (k == 1 and "> " or ">> ") .. line, "input", r.w) end
  y = y + #pend
  local prompt = self.pending and ">> " or "> "
  local before = self.input:sub(1, self.cur)
  local bw = tui.width(prompt .. before)
  local shift = 0
  if bw >= r.w - 1 then shift = bw - (r.w - 2) end
  local shown = prompt .. self.input
  if shift > 0 then
    local chars = {}
    for _, cp in utf8.codes(shown) do chars[#chars + 1] = utf8.char(cp) end
    shown = table.concat(chars, "", shift + 1)
  end
  tui.text(y, r.x, shown, focused and "input" or "dim", r.w, true)
  if focused then app.cursor = {y, r.x + bw - shift} end
end

return M
