-- The status bar: model, phase, dataset, ISA, threads; FP32 and current
-- top-1, size, batch-1 latency, memory. Two lines, segments dropped from
-- the right when the terminal is narrow.
local qlab = require "qlab"

local M = {}

local function mb(b) return string.format("%.2f MB", b / 1e6) end

function M:draw(app, r)
  local S, tui, g = app.S, app.tui, app.g
  local cpu = self.cpu or qlab.cpu()
  self.cpu = cpu
  local mem = qlab.memory()
  local top1 = "-"
  if S.result then
    top1 = string.format("%.2f", S.result.top1)
    if S.fp32_result then top1 = top1 .. string.format(" (%+.2f)", S.result.top1 - S.fp32_result.top1) end
    if S.result_phase ~= S.phase then top1 = top1 .. " stale" end
  end
  -- segments {text, style [, shorter text]}: the shorter one when the full one does not fit
  local line1 = {
    {" qlab ", "status"},
    {S.name .. " [" .. S.phase .. ((S.phase == "calibrated" and S.calibrated) and (" " .. S.calibrated) or "") .. "]",
     "status"},
    {S.dataset, "status_dim"},
    {string.format("%s %s %d thread%s", cpu.isa, g.dot, qlab.threads(), qlab.threads() == 1 and "" or "s"), "status_dim",
     string.format("%s%s%d", cpu.isa, g.dot, qlab.threads())},
    {string.format("mem %.0f MB", mem.current / 1e6), "status_dim"},
    {string.format("peak RSS %.0f MB", mem.rss_peak / 1e6), "status_dim"},
  }
  local lat = S.latency and string.format("%.3f ms", S.latency) or "-"
  local line2 = {
    {string.format(" top-1 FP32 %s", S.fp32_result and string.format("%.2f", S.fp32_result.top1) or "-"), "status"},
    {"now " .. top1, "status"},
    {string.format("size %s %s %s", mb(S.fp32:size_bytes()), g.arrow, mb(S.m:size_bytes())), "status_dim",
     string.format("%.2f%s%.2f MB", S.fp32:size_bytes() / 1e6, g.arrow, S.m:size_bytes() / 1e6)},
    {"batch-1 " .. lat .. (S.fp32_latency and string.format(" (FP32 %.3f)", S.fp32_latency) or ""), "status_dim",
     "b1 " .. lat},
  }
  for i, segs in ipairs{line1, line2} do
    local y = r.y + i - 1
    tui.text(y, r.x, "", "status", r.w, true)
    local x = r.x
    for k, s in ipairs(segs) do
      local sep = k > 1 and (" " .. g.v .. " ") or ""
      local text = sep .. s[1]
      local w = tui.width(text)
      if x + w > r.x + r.w and s[3] then text = sep .. s[3]; w = tui.width(text) end
      if x + w > r.x + r.w then break end
      tui.text(y, x, text, s[2])
      x = x + w
    end
  end
end

return M
