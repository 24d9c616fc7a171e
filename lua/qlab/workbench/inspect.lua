-- What the live panes show of one layer, from the engine's own objects
-- (no terminal needed; tests/lua/test_workbench_live.lua checks it):
--   inspect.ranges(o, bins)   an activation observer's histogram in `bins`
--       columns, its observed min / max, the range it chooses and, for the
--       same statistics, the range and error of every method (o:compare_ranges)
--   inspect.weights(w [, cols])  per-output-channel min / max of a weight
--       tensor and what per-tensor vs per-channel scales cost (qlab.weight_stats)
local qlab = require "qlab"

local M = {}

-- counts summed into n columns (n may exceed #counts: a bin then spans columns)
function M.rebin(counts, n)
  local out, per = {}, #counts / n
  for i = 1, n do
    local a, b = (i - 1) * per, i * per
    local sum = 0
    if per < 1 then sum = counts[math.floor(a) + 1] or 0   -- a bin over several columns
    else for k = math.floor(a) + 1, math.floor(b) do sum = sum + (counts[k] or 0) end end
    out[i] = sum
  end
  return out
end

-- share of the histogram's mass outside [lo, hi] (bins by their centre)
local function clipped(counts, hlo, hhi, lo, hi)
  local total, out = 0, 0
  local w = (hhi - hlo) / #counts
  for i, c in ipairs(counts) do
    local x = hlo + (i - 0.5) * w
    total = total + c
    if x < lo or x > hi then out = out + c end
  end
  return total > 0 and math.max(0, out / total) or 0   -- float counts: never below 0
end

-- {counts (bins columns), hlo, hhi (histogram edges), min, max (observed),
--  lo, hi (the range o chooses), kind, clipped (share of values outside it),
--  count (tensors observed), table = o:compare_ranges() | nil}
-- opts.table = false skips the comparison (cheaper, for redraws mid-calibration).
function M.ranges(o, bins, opts)
  opts = opts or {}
  if not o or o:count() == 0 then return nil end
  local counts, hlo, hhi = o:histogram()
  if type(counts) ~= "table" or #counts == 0 then return nil end
  local mn, mx = o:minmax()
  local lo, hi = o:range()
  local v = {counts = M.rebin(counts, bins), hlo = hlo, hhi = hhi, min = mn, max = mx, lo = lo, hi = hi,
             kind = o:options().kind, count = o:count(), clipped = clipped(counts, hlo, hhi, lo, hi)}
  if opts.table ~= false then
    local ok, t = pcall(o.compare_ranges, o)
    if ok then
      for _, r in ipairs(t) do r.clipped = clipped(counts, hlo, hhi, r.lo, r.hi) end
      v.table = t
    end
  end
  return v
end

-- {channels, min = {...}, max = {...}, lo, hi (over all channels),
--  cols = {{min, max, first, last}} (channels grouped into at most `cols` columns),
--  bits8 = weight_stats, bits4 = weight_stats with 4-bit weights}
function M.weights(w, cols)
  local s8 = qlab.weight_stats(w, {bits = 8})
  local s4 = qlab.weight_stats(w, {bits = 4})
  local n = s8.channels
  cols = math.max(1, math.min(cols or n, n))
  local v = {channels = n, min = s8.min, max = s8.max, bits8 = s8, bits4 = s4, cols = {}}
  local lo, hi = math.huge, -math.huge
  for c = 1, n do lo = math.min(lo, s8.min[c]); hi = math.max(hi, s8.max[c]) end
  v.lo, v.hi = lo, hi
  -- the widest and narrowest channel: how much a shared scale wastes
  local widest, narrowest = 0, math.huge
  for c = 1, n do
    local a = math.max(math.abs(s8.min[c]), math.abs(s8.max[c]))
    widest, narrowest = math.max(widest, a), math.min(narrowest, a)
  end
  v.spread = narrowest > 0 and widest / narrowest or math.huge
  for i = 1, cols do
    local first = math.floor((i - 1) * n / cols) + 1
    local last = math.max(first, math.floor(i * n / cols))
    local a, b = math.huge, -math.huge
    for c = first, last do a = math.min(a, s8.min[c]); b = math.max(b, s8.max[c]) end
    v.cols[i] = {min = a, max = b, first = first, last = last}
  end
  return v
end

return M
