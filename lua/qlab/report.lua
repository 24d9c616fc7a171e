-- The comparison report: qlab.report(results, opts) turns qlab.bench suites into
--   DIR/report.md      tables, the charts as SVG files beside it, recommendations
--   DIR/results.json   the numbers, schema "qlab.report/1" (docs/report.md; M.schema checks it)
--   DIR/report.html    one self-contained page: inline SVG charts, inline CSS, no scripts
-- results: one suite (qlab.bench's result) or a list of suites (one per model).
-- opts: dir = "out/report", title =, sensitivity = rank | {suite name = rank} (qlab.sensitivity's
--   rank: {name, drop | sqnr_db}), expected = {{label, suite, variant, drop, speedup, size}} (the lab's
--   expected results, shown beside ours), max_drop = 1.0 (points of top-1 a variant may lose to be
--   recommended), per_tensor_tolerance = 0.3 (points), notes = {"text", ...}, command = "how it ran".
-- Returns {dir, files = {...}, document = doc, recommendations = {...}}.
-- Recommendations are derived from the numbers (M.recommend) and each cites its figures.
local core = require "qlab.core"
local svg = require "qlab.svg"

local M = {}
M.SCHEMA = "qlab.report/1"

------------------------------------------------------------------------------------------------
-- The schema of results.json, in a small language M.validate understands:
-- {type = "object", properties = {...}, required = {...}, when = {key, value, required}},
-- {type = "array", items = schema}, {type = "number" | "integer" | "string" | "boolean"}, enum, const.
local num, int, str, bool = {type = "number"}, {type = "integer"}, {type = "string"}, {type = "boolean"}
local function obj(props, required, extra)
  local o = {type = "object", properties = props, required = required or {}}
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end
local function arr(items) return {type = "array", items = items} end
local isa = {type = "string", enum = {"scalar", "avx2", "avx512", "amx"}}

local latency = obj({batch = int, threads = int, runs = int, median = num, p95 = num, p99 = num, min = num,
                     max = num, mean = num, stddev = num, spread_pct = num, images_per_s = num, gmacs = num,
                     peak_fraction = num, speedup = num},
                    {"batch", "threads", "runs", "median", "p95", "p99", "min", "max", "mean", "stddev",
                     "spread_pct", "images_per_s", "gmacs", "peak_fraction"})
local memory = obj({batch = int, weights_bytes = int, plan_bytes = int, alloc_peak_bytes = int,
                    resident_bytes = int, rss_growth_bytes = int},
                   {"batch", "weights_bytes", "plan_bytes", "alloc_peak_bytes", "resident_bytes", "rss_growth_bytes"})
local breakdown = obj({batch = int, threads = int, total_ms = num,
                       nodes = arr(obj({name = str, op = str, ms = num, share = num}, {"name", "op", "ms", "share"})),
                       ops = arr(obj({op = str, ms = num, share = num}, {"op", "ms", "share"}))},
                      {"batch", "threads", "total_ms", "nodes", "ops"})
local variant = obj({
  name = str, kind = {type = "string", enum = {"fp32", "static", "static_per_tensor", "dynamic", "f16", "bf16", "qat",
                                               "w4a8", "qat_w4a8", "mixed", "other"}},
  status = {type = "string", enum = {"ok", "failed", "skipped"}}, error = str, reason = str, note = str, gpu = str,
  accuracy = obj({top1 = num, top5 = num, loss = num, n = int, ties = int, agree = num, ref_top1 = num, drop = num,
                  lost = int, gained = int}, {"top1", "n", "ties"}),
  size = obj({bytes = int, file_bytes = int, params = int, reduction = num}, {"bytes", "file_bytes", "params"}),
  macs = obj({per_image = int, f32 = int, int8 = int,
              live = obj({per_image = int, f32 = int, int8 = int}, {"per_image", "f32", "int8"})},
             {"per_image", "f32", "int8"}),
  precision = {type = "object"},
  memory = arr(memory), latency = arr(latency), breakdown = arr(breakdown),
}, {"name", "kind", "status", "gpu"}, {
  when = {{key = "status", value = "ok", required = {"size", "macs", "memory", "latency", "breakdown"}},
          {key = "status", value = "failed", required = {"error"}},
          {key = "status", value = "skipped", required = {"reason"}}}})
local suite = obj({
  schema = {type = "string", const = "qlab.bench/1"}, name = str, created = str, reference = str, gpu = str,
  config = obj({batch_sizes = arr(int), threads = arr(int), runs = arr(int), rounds = int, warmup = int,
                profile_runs = int, quick = bool}, {"batch_sizes", "threads", "runs", "rounds", "warmup", "quick"}),
  variants = arr(variant),
}, {"schema", "name", "reference", "config", "variants"})
local level = obj({isa = isa, fp32_gmacs = num, int8_gmacs = num, seconds = num}, {"isa", "fp32_gmacs", "int8_gmacs"})
local basis_one = obj({isa = isa, gmacs = num}, {"isa", "gmacs"})

M.schema = obj({
  schema = {type = "string", const = M.SCHEMA}, title = str, created = str, command = str, gpu = str,
  notes = arr(str),
  machine = obj({cpu_model = str, vendor = str, family = int, model = int, stepping = int, cores = int, threads = int,
                 isa = isa, isa_best = isa, kernel = str, compiler = str, qlab_version = str, lua_version = str,
                 cjson_version = str,
                 openblas = obj({config = str, core = str, isa = isa, threads = int}, {"config", "core", "isa"}),
                 env = {type = "object"}},
                {"cpu_model", "cores", "threads", "isa", "isa_best", "openblas", "env", "qlab_version"}),
  peak = obj({levels = arr(level), seconds = num, basis = obj({int8 = basis_one, f32 = basis_one}, {"int8", "f32"})},
             {"levels", "basis"}),
  suites = arr(suite),
  recommendations = arr(obj({id = {type = "string", enum = {"latency", "throughput", "size", "keep_higher",
                                                             "dynamic_vs_static", "per_tensor"}},
                             suite = str, variant = str, text = str, figures = {type = "object"}},
                            {"id", "suite", "text", "figures"})),
  sensitivity = {type = "object"},
  expected = arr(obj({label = str, suite = str, variant = str, drop = str, speedup = str, size = str,
                      ours = {type = "object"}}, {"label", "suite", "variant"})),
}, {"schema", "created", "machine", "peak", "gpu", "suites", "recommendations"})

local function type_of(v)
  local t = type(v)
  if t == "number" then return math.type(v) == "integer" and "integer" or "number" end
  if t == "table" then
    local mt = getmetatable(v)
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    if n == 0 then return (mt and mt.__json == "array") and "array" or "empty" end
    return n == #v and "array" or "object"
  end
  return t
end

-- Returns true, or false and "path: what is wrong".
function M.validate(v, s, path)
  path = path or "$"
  local t = type_of(v)
  local want = s.type
  local ok = want == nil or t == want or (want == "number" and t == "integer")
             or (t == "empty" and (want == "object" or want == "array"))
             or (want == "integer" and t == "number" and v == math.floor(v))
  if not ok then return false, string.format("%s: expected %s, got %s", path, want, t) end
  if s.const ~= nil and v ~= s.const then return false, string.format("%s: expected %q", path, s.const) end
  if s.enum then
    local found = false
    for _, e in ipairs(s.enum) do if e == v then found = true end end
    if not found then return false, string.format("%s: %q is not one of %s", path, tostring(v), table.concat(s.enum, ", ")) end
  end
  if want == "object" and t ~= "empty" or (want == "object" and s.required and #s.required > 0) then
    local function need(keys)
      for _, k in ipairs(keys) do
        if v[k] == nil then return false, string.format("%s: missing '%s'", path, k) end
      end
      return true
    end
    local r, e = need(s.required or {})
    if not r then return r, e end
    for _, w in ipairs(s.when or {}) do
      if v[w.key] == w.value then r, e = need(w.required); if not r then return r, e end end
    end
    for k, ps in pairs(s.properties or {}) do
      if v[k] ~= nil then
        r, e = M.validate(v[k], ps, path .. "." .. k)
        if not r then return r, e end
      end
    end
  elseif want == "array" and s.items then
    for i, x in ipairs(v) do
      local r, e = M.validate(x, s.items, path .. "[" .. i .. "]")
      if not r then return r, e end
    end
  end
  return true
end

------------------------------------------------------------------------------------------------
-- Formatting
local function ms(v) if not v then return "-" end return v < 10 and string.format("%.3f ms", v) or string.format("%.1f ms", v) end
local function mb(b)
  if not b then return "-" end
  if b < 1e5 then return string.format("%.1f kB", b / 1e3) end
  return string.format("%.2f MB", b / 1e6)
end
local function pct(v) if not v then return "-" end return string.format("%.2f %%", v) end
local function x_(v) if not v then return "-" end return string.format("%.2fx", v) end
local function pts(v) if not v then return "-" end return string.format("%.2f", v) end
local function ips(v) if not v then return "-" end return string.format("%.0f", v) end

-- The configurations a suite's headline figures use: batch-1 latency at the first thread count,
-- throughput at the largest batch and thread count.
local function headline(s)
  local c = s.config
  local b1 = c.batch_sizes[1]
  for _, b in ipairs(c.batch_sizes) do b1 = math.min(b1, b) end
  local bmax, tmax = 0, 0
  for _, b in ipairs(c.batch_sizes) do bmax = math.max(bmax, b) end
  for _, t in ipairs(c.threads) do tmax = math.max(tmax, t) end
  return {batch = b1, threads = c.threads[1]}, {batch = bmax, threads = tmax}
end

local function lat(v, cfg)
  for _, l in ipairs(v.latency or {}) do
    if l.batch == cfg.batch and l.threads == cfg.threads then return l end
  end
end

local function mem_at(v, batch)
  for _, m in ipairs(v.memory or {}) do if m.batch == batch then return m end end
end

local function ok_variants(s)
  local l = {}
  for _, v in ipairs(s.variants) do if v.status == "ok" then l[#l + 1] = v end end
  return l
end

local function by_kind(s, kind)
  for _, v in ipairs(s.variants) do if v.status == "ok" and v.kind == kind then return v end end
end

local function cfg_str(c) return string.format("batch %d, %d thread%s", c.batch, c.threads, c.threads == 1 and "" or "s") end

------------------------------------------------------------------------------------------------
-- Recommendations
local function sensitivity_for(opts, name)
  local s = opts.sensitivity
  if type(s) ~= "table" then return nil end
  if s[name] then return s[name] end
  if #s > 0 and type(s[1]) == "table" and s[1].name then return s end
end

function M.recommend(suites, opts)
  opts = opts or {}
  local max_drop = opts.max_drop or 1.0
  local tol = opts.per_tensor_tolerance or 0.3
  local recs = {}
  local function add(r) recs[#recs + 1] = r end
  for _, s in ipairs(suites) do
    local c1, cn = headline(s)
    local ref
    for _, v in ipairs(s.variants) do if v.name == s.reference and v.status == "ok" then ref = v end end
    local eligible = {}
    for _, v in ipairs(ok_variants(s)) do
      local d = v.accuracy and v.accuracy.drop
      if d == nil or d <= max_drop then eligible[#eligible + 1] = v end
    end
    local function drop_str(v)
      return v.accuracy and v.accuracy.drop and string.format("top-1 %.2f %% (drop %.2f points)", v.accuracy.top1,
        v.accuracy.drop) or "accuracy not measured"
    end
    local function best(cmp)
      local b
      for _, v in ipairs(eligible) do if cmp(v, b) then b = v end end
      return b
    end
    -- batch-1 latency
    local bl = best(function(v, b) local l = lat(v, c1); return l and (not b or l.median < lat(b, c1).median) end)
    if bl then
      local l, rl = lat(bl, c1), ref and lat(ref, c1)
      add{id = "latency", suite = s.name, variant = bl.name, figures = {median_ms = l.median, p99_ms = l.p99,
          speedup = l.speedup, batch = c1.batch, threads = c1.threads, drop = bl.accuracy and bl.accuracy.drop},
          text = string.format("For batch-%d latency on %s use %s: %s median (p99 %s) at %s%s; %s.", c1.batch, s.name,
            bl.name, ms(l.median), ms(l.p99), cfg_str(c1),
            rl and bl ~= ref and string.format(", %s %s's %s", x_(l.speedup), ref.name, ms(rl.median)) or
              (bl == ref and string.format(" — no variant within %.1f points of top-1 is faster", max_drop) or ""),
            drop_str(bl))}
    end
    -- throughput
    local bt = best(function(v, b) local l = lat(v, cn); return l and (not b or l.images_per_s > lat(b, cn).images_per_s) end)
    if bt then
      local l = lat(bt, cn)
      add{id = "throughput", suite = s.name, variant = bt.name, figures = {images_per_s = l.images_per_s,
          speedup = l.speedup, gmacs = l.gmacs, peak_fraction = l.peak_fraction, batch = cn.batch, threads = cn.threads},
          text = string.format("For throughput on %s use %s: %s images/s at %s (%s %s), %.1f GMAC/s = %.0f %% of the "
            .. "measured peak; %s.", s.name, bt.name, ips(l.images_per_s), cfg_str(cn), x_(l.speedup),
            ref and ref.name or "reference", l.gmacs, 100 * l.peak_fraction, drop_str(bt))}
    end
    -- size
    local bs = best(function(v, b) return v.size and (not b or v.size.bytes < b.size.bytes) end)
    if bs then
      add{id = "size", suite = s.name, variant = bs.name, figures = {bytes = bs.size.bytes, file_bytes = bs.size.file_bytes,
          reduction = bs.size.reduction},
          text = string.format("For size on %s use %s: %s of weights (%s on disk), %s smaller than %s; %s.", s.name,
            bs.name, mb(bs.size.bytes), mb(bs.size.file_bytes), x_(bs.size.reduction), ref and ref.name or "the reference",
            drop_str(bs))}
    end
    -- layers to keep in higher precision
    local rank = sensitivity_for(opts, s.name)
    if rank and #rank > 0 then
      local keep, figs = {}, {}
      for i = 1, math.min(opts.keep_layers or 3, #rank) do
        local e = rank[i]
        if e.drop ~= nil then
          if e.drop > 0.05 then keep[#keep + 1] = string.format("%s (%.2f points)", e.name, e.drop); figs[e.name] = e.drop end
        elseif e.sqnr_db then
          keep[#keep + 1] = string.format("%s (%.1f dB SQNR)", e.name, e.sqnr_db); figs[e.name] = e.sqnr_db
        end
      end
      if #keep > 0 then
        add{id = "keep_higher", suite = s.name, figures = figs,
            text = string.format("Keep in higher precision on %s: %s — quantizing each of these alone costs the most "
              .. "(%s).", s.name, table.concat(keep, ", "), rank[1].drop ~= nil and "top-1 drop vs FP32" or "logit SQNR vs FP32")}
      else
        add{id = "keep_higher", suite = s.name, figures = {top_drop = rank[1].drop},
            text = string.format("No layer of %s needs higher precision: the most sensitive, %s, costs %.2f points "
              .. "quantized alone.", s.name, rank[1].name, rank[1].drop or 0)}
      end
    end
    -- dynamic vs static
    local dyn, st = by_kind(s, "dynamic"), by_kind(s, "static")
    if dyn and st then
      local ld, ls = lat(dyn, c1), lat(st, c1)
      local nd, ns = lat(dyn, cn), lat(st, cn)
      local dd, sd = dyn.accuracy and dyn.accuracy.drop or 0, st.accuracy and st.accuracy.drop or 0
      local dyn_fast = ld and ls and ld.median < ls.median
      local dyn_tput = nd and ns and nd.images_per_s > ns.images_per_s
      local text
      if dyn_fast and dd <= sd + 0.1 then
        text = string.format("On %s dynamic beats static: %s vs %s at %s with a drop of %.2f vs %.2f points", s.name,
          ms(ld.median), ms(ls.median), cfg_str(c1), dd, sd)
      elseif dyn_fast then
        text = string.format("On %s dynamic is faster at %s (%s vs %s) but loses more accuracy (%.2f vs %.2f points): "
          .. "static wins unless latency matters more", s.name, cfg_str(c1), ms(ld.median), ms(ls.median), dd, sd)
      else
        text = string.format("On %s static beats dynamic: %s vs %s at %s (drop %.2f vs %.2f points)", s.name,
          ms(ls and ls.median), ms(ld and ld.median), cfg_str(c1), sd, dd)
      end
      text = text .. string.format("; at %s %s does %s images/s against %s's %s.", cfg_str(cn),
        dyn_tput and dyn.name or st.name, ips(dyn_tput and nd.images_per_s or (ns and ns.images_per_s)),
        dyn_tput and st.name or dyn.name, ips(dyn_tput and (ns and ns.images_per_s) or (nd and nd.images_per_s)))
      add{id = "dynamic_vs_static", suite = s.name, variant = dyn_fast and dd <= sd + 0.1 and dyn.name or st.name,
          figures = {dynamic_ms = ld and ld.median, static_ms = ls and ls.median, dynamic_drop = dd, static_drop = sd,
                     dynamic_images_per_s = nd and nd.images_per_s, static_images_per_s = ns and ns.images_per_s},
          text = text}
    end
    -- per-tensor vs per-channel
    local pt = by_kind(s, "static_per_tensor")
    if pt and st and pt.accuracy and st.accuracy then
      local d = st.accuracy.top1 - pt.accuracy.top1
      local text
      if d <= tol then
        text = string.format("Per-tensor weights are enough on %s: top-1 %.2f %% vs %.2f %% per-channel (%.2f points, "
          .. "within %.1f), agreement with FP32 %s vs %s.", s.name, pt.accuracy.top1, st.accuracy.top1, d, tol,
          pct(pt.accuracy.agree), pct(st.accuracy.agree))
      else
        text = string.format("Keep per-channel weights on %s: per-tensor loses %.2f points of top-1 (%.2f %% vs %.2f %%), "
          .. "more than %.1f.", s.name, d, pt.accuracy.top1, st.accuracy.top1, tol)
      end
      add{id = "per_tensor", suite = s.name, variant = d <= tol and pt.name or st.name,
          figures = {per_tensor_top1 = pt.accuracy.top1, per_channel_top1 = st.accuracy.top1, difference = d,
                     tolerance = tol}, text = text}
    end
  end
  return recs
end

------------------------------------------------------------------------------------------------
-- Op types grouped into families for the stacked chart (the exact op types are in results.json).
local families = {conv2d = "conv", qconv2d = "conv", f16conv2d = "conv", bf16conv2d = "conv", conv_bn = "conv",
                  linear = "linear", qlinear = "linear", dlinear = "linear", f16linear = "linear", bf16linear = "linear",
                  lstm = "lstm", dlstm = "lstm", f16lstm = "lstm", bf16lstm = "lstm", batchnorm2d = "batchnorm",
                  maxpool2d = "pool", avgpool2d = "pool", global_avgpool = "pool", qmaxpool2d = "pool",
                  qglobal_avgpool = "pool", relu = "activation", relu6 = "activation", qrelu = "activation",
                  add = "add", qadd = "add", quantize = "quantize / dequantize", dequantize = "quantize / dequantize",
                  fakequant = "quantize / dequantize"}
local family_order = {"conv", "linear", "lstm", "batchnorm", "pool", "activation", "add", "quantize / dequantize", "other"}
M.op_family = function(op) return families[op] or "other" end

-- Charts of one suite: {{id, title, svg}}
function M.charts(s, opts)
  local out = {}
  local c1, cn = headline(s)
  local vs = ok_variants(s)
  local points = {}
  for _, v in ipairs(vs) do
    local l = lat(v, c1)
    if l and l.speedup and v.accuracy then
      points[#points + 1] = {name = v.name, x = l.speedup, y = v.accuracy.top1,
                             tip = string.format("%.2fx, top-1 %.2f %%", l.speedup, v.accuracy.top1)}
    end
  end
  if #points > 0 then
    out[#out + 1] = {id = "pareto", title = s.name .. ": accuracy vs speed-up", svg = svg.scatter{
      title = string.format("%s: top-1 vs speed-up over %s (%s)", s.name, s.reference, cfg_str(c1)),
      x_label = "speed-up (x, median latency)", y_label = "top-1 (%)", points = points}}
  end
  local bars = {}
  for _, v in ipairs(vs) do
    bars[#bars + 1] = {name = v.name, value = v.size.bytes / 1e6,
                       label = string.format("%s%s", mb(v.size.bytes),
                         v.size.reduction and v.size.reduction ~= 1 and string.format(" (%.1fx)", v.size.reduction) or "")}
  end
  if #bars > 0 then
    out[#out + 1] = {id = "size", title = s.name .. ": size", svg = svg.hbars{title = s.name .. ": weights in memory",
      unit = "MB", bars = bars}}
  end
  -- stacked latency by op type (batch of the headline latency, first thread count)
  local seen, sbars = {}, {}
  for _, v in ipairs(vs) do
    local bd
    for _, b in ipairs(v.breakdown or {}) do if b.batch == c1.batch then bd = b end end
    if bd then
      local by = {}
      for _, o in ipairs(bd.ops) do
        local f = M.op_family(o.op)
        by[f] = (by[f] or 0) + o.ms
        seen[f] = true
      end
      local parts = {}
      for _, f in ipairs(family_order) do if by[f] then parts[#parts + 1] = {f, by[f]} end end
      sbars[#sbars + 1] = {name = v.name, parts = parts}
    end
  end
  local keys = {}
  for _, f in ipairs(family_order) do if seen[f] then keys[#keys + 1] = f end end
  if #sbars > 0 then
    out[#out + 1] = {id = "breakdown", title = s.name .. ": latency by op type", svg = svg.stacked{
      title = string.format("%s: time per op family (batch %d, profiled)", s.name, c1.batch), unit = "ms per batch",
      bars = sbars, keys = keys}}
  end
  local groups = {}
  for _, v in ipairs(vs) do
    local m = mem_at(v, cn.batch)
    if m then
      groups[#groups + 1] = {name = v.name, values = {m.weights_bytes / 1e6, m.plan_bytes / 1e6,
        m.alloc_peak_bytes / 1e6, m.rss_growth_bytes / 1e6}}
    end
  end
  if #groups > 0 then
    out[#out + 1] = {id = "memory", title = s.name .. ": memory", svg = svg.grouped{
      title = string.format("%s: memory during inference (batch %d)", s.name, cn.batch), unit = "MB",
      groups = groups, keys = {"weights", "planned activations", "allocator peak", "RSS growth"}}}
  end
  local rank = sensitivity_for(opts, s.name)
  if rank and #rank > 0 then
    local sb, use_drop = {}, rank[1].drop ~= nil
    for i = 1, math.min(20, #rank) do
      local e = rank[i]
      local v = use_drop and e.drop or e.sqnr_db
      if v then sb[#sb + 1] = {name = e.name, value = math.max(0, v), label = string.format(use_drop and "%.2f" or "%.1f dB", v),
                               color = svg.palette[4]} end
    end
    out[#out + 1] = {id = "sensitivity", title = s.name .. ": layer sensitivity", svg = svg.hbars{
      title = string.format("%s: per-layer sensitivity, %s", s.name,
        use_drop and "top-1 drop (higher = more sensitive)" or "logit SQNR (lower = more sensitive)"),
      desc = opts.sensitivity_label, unit = (use_drop and "points" or "dB") .. ", " .. (opts.sensitivity_label or
        "one layer quantized"), bars = sb}}
  end
  return out
end

------------------------------------------------------------------------------------------------
-- The document (what results.json holds)
function M.document(results, opts)
  opts = opts or {}
  local suites = (results.schema == "qlab.bench/1") and {results} or results
  if type(suites) ~= "table" or #suites == 0 then error("report: results is not a qlab.bench result nor a list of them", 3) end
  for i, s in ipairs(suites) do
    if type(s) ~= "table" or s.schema ~= "qlab.bench/1" then error("report: results[" .. i .. "] is not a qlab.bench result", 3) end
  end
  local first = suites[1]
  local doc = {schema = M.SCHEMA, title = opts.title or "qlab benchmark report", created = os.date("!%Y-%m-%dT%H:%M:%SZ"),
               command = opts.command, gpu = first.gpu, machine = first.machine, peak = first.peak,
               notes = core.json_array(opts.notes or {}), suites = {}}
  for i, s in ipairs(suites) do
    local c = {}
    for k, v in pairs(s) do if k ~= "machine" and k ~= "peak" then c[k] = v end end
    doc.suites[i] = c
  end
  if type(opts.sensitivity) == "table" then
    doc.sensitivity = {}
    for _, s in ipairs(doc.suites) do doc.sensitivity[s.name] = sensitivity_for(opts, s.name) end
  end
  doc.recommendations = core.json_array(M.recommend(doc.suites, opts))
  if opts.expected then
    doc.expected = {}
    for _, e in ipairs(opts.expected) do
      local row = {label = e.label, suite = e.suite, variant = e.variant, drop = e.drop, speedup = e.speedup, size = e.size,
                   ours = {}}
      for _, s in ipairs(doc.suites) do
        if s.name == e.suite then
          local c1, cn = headline(s)
          for _, v in ipairs(s.variants) do
            if v.name == e.variant then
              row.ours.status = v.status
              row.ours.error = v.error
              row.ours.reason = v.reason
              if v.status == "ok" then
                row.ours.drop = v.accuracy and v.accuracy.drop
                row.ours.speedup = lat(v, c1) and lat(v, c1).speedup
                row.ours.speedup_throughput = lat(v, cn) and lat(v, cn).speedup
                row.ours.size_reduction = v.size.reduction
              end
            end
          end
        end
      end
      doc.expected[#doc.expected + 1] = row
    end
  end
  return doc
end

------------------------------------------------------------------------------------------------
-- Markdown
local function md_table(head, rows)
  local out = {"| " .. table.concat(head, " | ") .. " |", "|" .. string.rep(" --- |", #head)}
  for _, r in ipairs(rows) do out[#out + 1] = "| " .. table.concat(r, " | ") .. " |" end
  return table.concat(out, "\n")
end

local function summary_rows(s)
  local c1, cn = headline(s)
  local rows = {}
  for _, v in ipairs(s.variants) do
    if v.status == "ok" then
      local a, l, n, m = v.accuracy or {}, lat(v, c1) or {}, lat(v, cn) or {}, mem_at(v, cn.batch) or {}
      rows[#rows + 1] = {v.name, v.kind, a.top1 and pct(a.top1) or "-", pts(a.drop), a.agree and pct(a.agree) or "-",
        a.ties and tostring(a.ties) or "-", ms(l.median), ms(l.p95), ms(l.p99), l.spread_pct and string.format("%.0f %%", l.spread_pct) or "-",
        x_(l.speedup), ips(n.images_per_s), x_(n.speedup), n.gmacs and string.format("%.1f", n.gmacs) or "-",
        n.peak_fraction and string.format("%.0f %%", 100 * n.peak_fraction) or "-", mb(v.size.bytes), mb(v.size.file_bytes),
        x_(v.size.reduction), mb(m.alloc_peak_bytes), v.gpu}
    else
      local why = v.status == "skipped" and ("skipped: " .. tostring(v.reason)) or ("**failed**: " .. tostring(v.error))
      rows[#rows + 1] = {v.name, v.kind, (why:gsub("[\n|]", " ")), "", "", "", "", "", "", "",
        "", "", "", "", "", "", "", "", "", v.gpu}
    end
  end
  return rows
end

local function summary_head(s)
  local c1, cn = headline(s)
  local b1 = string.format("b%d t%d", c1.batch, c1.threads)
  local bn = string.format("b%d t%d", cn.batch, cn.threads)
  return {"variant", "kind", "top-1", "drop", "agree", "ties", b1 .. " median", "p95", "p99", "spread", "speed-up",
          bn .. " img/s", "speed-up", "GMAC/s", "of peak", "size", "file", "smaller", "alloc peak b" .. cn.batch, "GPU"}
end

local function machine_lines(doc)
  local m, p = doc.machine, doc.peak
  local lv = {}
  for _, l in ipairs(p.levels) do
    lv[#lv + 1] = string.format("%s %.1f FP32 / %.1f INT8 GMAC/s", l.isa, l.fp32_gmacs, l.int8_gmacs)
  end
  local env = {}
  local names = {}
  for k in pairs(m.env) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do env[#env + 1] = k .. "=" .. (m.env[k] == false and "(unset)" or tostring(m.env[k])) end
  return {
    string.format("CPU: %s (%s family %d model %d), %d cores; qlab threads %d", m.cpu_model, m.vendor or "?", m.family or 0,
      m.model or 0, m.cores, m.threads),
    string.format("ISA: INT8 kernels %s (best %s); OpenBLAS core %s (%s), %s", m.isa, m.isa_best, m.openblas.core,
      m.openblas.isa, m.openblas.config),
    "Environment: " .. table.concat(env, ", "),
    "Measured one-core peak: " .. table.concat(lv, "; ") .. string.format(" (fractions use INT8 %s %.1f, FP32 %s %.1f GMAC/s per thread)",
      p.basis.int8.isa, p.basis.int8.gmacs, p.basis.f32.isa, p.basis.f32.gmacs),
    string.format("Software: qlab %s, %s, cJSON %s, %s, %s", m.qlab_version, m.lua_version or "Lua", m.cjson_version or "(not recorded)",
      m.compiler and ("gcc " .. m.compiler) or "", m.kernel or ""),
    "GPU: " .. doc.gpu,
  }
end

local function expected_rows(doc)
  local rows = {}
  for _, e in ipairs(doc.expected or {}) do
    local o = e.ours
    if o.status == "ok" then
      rows[#rows + 1] = {e.label, e.suite, e.variant, e.drop or "-", pts(o.drop) .. M.verdict(e.drop, o.drop), e.speedup or "-",
        x_(o.speedup) .. " / " .. x_(o.speedup_throughput) .. M.verdict(e.speedup, o.speedup), e.size or "-",
        x_(o.size_reduction)}
    else
      local why = o.status == "skipped" and ("skipped: " .. tostring(o.reason)) or
                  o.status and ("failed: " .. tostring(o.error)) or "not run"
      rows[#rows + 1] = {e.label, e.suite, e.variant, (why:gsub("[\n|]", " ")), "", "", "", "", "", skipped = true}
    end
  end
  return rows
end
local expected_head = {"technique", "model", "variant", "lab: drop", "ours: drop (points)", "lab: speed-up",
                       "ours: speed-up (batch 1 / throughput)", "lab: size", "ours: smaller"}

-- "< 1" / ">= 1.5x" / "> 1x at batch 1" against a number: "ok", "MISSED", or "" when the lab states none.
function M.verdict(expect, v)
  if not expect or not v then return "" end
  local op, x = tostring(expect):match("^%s*([<>]=?)%s*([%d%.]+)")
  x = tonumber(x)
  if not op or not x then return "" end
  local ok = (op == "<" and v < x) or (op == "<=" and v <= x) or (op == ">" and v > x) or (op == ">=" and v >= x)
  return ok and " ok" or " MISSED"
end

function M.markdown(doc, chart_files)
  local out = {"# " .. doc.title, "", "Generated " .. doc.created .. " by qlab.report; the numbers are in results.json (schema "
    .. doc.schema .. ", docs/report.md)." , ""}
  if doc.command then out[#out + 1] = "Command: `" .. doc.command .. "`"; out[#out + 1] = "" end
  out[#out + 1] = "## Machine"
  out[#out + 1] = ""
  for _, l in ipairs(machine_lines(doc)) do out[#out + 1] = "- " .. l end
  for _, n in ipairs(doc.notes or {}) do out[#out + 1] = "- " .. n end
  out[#out + 1] = ""
  for _, s in ipairs(doc.suites) do
    out[#out + 1] = "## " .. s.name
    out[#out + 1] = ""
    out[#out + 1] = string.format("Reference %s; %s timed runs per configuration (by batch size) in %d interleaved rounds; batch sizes %s, "
      .. "threads %s%s.", s.reference, table.concat(s.config.runs, " / "), s.config.rounds, table.concat(s.config.batch_sizes, ", "),
      table.concat(s.config.threads, ", "), s.config.quick and " (quick)" or "")
    out[#out + 1] = ""
    out[#out + 1] = md_table(summary_head(s), summary_rows(s))
    out[#out + 1] = ""
    for _, v in ipairs(s.variants) do
      if v.note then out[#out + 1] = "- " .. v.name .. ": " .. v.note end
    end
    out[#out + 1] = ""
    for _, c in ipairs(chart_files[s.name] or {}) do
      out[#out + 1] = string.format("![%s](%s)", c.title, c.file)
      out[#out + 1] = ""
    end
  end
  if doc.expected and #doc.expected > 0 then
    out[#out + 1] = "## The lab's expected results beside ours"
    out[#out + 1] = ""
    out[#out + 1] = md_table(expected_head, expected_rows(doc))
    out[#out + 1] = ""
  end
  out[#out + 1] = "## Recommendations"
  out[#out + 1] = ""
  for _, r in ipairs(doc.recommendations) do out[#out + 1] = "- " .. r.text end
  if #doc.recommendations == 0 then out[#out + 1] = "- (no variant measured)" end
  out[#out + 1] = ""
  return table.concat(out, "\n")
end

------------------------------------------------------------------------------------------------
-- HTML
local esc = svg.escape
local CSS = [[
body{font-family:sans-serif;margin:24px auto;max-width:1280px;color:#222;line-height:1.4}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}
table{border-collapse:collapse;font-size:11.5px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 5px;text-align:right;white-space:nowrap}
th{background:#f4f4f4}td:first-child,td:nth-child(2){text-align:left}
td.gpu{white-space:normal;color:#666;width:90px;text-align:center;vertical-align:middle}tr.failed td{color:#a00;text-align:left}tr.skipped td{color:#777;text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts svg{border:1px solid #eee;max-width:100%;height:auto}
.machine li,.recs li{margin:2px 0}.meta{color:#666;font-size:12px}.wide{overflow-x:auto}
]]

-- A table; a last column headed "GPU" holds one cell spanning every row (its text is the same).
local function html_table(head, rows, classes)
  local out = {"<div class=\"wide\"><table><tr>"}
  for _, h in ipairs(head) do out[#out + 1] = "<th>" .. esc(h) .. "</th>" end
  out[#out + 1] = "</tr>"
  local gpu = head[#head] == "GPU"
  for i, r in ipairs(rows) do
    local cls = classes and classes[i]
    out[#out + 1] = (cls and cls ~= "") and ("<tr class=\"" .. (cls == "skipped3" and "skipped" or cls) .. "\">") or "<tr>"
    local ncols = gpu and #head - 1 or #head
    if cls == "skipped3" then   -- three name columns, then the reason
      out[#out + 1] = "<td>" .. esc(r[1]) .. "</td><td>" .. esc(r[2]) .. "</td><td>" .. esc(r[3]) .. "</td><td colspan=\""
        .. (ncols - 3) .. "\">" .. esc(r[4]) .. "</td>"
      cls = "skipped"
    elseif cls == "failed" or cls == "skipped" then
      out[#out + 1] = "<td>" .. esc(r[1]) .. "</td><td>" .. esc(r[2]) .. "</td><td colspan=\"" .. (ncols - 2) .. "\">"
        .. esc(r[3]) .. "</td>"
    else
      for j = 1, ncols do out[#out + 1] = "<td>" .. esc(r[j]) .. "</td>" end
    end
    if gpu and i == 1 then
      out[#out + 1] = "<td class=\"gpu\" rowspan=\"" .. #rows .. "\">" .. esc(r[#head]) .. "</td>"
    end
    out[#out + 1] = "</tr>"
  end
  out[#out + 1] = "</table></div>"
  return table.concat(out)
end

function M.html(doc, charts)
  local out = {"<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" .. esc(doc.title) .. "</title>",
    "<style>" .. CSS .. "</style></head><body>", "<h1>" .. esc(doc.title) .. "</h1>",
    "<p class=\"meta\">Generated " .. esc(doc.created) .. " by qlab.report; numbers in results.json (schema " .. esc(doc.schema)
    .. ")." .. (doc.command and (" Command: <code>" .. esc(doc.command) .. "</code>") or "") .. "</p>",
    "<h2>Machine</h2><ul class=\"machine\">"}
  for _, l in ipairs(machine_lines(doc)) do out[#out + 1] = "<li>" .. esc(l) .. "</li>" end
  for _, n in ipairs(doc.notes or {}) do out[#out + 1] = "<li>" .. esc(n) .. "</li>" end
  out[#out + 1] = "</ul>"
  for _, s in ipairs(doc.suites) do
    out[#out + 1] = "<h2>" .. esc(s.name) .. "</h2>"
    out[#out + 1] = "<p class=\"meta\">" .. esc(string.format("Reference %s; %s timed runs per configuration (by batch size) in %d "
      .. "interleaved rounds; batch sizes %s, threads %s%s. Latency per batch; drop and agreement against the reference, in points and %%.",
      s.reference, table.concat(s.config.runs, " / "), s.config.rounds, table.concat(s.config.batch_sizes, ", "), table.concat(s.config.threads, ", "),
      s.config.quick and " (quick)" or "")) .. "</p>"
    local classes = {}
    for i, v in ipairs(s.variants) do classes[i] = v.status == "ok" and "" or v.status end
    local rows = summary_rows(s)
    for i, v in ipairs(s.variants) do
      if v.status == "failed" then rows[i][3] = "failed: " .. tostring(v.error)
      elseif v.status == "skipped" then rows[i][3] = "skipped: " .. tostring(v.reason) end
    end
    out[#out + 1] = html_table(summary_head(s), rows, classes)
    local notes = {}
    for _, v in ipairs(s.variants) do if v.note then notes[#notes + 1] = "<li>" .. esc(v.name .. ": " .. v.note) .. "</li>" end end
    if #notes > 0 then out[#out + 1] = "<ul class=\"meta\">" .. table.concat(notes) .. "</ul>" end
    out[#out + 1] = "<div class=\"charts\">"
    for _, c in ipairs(charts[s.name] or {}) do out[#out + 1] = c.svg end
    out[#out + 1] = "</div>"
  end
  if doc.expected and #doc.expected > 0 then
    out[#out + 1] = "<h2>The lab's expected results beside ours</h2>"
    local rows, cls = expected_rows(doc), {}
    for i, r in ipairs(rows) do cls[i] = r.skipped and "skipped3" or "" end
    out[#out + 1] = html_table(expected_head, rows, cls)
    out[#out + 1] = "<p class=\"meta\">ok / MISSED: our figure against the lab's stated bound (drop in points of top-1; "
      .. "speed-up at batch 1). Sizes are shown, not judged: INT8 files keep f32 scales and biases.</p>"
  end
  out[#out + 1] = "<h2>Recommendations</h2><ul class=\"recs\">"
  for _, r in ipairs(doc.recommendations) do out[#out + 1] = "<li>" .. esc(r.text) .. "</li>" end
  if #doc.recommendations == 0 then out[#out + 1] = "<li>(no variant measured)</li>" end
  out[#out + 1] = "</ul></body></html>"
  return table.concat(out, "\n")
end

------------------------------------------------------------------------------------------------
local function write(path, text)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "wb"))
  f:write(text)
  assert(f:close())
  assert(os.rename(tmp, path))
end

local function safe(name) return (name:gsub("[^%w%-_]", "_")) end

function M.report(results, opts)
  opts = opts or {}
  local dir = opts.dir or "out/report"
  assert(os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'"), "report: cannot create " .. dir)
  local doc = M.document(results, opts)
  local ok, err = M.validate(doc, M.schema)
  if not ok then error("report: the document does not match its schema: " .. err, 2) end
  local charts, files, chart_files = {}, {}, {}
  for _, s in ipairs(doc.suites) do
    charts[s.name] = M.charts(s, opts)
    chart_files[s.name] = {}
    for _, c in ipairs(charts[s.name]) do
      local f = safe(s.name) .. "_" .. c.id .. ".svg"
      write(dir .. "/" .. f, '<?xml version="1.0" encoding="UTF-8"?>\n' .. c.svg .. "\n")
      chart_files[s.name][#chart_files[s.name] + 1] = {title = c.title, file = f}
      files[#files + 1] = dir .. "/" .. f
    end
  end
  write(dir .. "/results.json", core.json_encode(doc, true) .. "\n")
  write(dir .. "/report.md", M.markdown(doc, chart_files))
  write(dir .. "/report.html", M.html(doc, charts))
  table.insert(files, 1, dir .. "/report.html")
  table.insert(files, 1, dir .. "/results.json")
  table.insert(files, 1, dir .. "/report.md")
  return {dir = dir, files = files, document = doc, recommendations = doc.recommendations}
end

return M
