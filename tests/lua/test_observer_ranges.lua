-- Calibrate once, compare every range method: an observer re-derives its
-- range by another method from the statistics it already holds, and the
-- cost of a range is measured on its histogram. Checked against observers of
-- each kind fed the same data, and against quantizing the raw values.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"
qlab.seed(0)

-- ReLU-like activations with a long tail, in three batches
local batches = {}
local state = 12345
local function rnd() state = (state * 1103515245 + 12345) % 2147483648; return state / 2147483648 end
for b = 1, 3 do
  local v = {}
  for i = 1, 20000 do
    local g = math.sqrt(-2 * math.log(rnd() + 1e-12)) * math.cos(2 * math.pi * rnd())
    v[i] = math.max(0, g) ^ (b == 3 and 1.6 or 1.2)
  end
  batches[b] = qlab.tensor(v, {#v})
end
local function fed(kind, opts)
  opts = opts or {}
  local o = qlab.observer[kind](opts)
  for _, t in ipairs(batches) do o:observe(t) end
  return o
end

H.test("o:as(kind) gives the range an observer of that kind fed the same data chooses", function()
  local hist = fed("histogram")
  for _, c in ipairs{{"minmax"}, {"histogram"}, {"percentile", {percentile = 99.9}}, {"percentile", {percentile = 99.99}},
                     {"entropy"}, {"mse"}} do
    local direct = fed(c[1], c[2])
    local lo1, hi1 = direct:range()
    local lo2, hi2 = hist:as(c[1], c[2] and {percentile = c[2].percentile}):range()
    assert(lo1 == lo2 and hi1 == hi2, string.format("%s: direct [%g, %g], re-derived [%g, %g]", c[1], lo1, hi1, lo2, hi2))
  end
  -- and from any per-tensor kind, not only a histogram observer
  local lo1, hi1 = fed("entropy"):range()
  local lo2, hi2 = fed("minmax"):as("entropy"):range()
  assert(lo1 == lo2 and hi1 == hi2)
end)

H.test("compare_ranges: every method, its cost on the histogram, the chosen one marked", function()
  local o = fed("histogram")
  local rows = o:compare_ranges()
  local names = {}
  for _, r in ipairs(rows) do names[#names + 1] = r.method end
  assert(table.concat(names, ",") == "minmax,percentile 99.9,percentile 99.99,entropy,mse,histogram", table.concat(names, ","))
  local best, chosen = math.huge, nil
  for _, r in ipairs(rows) do
    assert(r.lo <= r.hi and r.mse > 0 and r.sqnr_db > 0, r.method)
    if r.method ~= "mse" then best = math.min(best, r.mse) end
    if r.chosen then chosen = r end
  end
  assert(chosen and chosen.method == "histogram", "the observer's own method is marked")
  -- the MSE method minimises exactly this error: no other range does better
  assert(rows[5].mse <= best * 1.0001, string.format("mse %.4g vs best other %.4g", rows[5].mse, best))
end)

H.test("range_error matches quantizing the raw values with that range", function()
  local o = fed("histogram")
  local lo, hi = o:range()
  local mse, sqnr = o:range_error(lo, hi)
  local scale, zp = o:qparams()
  local se, sx, n = 0, 0, 0
  for _, t in ipairs(batches) do
    for _, x in ipairs(t:table()) do
      local q = math.max(0, math.min(255, math.floor(x / scale + zp + 0.5)))
      local d = x - (q - zp) * scale
      se, sx, n = se + d * d, sx + x * x, n + 1
    end
  end
  local direct = se / n
  assert(math.abs(mse - direct) / direct < 0.1, string.format("histogram estimate %.4g, raw values %.4g", mse, direct))
  H.near(sqnr, 10 * math.log(sx / se, 10), 0.5, "sqnr")
end)

H.test("errors: per-channel observers, no data, unknown kinds", function()
  H.raises(function() qlab.observer.minmax{per_channel = true}:as("entropy") end, "as")
  H.raises(function() qlab.observer.histogram{}:as("entropy") end, "no data")
  H.raises(function() fed("histogram"):as("median") end, "unknown observer kind 'median'")
  H.raises(function() fed("histogram"):range_error(2, 1) end, "lo <= hi")
end)

H.test("weight_stats: per-channel min / max and both granularities' SQNR, against a Lua computation", function()
  local m = qlab.load("data/models/small_cnn_fmnist.qlm")
  local w = m:param("conv2.weight")
  local s = qlab.weight_stats(w)
  local shape, v = w:shape(), w:table()
  local oc, per = shape[1], #v // shape[1]
  assert(s.channels == oc)
  local function err(lo, hi, step)   -- symmetric rounding of v[lo..hi] to step, codes -128..127
    local e = 0
    for i = lo, hi do
      local q = math.max(-128, math.min(127, math.floor(v[i] / step + 0.5)))
      e = e + (v[i] - q * step) ^ 2
    end
    return e
  end
  local amax, power, ec = 0, 0, 0
  for c = 1, oc do
    local mn, mx = math.huge, -math.huge
    for i = (c - 1) * per + 1, c * per do mn, mx, power = math.min(mn, v[i]), math.max(mx, v[i]), power + v[i] ^ 2 end
    H.near(s.min[c], mn, 1e-6, "min"); H.near(s.max[c], mx, 1e-6, "max")
    amax = math.max(amax, -mn, mx)
    ec = ec + err((c - 1) * per + 1, c * per, math.max(-mn, mx) / 127)
  end
  local et = err(1, #v, amax / 127)
  H.near(s.sqnr_per_channel_db, 10 * math.log(power / ec, 10), 0.01, "per-channel sqnr")
  H.near(s.sqnr_per_tensor_db, 10 * math.log(power / et, 10), 0.01, "per-tensor sqnr")
  assert(s.sqnr_per_channel_db >= s.sqnr_per_tensor_db)
  assert(qlab.weight_stats(w, {bits = 4}).sqnr_per_channel_db < s.sqnr_per_channel_db - 15, "4 bits cost ~24 dB")
  H.raises(function() qlab.weight_stats(w, {bits = 1}) end, "bits")
end)

H.done()
