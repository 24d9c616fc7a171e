-- Layer sensitivity, per-layer numeric comparison and mixed-precision search.
--   qlab.compare(fp32, quantized, loader [, {batches = n}])
--       -> {{name, op, precision, sqnr_db, mse, max_abs}, ...} in graph order, then "output"
--   qlab.sensitivity(model, {data =, calib =, qconfig =, metric = "top1"|"sqnr",
--                            mode = "single"|"all_but_one", batches =, calib_batches =,
--                            ops = {"conv2d", "linear"}, nodes = {names}, shard = "i/n",
--                            recalibrate = false, time = true, quiet = false, on_node = fn})
--       -> rank, info. rank: most harmful first, entries {rank, name, op, params,
--          sqnr_db (logits vs FP32), kl (mean KL of the softmax vs FP32), time / time_fp32
--          (ms of the node at batch 1 in the fully quantized / FP32 model), and with
--          metric "top1" top1 and drop (points vs FP32); mode "all_but_one" (everything
--          quantized but that node) adds gain_db (and gain, top-1 points) over the fully
--          quantized model and ranks by it. metric "sqnr" uses `batches` (default 4)
--          batches of data and no top-1. info: {metric, mode, n images, top1_fp32,
--          quantized = {top1, sqnr_db, kl}, seconds, nodes}. on_node(entry, i, n) sees each entry
--          as it is measured (live views); returning false stops the run (info.cancelled).
--   qlab.mixed_precision(model, {data =, calib =, qconfig =, budget = 0.3, k = 3,
--                                levels = {"w4a8", "int8", "f16", "fp32"}, batches =,
--                                calib_batches =, latency_runs = 20, max_steps =, on_step = fn})
--       -> {model =, map =, precision = {node = level}, steps = {{step, node, from, to,
--          top1, drop, size_bytes, latency_ms, sqnr_db}}, start =, final =, fp32 =, levels =}
--       on_step(step) sees each step as it is taken; returning false stops (res.cancelled).
--       Greedy: from every conv / linear at the qconfig's level, raise one node one
--       level per step: the k raises with the largest expected benefit (each node's
--       single-node SQNR at its current and next level) are evaluated on data and the
--       best top-1 is kept; stops as soon as the drop vs FP32 is within budget (points).
--       "f16" is skipped when qlab.qconfig.f16 does not exist. The map applies to the
--       fused model (model:clone():fuse()).
-- The tensor arithmetic is C (src/bench/compare.c through qlab.compare_tensors,
-- qlab.compare_logits, qlab._compare_nodes); this file is orchestration.
--
-- One calibration serves every candidate model: a reference copy of the
-- fused model is prepared with every quantizable node observed and
-- calibrated once; each candidate (one node quantized, or all but one, or a
-- mixed map) is prepared with its own map and takes the reference's
-- observers by node name (m:_copy_observers). Calibration runs the model in
-- FP32, so the statistics are those a per-candidate calibration on the same
-- batches would collect. `recalibrate = true` calibrates every candidate
-- from scratch instead.
local core = require "qlab.core"
local quant = require "qlab.quant"

local M = {}

local weighted = {conv2d = true, linear = true}

local function check_keys(opts, what, keys)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(what .. ": options must be a table", 3) end
  local ok = {}
  for _, k in ipairs(keys) do ok[k] = true end
  for k in pairs(opts) do
    if not ok[k] then error(what .. ": unknown option '" .. tostring(k) .. "'", 3) end
  end
  return opts
end

local function is_loader(x) return getmetatable(x) == debug.getregistry()["qlab.Loader"] end
local check = require "qlab.check"
local function is_model(x) return getmetatable(x) == debug.getregistry()["qlab.Model"] end

local function sqnr_of(s)
  if not s or not s.n or s.n == 0 then return nil end
  return s.sqnr_db
end

-- Progress lines on stderr: redrawn in place on a terminal, one per line otherwise.
local function progress(quiet)
  if quiet then return function() end, function() end end
  local tty = core.stderr_tty()
  local drawn = false
  local function line(s)
    if tty then io.stderr:write("\r", s, "\27[K"); drawn = true
    else io.stderr:write(s, "\n") end
    io.stderr:flush()
  end
  local function done()
    if tty and drawn then io.stderr:write("\n"); io.stderr:flush() end
    drawn = false
  end
  return line, done
end

local function fmt_db(v)
  if v == nil then return "-" end
  if v == math.huge then return "inf" end
  return string.format("%.2f", v)
end
M.fmt_db = fmt_db

-- A fused clone of the model (fusion is what convert sees).
local function fused_clone(model)
  local m = model:clone()
  m:fuse()
  return m
end

-- Batches of data with the FP32 model's logits: {{x =, y =, ref =}, ...};
-- at most nb batches (0 / nil: all), or as many as reach `images` images.
local function cache_batches(fp, loader, nb, images)
  local out, i, n = {}, 0, 0
  for x, y in loader:iter() do
    i = i + 1
    if (nb and nb > 0 and i > nb) or (images and n >= images) then break end
    out[#out + 1] = {x = x, y = y, ref = fp:forward(x)}
    n = n + x:shape()[1]
  end
  if #out == 0 then error("the data loader gave no batch", 3) end
  return out
end

-- Logits of model vs the cached FP32 ones: {top1, top1_fp32, sqnr_db, kl, agree, n}
local function measure(model, batches)
  local sums, acc = {}, {}
  for _, b in ipairs(batches) do
    local out = model:forward(b.x)
    core.compare_tensors(b.ref, out, sums)
    core.compare_logits(b.ref, out, b.y, acc)
  end
  return {top1 = 100 * acc.correct_approx / acc.rows, top1_fp32 = 100 * acc.correct_ref / acc.rows,
          sqnr_db = sums.sqnr_db, kl = acc.kl / acc.rows, agree = 100 * acc.agree / acc.rows, n = acc.rows}
end

-- The map the reference calibration uses: every quantizable node quantized
-- with qc, pass-through ops FP32 so that each gets its own observer.
local function reference_map(qc)
  return {default = qc, maxpool2d = false, relu = false, relu6 = false, flatten = false}
end

-- ctx = {fp = fused FP32 model, ref = calibrated reference, calib =, calib_batches =, recalibrate =}
local function calibrated_reference(fp, qc, calib, calib_batches)
  local ref = fp:clone()
  ref:prepare(reference_map(qc))
  core.calibrate(ref, calib, {batches = calib_batches})
  return ref
end

-- A converted model of fp under map, with the reference's statistics.
local function build(ctx, map)
  local m = ctx.fp:clone()
  m:prepare(map)
  if not m:is_prepared() then return m end   -- nothing quantized: FP32 as is
  local missing = ctx.recalibrate and 1 or m:_copy_observers(ctx.ref)
  if missing > 0 then
    m:prepare(map)                            -- fresh observers, then a full calibration
    core.calibrate(m, ctx.calib, {batches = ctx.calib_batches})
  end
  m:convert()
  return m
end
M._build = build

-- nodes of the fused model sensitivity looks at
local function candidates(fp, ops)
  local want = {}
  for _, o in ipairs(ops or {"conv2d", "linear"}) do want[o] = true end
  local out = {}
  for _, n in ipairs(fp:nodes()) do
    if want[n.op] then out[#out + 1] = n end
  end
  return out
end

local function profile_ms(model, runs)
  local ok, prof = pcall(core.profile, model, {batch = 1, runs = runs, warmup = 2})
  local t = {}
  if ok then for _, p in ipairs(prof) do t[p.name] = p.ms end end
  return t
end

---------------------------------------------------------------------------
-- compare

-- Whether the fused clone of fp matches q's node names better than fp does
-- (a fused quantized model compared with an unfused FP32 one).
local function matching_reference(fp, q)
  local qnames = {}
  for _, n in ipairs(q:nodes()) do qnames[n.name] = true end
  local function absent(m)
    local k = 0
    for _, n in ipairs(m:nodes()) do if not qnames[n.name] then k = k + 1 end end
    return k
  end
  local f = fused_clone(fp)
  if absent(f) < absent(fp) then return f end
  f:free()
  return fp
end

function M.compare(fp32, q, loader, opts)
  if not is_model(fp32) or not is_model(q) then error("compare: give (fp32_model, quantized_model, loader)", 2) end
  if not is_loader(loader) then error("compare: the third argument must be a loader", 2) end
  opts = check_keys(opts, "compare", {"batches"})
  local fp = matching_reference(fp32, q)
  local byname = {}
  for _, n in ipairs(fp:nodes()) do byname[n.name] = n end
  local rows, pairs_ = {}, {}
  for _, n in ipairs(q:nodes()) do
    local r = byname[n.name]
    if r then
      rows[#rows + 1] = {name = n.name, op = n.op, precision = n.precision}
      pairs_[#pairs_ + 1] = {r.index, n.index}
    end
  end
  local sums, out_sums = {}, {}
  local keep_fp, keep_q = fp:keep_activations(true), q:keep_activations(true)
  local ok, err = pcall(function()
    local i = 0
    for x in loader:iter() do
      i = i + 1
      if opts.batches and opts.batches > 0 and i > opts.batches then break end
      local a, b = fp:forward(x), q:forward(x)
      core._compare_nodes(fp, q, pairs_, sums)
      core.compare_tensors(a, b, out_sums)
    end
  end)
  fp:keep_activations(keep_fp); q:keep_activations(keep_q)
  if fp ~= fp32 then fp:free() end
  if not ok then error(err, 2) end
  local res = {}
  for k, r in ipairs(rows) do
    local s = sums[k]
    if s and s.n > 0 then
      r.sqnr_db, r.mse, r.max_abs = s.sqnr_db, s.mse, s.max_abs
      res[#res + 1] = r
    end
  end
  local qn = q:nodes()
  local last = qn[#qn]
  res[#res + 1] = {name = "output", op = last and last.op or "?", precision = last and last.precision or "?",
                   sqnr_db = out_sums.sqnr_db, mse = out_sums.mse, max_abs = out_sums.max_abs}
  return res
end

---------------------------------------------------------------------------
-- sensitivity

local sens_keys = {"data", "calib", "qconfig", "metric", "mode", "batches", "calib_batches", "ops",
                   "recalibrate", "quiet", "time", "nodes", "shard", "images", "on_node"}

function M.sensitivity(model, opts)
  check.model(model, "sensitivity")
  opts = check_keys(opts, "sensitivity", sens_keys)
  local metric, mode = opts.metric or "top1", opts.mode or "single"
  if metric ~= "top1" and metric ~= "sqnr" then error("sensitivity: metric must be \"top1\" or \"sqnr\"", 2) end
  if mode ~= "single" and mode ~= "all_but_one" then error("sensitivity: mode must be \"single\" or \"all_but_one\"", 2) end
  if not is_loader(opts.data) then error("sensitivity: give data = loader", 2) end
  if opts.calib ~= nil and not is_loader(opts.calib) then error("sensitivity: calib must be a loader", 2) end
  local qc = opts.qconfig or quant.qconfig.default()
  if not quant.is_qconfig(qc) then error("sensitivity: qconfig must be a QConfig", 2) end
  local t0 = core.clock()
  local line, done = progress(opts.quiet)

  local fp = fused_clone(model)
  local images = opts.images or (metric == "sqnr" and not opts.batches and 256 or nil)
  local batches = cache_batches(fp, opts.data, opts.batches, images)
  local ctx = {fp = fp, calib = opts.calib or opts.data, calib_batches = opts.calib_batches,
               recalibrate = opts.recalibrate}
  ctx.ref = calibrated_reference(fp, qc, ctx.calib, ctx.calib_batches)

  local nodes = candidates(fp, opts.ops)
  if opts.nodes then   -- a subset by name (sharding, tests)
    local want = {}
    for _, n in ipairs(opts.nodes) do want[n] = true end
    local sel = {}
    for _, n in ipairs(nodes) do if want[n.name] then sel[#sel + 1] = n end end
    nodes = sel
  end
  if opts.shard then   -- "i/n": every n-th node from the i-th, for runs split over processes
    local si, sn = tostring(opts.shard):match("^(%d+)/(%d+)$")
    si, sn = tonumber(si), tonumber(sn)
    if not si or sn < 1 or si < 1 or si > sn then error("sensitivity: shard must be \"i/n\" with 1 <= i <= n", 2) end
    local sel = {}
    for j, n in ipairs(nodes) do if (j - 1) % sn == si - 1 then sel[#sel + 1] = n end end
    nodes = sel
  end

  -- the fully quantized model: baseline of "all_but_one", per-node times
  local full = build(ctx, {default = qc})
  local base = measure(full, batches)
  local qms, fms = {}, {}
  if opts.time ~= false then qms, fms = profile_ms(full, 5), profile_ms(fp, 5) end
  full:free()

  local info = {metric = metric, mode = mode, n = base.n, top1_fp32 = base.top1_fp32,
                quantized = {top1 = base.top1, sqnr_db = base.sqnr_db, kl = base.kl}}
  local rank = {}
  for i, n in ipairs(nodes) do
    local map
    if mode == "single" then map = {default = false, [n.name] = qc}
    else map = {default = qc, [n.name] = false} end
    local m = build(ctx, map)
    local r = measure(m, batches)
    m:free()
    local e = {name = n.name, op = n.op, params = n.params, sqnr_db = r.sqnr_db, kl = r.kl,
               time = qms[n.name], time_fp32 = fms[n.name]}
    if metric == "top1" then e.top1, e.drop = r.top1, r.top1_fp32 - r.top1 end
    if mode == "all_but_one" then
      -- what keeping this node FP32 buys over the fully quantized model
      e.gain_db = (r.sqnr_db or 0) - (base.sqnr_db or 0)
      if metric == "top1" then e.gain = r.top1 - base.top1 end
    end
    rank[#rank + 1] = e
    line(string.format("sensitivity %s/%s [%d/%d] %-28s sqnr %7s dB%s", metric, mode, i, #nodes, n.name,
                       fmt_db(r.sqnr_db), e.drop and string.format("  drop %.2f", e.drop) or ""))
    -- live views (the workbench's ranking): each entry as it is measured; false stops the run
    if opts.on_node and opts.on_node(e, i, #nodes) == false then info.cancelled = true; break end
  end
  done()

  -- most harmful first
  local function harm(e)
    if mode == "single" then
      if metric == "top1" then return e.drop, e.kl end
      return -(e.sqnr_db or math.huge), e.kl
    end
    if metric == "top1" then return e.gain, -e.kl end
    return e.gain_db, -e.kl
  end
  table.sort(rank, function(a, b)
    local ha, ta = harm(a)
    local hb, tb = harm(b)
    if ha ~= hb then return ha > hb end
    if ta ~= tb then return ta > tb end
    return a.name < b.name
  end)
  for i, e in ipairs(rank) do e.rank = i end
  ctx.ref:free()
  fp:free()
  info.seconds = core.clock() - t0
  info.nodes = #rank
  return rank, info
end

---------------------------------------------------------------------------
-- mixed precision

-- A precision level: {name =, qc = QConfig | false}, or nil when unavailable.
local function level_of(x)
  if type(x) == "table" and x.name then return {name = x.name, qc = x.qconfig or false} end
  if quant.is_qconfig(x) then return {name = M.qconfig_name(x), qc = x} end
  if x == "fp32" or x == "f32" then return {name = "fp32", qc = false} end
  if x == "int8" then return {name = "int8", qc = quant.qconfig.default()} end
  if x == "f16" or x == "fp16" or x == "bf16" then   -- half weights, where quant.lua offers them
    local name = x == "bf16" and "bf16" or "f16"
    local f = rawget(quant.qconfig, name)
    if type(f) ~= "function" then return nil end
    local ok, qc = pcall(f)
    if not ok or qc == nil then return nil end
    return {name = name, qc = qc}
  end
  local w, a = tostring(x):match("^w(%d+)a(%d+)$")
  if w then
    if tonumber(a) ~= 8 then error("mixed_precision: only 8-bit activations are supported ('" .. x .. "')", 3) end
    if tonumber(w) == 8 then return {name = x, qc = quant.qconfig.default()} end
    -- the same activations as qconfig.default(), so levels differ only in weights
    return {name = x, qc = quant.qconfig{activation = quant.default_activation(),
                                         weight = core.observer.minmax{dtype = "s8", symmetric = true,
                                                                       per_channel = true, bits = tonumber(w)}}}
  end
  error("mixed_precision: unknown level '" .. tostring(x) .. "'", 3)
end

-- "w4a8", "int8" ... from a QConfig's bit widths
function M.qconfig_name(qc)
  if qc.dtype then return qc.dtype end
  local ok, w = pcall(function() return qc.weight:options() end)
  local ok2, a = pcall(function() return qc.activation:options() end)
  if not ok or not ok2 or not w.bits or not a.bits then return tostring(qc) end
  if w.bits == 8 and a.bits == 8 then return "int8" end
  return string.format("w%da%d", w.bits, a.bits)
end

local mp_keys = {"data", "calib", "qconfig", "budget", "levels", "k", "batches", "calib_batches", "ops",
                 "latency_runs", "max_steps", "quiet", "recalibrate", "sqnr_images", "rank", "on_step"}

function M.mixed_precision(model, opts)
  check.model(model, "mixed_precision")
  opts = check_keys(opts, "mixed_precision", mp_keys)
  if not is_loader(opts.data) then error("mixed_precision: give data = loader", 2) end
  local budget = opts.budget or 0.3
  local k = opts.k or 3
  local runs = opts.latency_runs or 20
  local line, done = progress(opts.quiet)

  -- levels, lowest first; the starting qconfig takes the place of its level
  local levels = {}
  for _, l in ipairs(opts.levels or {"w4a8", "int8", "f16", "fp32"}) do
    local lv = level_of(l)
    if lv then levels[#levels + 1] = lv end
  end
  local start = 1
  if opts.qconfig then
    if not quant.is_qconfig(opts.qconfig) then error("mixed_precision: qconfig must be a QConfig", 2) end
    local name = M.qconfig_name(opts.qconfig)
    start = nil
    for i, l in ipairs(levels) do if l.name == name then start = i end end
    if start then levels[start].qc = opts.qconfig
    else table.insert(levels, 1, {name = name, qc = opts.qconfig}); start = 1 end
  end
  if not levels[start].qc then error("mixed_precision: the starting level must be quantized", 2) end
  if #levels < start + 1 then error("mixed_precision: give at least two levels", 2) end
  local top = #levels

  local fp = fused_clone(model)
  local batches = cache_batches(fp, opts.data, opts.batches or 0)
  local ctx = {fp = fp, calib = opts.calib or opts.data, calib_batches = opts.calib_batches,
               recalibrate = opts.recalibrate}
  ctx.ref = calibrated_reference(fp, levels[start].qc, ctx.calib, ctx.calib_batches)
  local nodes = candidates(fp, opts.ops)

  -- the prepare map of a state (node name -> level index). Pools, flatten
  -- and standalone activations follow their producer: after an FP16 / FP32
  -- node they stay float rather than add a quantize / dequantize pair.
  local follows = {maxpool2d = true, avgpool2d = true, global_avgpool = true, relu = true, relu6 = true,
                   flatten = true}
  local all = fp:nodes()
  local function is_int(qc) return qc and not qc.dtype end
  local function map_of(state)
    local map = {default = levels[start].qc}
    local int = {}
    for _, n in ipairs(all) do
      local lv = state[n.name]
      if lv then
        if lv ~= start then map[n.name] = levels[lv].qc end
        int[n.name] = is_int(levels[lv].qc)
      elseif follows[n.op] and n.inputs[1] and int[n.inputs[1]] == false then
        map[n.name] = false
        int[n.name] = false
      else
        int[n.name] = true
      end
    end
    return map
  end
  local function point(m, r)
    r = r or measure(m, batches)
    local t = core.time_forward(m, {batch = 1, runs = runs, warmup = 3})
    return {top1 = r.top1, drop = r.top1_fp32 - r.top1, sqnr_db = r.sqnr_db, size_bytes = m:size_bytes(),
            latency_ms = t.median}
  end

  local fp32 = {size_bytes = fp:size_bytes(),
                latency_ms = core.time_forward(fp, {batch = 1, runs = runs, warmup = 3}).median}
  local state = {}
  for _, n in ipairs(nodes) do state[n.name] = start end
  local cur = build(ctx, map_of(state))
  local cur_pt = point(cur)
  fp32.top1 = cur_pt.top1 + cur_pt.drop
  local res = {steps = {}, fp32 = fp32, levels = {}, budget = budget,
               start = {level = levels[start].name, top1 = cur_pt.top1, drop = cur_pt.drop,
                        size_bytes = cur_pt.size_bytes, latency_ms = cur_pt.latency_ms, sqnr_db = cur_pt.sqnr_db}}
  for i, l in ipairs(levels) do res.levels[i] = l.name end
  line(string.format("mixed precision: start %s top-1 %.2f (drop %.2f, budget %.2f)", levels[start].name,
                     cur_pt.top1, cur_pt.drop, budget))
  done()

  -- noise of each node alone at a level: output error power relative to the
  -- signal, 10^(-SQNR/10), on the first `sqnr_images` images; computed when
  -- first needed (a given sensitivity ranking at the starting level is reused)
  local sq_batches, nimg = {}, 0
  for _, b in ipairs(batches) do
    if nimg >= (opts.sqnr_images or 256) then break end
    sq_batches[#sq_batches + 1] = b
    nimg = nimg + b.x:shape()[1]
  end
  local noise = {}
  for _, n in ipairs(nodes) do noise[n.name] = {} end
  if opts.rank then
    for _, e in ipairs(opts.rank) do
      if noise[e.name] and e.sqnr_db then noise[e.name][start] = 10 ^ (-e.sqnr_db / 10) end
    end
  end
  local computed = 0
  local function noise_of(name, lv)
    local v = noise[name][lv]
    if v then return v end
    if levels[lv].qc == false then v = 0
    else
      local m = build(ctx, {default = false, [name] = levels[lv].qc})
      local s = measure(m, sq_batches).sqnr_db
      m:free()
      v = (s == math.huge) and 0 or 10 ^ (-(s or 0) / 10)
      computed = computed + 1
      line(string.format("mixed precision: sqnr of %-28s at %-5s %s dB (%d computed)", name, levels[lv].name,
                         fmt_db(s), computed))
    end
    noise[name][lv] = v
    return v
  end

  -- the k raises with the largest expected noise reduction noise(lv) - noise(lv + 1);
  -- noise(lv) bounds it, so only the nodes that can still enter the top k are refined
  local function candidates_now()
    local c = {}
    for _, n in ipairs(nodes) do
      local lv = state[n.name]
      if lv < top then c[#c + 1] = {name = n.name, from = lv, to = lv + 1, ub = noise_of(n.name, lv)} end
    end
    table.sort(c, function(a, b)
      if a.ub ~= b.ub then return a.ub > b.ub end
      return a.name < b.name
    end)
    local exact = {}
    local function by_gain(a, b)
      if a.gain ~= b.gain then return a.gain > b.gain end
      return a.name < b.name
    end
    for _, x in ipairs(c) do
      if #exact >= k and exact[k].gain >= x.ub then break end
      x.gain = x.ub - noise_of(x.name, x.to)
      exact[#exact + 1] = x
      table.sort(exact, by_gain)
    end
    local out = {}
    for i = 1, math.min(k, #exact) do out[i] = exact[i] end
    return out
  end

  local max_steps = opts.max_steps or #nodes * (top - start)
  local step = 0
  while cur_pt.drop > budget and step < max_steps do
    local cands = candidates_now()
    if #cands == 0 then break end
    local best, best_m, best_pt
    for i, c in ipairs(cands) do
      state[c.name] = c.to
      local m = build(ctx, map_of(state))
      state[c.name] = c.from
      local r = measure(m, batches)
      line(string.format("mixed precision: step %d candidate %d/%d %-28s %s -> %s top-1 %.2f", step + 1, i,
                         #cands, c.name, levels[c.from].name, levels[c.to].name, r.top1))
      -- the best top-1; on a tie (top-1 is coarse on a few thousand images) the closest logits
      if not best or r.top1 > best.top1 or (r.top1 == best.top1 and r.kl < best.r.kl) then
        if best_m then best_m:free() end
        best, best_m = {top1 = r.top1, c = c, r = r}, m
      else
        m:free()
      end
    end
    done()
    step = step + 1
    state[best.c.name] = best.c.to
    cur:free()
    cur = best_m
    best_pt = point(cur, best.r)
    cur_pt = best_pt
    res.steps[#res.steps + 1] = {step = step, node = best.c.name, from = levels[best.c.from].name,
                                 to = levels[best.c.to].name, top1 = best_pt.top1, drop = best_pt.drop,
                                 size_bytes = best_pt.size_bytes, latency_ms = best_pt.latency_ms,
                                 sqnr_db = best_pt.sqnr_db}
    line(string.format("mixed precision: step %d %s %s -> %s: top-1 %.2f (drop %.2f) %.2f MB %.3f ms", step,
                       best.c.name, levels[best.c.from].name, levels[best.c.to].name, best_pt.top1, best_pt.drop,
                       best_pt.size_bytes / 1e6, best_pt.latency_ms))
    done()
    if opts.on_step and opts.on_step(res.steps[#res.steps]) == false then res.cancelled = true; break end
  end

  res.model = cur
  res.map = map_of(state)
  res.precision = {}
  for _, n in ipairs(nodes) do res.precision[n.name] = levels[state[n.name]].name end
  res.final = {top1 = cur_pt.top1, drop = cur_pt.drop, size_bytes = cur_pt.size_bytes,
               latency_ms = cur_pt.latency_ms, within_budget = cur_pt.drop <= budget}
  ctx.ref:free()
  fp:free()
  return res
end

return M
