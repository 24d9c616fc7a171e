-- The workbench's actions (`wb` in the console). Every key of the workbench
-- is one call of this module, echoed into the console log, and a saved
-- session is a script of these calls that `qlab --script` replays headless:
-- nothing here needs a terminal. Results go through wb.out (print when
-- headless; the console log in the workbench) and qlab.record.
--
--   wb.open(path [, {val_images =, calib_batch =, eval_batch =}])
--   wb.set_precision(target, level)   level: fp32 fp16 bf16 int8 w4a8 dynamic keep
--   wb.set_observer(target, kind)     minmax moving_average histogram percentile entropy mse
--   wb.set_granularity(target, g)     per_channel per_tensor (of the weights)
--       target: "default" (the map's default), a layer name, an anchored Lua
--       pattern ("layer4.*") or a list of layer names
--   wb.map()           the qconfig map as the Lua code `m:prepare` takes
--   wb.prepare()       fuse + prepare m with the map (from the FP32 model)
--   wb.calibrate(n)    n batches of training images through the observers
--   wb.convert()       quantized kernels (then dynamic INT8 on the layers set so)
--   wb.evaluate()      top-1 / top-5 of m (and once of fp32) on data.val
--   wb.profile()       batch-1 latency and each layer's share of it
--   wb.compare()       SQNR of every layer's output vs FP32
--   wb.sensitivity()   top-1 drop when each conv / linear alone is INT8 (live: actions_live.lua)
--   wb.keep_sensitive(k, level), wb.mixed_precision(), wb.bench(), wb.report(dir),
--   wb.ranges(name, bins), wb.weights(name, cols): actions_live.lua
--   wb.reset()         back to the FP32 model, the map kept
--   wb.save(path)      the model, atomically (.qlm)
--   wb.save_session(path)  the session so far as a script
local qlab = require "qlab"
local pretty = require "qlab.workbench.pretty"

local wb = {}

wb.LEVELS = {"fp32", "fp16", "bf16", "int8", "w4a8", "dynamic"}
wb.OBSERVERS = {"minmax", "moving_average", "histogram", "percentile", "entropy", "mse"}
wb.GRANULARITIES = {"per_channel", "per_tensor"}
local level_ok, obs_ok, gran_ok = {keep = true}, {}, {}
for _, v in ipairs(wb.LEVELS) do level_ok[v] = true end
for _, v in ipairs(wb.OBSERVERS) do obs_ok[v] = true end
for _, v in ipairs(wb.GRANULARITIES) do gran_ok[v] = true end
local aliases = {f32 = "fp32", float = "fp32", f16 = "fp16", half = "fp16", dyn = "dynamic", dynamic_int8 = "dynamic",
                 dyn8 = "dynamic", moving = "moving_average", hist = "histogram", per_channel = "per_channel",
                 channel = "per_channel", tensor = "per_tensor"}
-- ops each precision applies to (others stay FP32 whatever the map says)
local applies = {dynamic = {linear = true, lstm = true}, fp16 = {conv2d = true, linear = true, lstm = true},
                 bf16 = {conv2d = true, linear = true, lstm = true}}
wb.APPLIES = applies

local S = {}      -- the state the panes draw
wb.state = S
wb.session = {}   -- log entries {text, kind, script}: what save_session writes

function wb.out(line, kind) print(line) end   -- the workbench points this at its console
local function say(fmt, ...) wb.out(string.format(fmt, ...), "output") end
local function note(fmt, ...) wb.out("-- " .. string.format(fmt, ...), "comment") end
wb.say, wb.note = say, note

local function fail(fmt, ...) error(string.format(fmt, ...), 3) end

local function basename(p) return (p:gsub("^.*/", "")) end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

-- the default model: in the current folder, else under QLAB_HOME
function wb.default_model()
  local rel = "data/models/resnet18_fmnist.qlm"
  if exists(rel) or not QLAB_HOME then return rel end
  local p = QLAB_HOME .. "/" .. rel
  return exists(p) and p or rel
end

---------------------------------------------------------------------------
-- opening

-- multiply-accumulates per image of each conv / linear node, from the weights
local function macs_of(model)
  local out = {}
  for _, n in ipairs(model:nodes()) do
    if n.op == "conv2d" or n.op == "linear" then
      local ok, w = pcall(model.param, model, n.name .. ".weight")
      if ok then
        local numel = 1
        for _, d in ipairs(w:shape()) do numel = numel * d end
        local hw = 1
        if n.op == "conv2d" and #n.shape == 3 then hw = n.shape[1] * n.shape[2] end
        out[n.name] = numel * hw
      end
    end
  end
  return out
end

function wb.open(path, opts)
  opts = opts or {}
  path = path or wb.default_model()
  if not exists(path) then fail("cannot open model %s (no such file)", path) end
  local fp = (path:match("%.onnx$") and rawget(qlab, "load_onnx") or qlab.load)(path)
  local version = S.version or 0   -- only grows: panes redraw when it changes
  for k in pairs(S) do S[k] = nil end
  S.path, S.name = path, basename(path)
  S.fp32 = fp
  S.m = fp:clone()
  S.m:fuse()
  S.base = S.m:nodes()                 -- the fused graph's nodes: what the map names
  S.base_by = {}
  for _, n in ipairs(S.base) do S.base_by[n.name] = n end
  S.macs = macs_of(S.m)
  S.phase = "fp32"
  S.map = {default = {prec = "fp32", obs = "histogram", gran = "per_channel"}, nodes = {}}
  S.calib_batch = opts.calib_batch or 32
  S.calib_batches = opts.calib_batches or 8
  S.eval_batch = opts.eval_batch or 250
  local train = qlab.data.fashion_mnist{split = "train"}
  local test = qlab.data.fashion_mnist{split = "test"}
  local nval = math.min(opts.val_images or test:size(), test:size())
  S.val_images = nval
  S.data = {train = train, test = test,
            val = (nval < test:size() and test:subset(1, nval) or test):loader{batch = S.eval_batch},
            calib = train:loader{batch = S.calib_batch, batches = S.calib_batches}}
  S.dataset = string.format("fmnist test %d", nval)
  S.sqnr, S.sens, S.share, S.range = {}, {}, {}, {}
  S.version = version + 1
  S.dirty = false
  S.open_code = string.format("wb.open(%q, {val_images = %d, calib_batch = %d})", path, nval, S.calib_batch)
  wb.sync_globals()
  wb.refresh()
  return wb
end

-- the console's names for the state: m, fp32, data, qlab, wb, save_session
function wb.sync_globals()
  _G.m, _G.fp32, _G.data, _G.qlab, _G.wb = S.m, S.fp32, S.data, qlab, wb
  _G.save_session = wb.save_session
end

-- a model assigned in the console (m = ...) becomes the workbench's
function wb.adopt_globals()
  local Model = debug.getregistry()["qlab.Model"]
  if rawget(_G, "m") ~= S.m and getmetatable(rawget(_G, "m")) == Model then
    S.m = _G.m
    S.phase = S.m:is_prepared() and "prepared" or "custom"
    S.result, S.latency = nil, nil
    wb.refresh()
    note("m is now the model assigned in the console")
  end
end

---------------------------------------------------------------------------
-- the map

local function norm(kind, v, ok)
  v = aliases[v] or v
  if not ok[v] then fail("unknown %s '%s'", kind, tostring(v)) end
  return v
end

-- layer names a target designates (nil for "default")
local function targets(target)
  if target == "default" then return nil end
  local out = {}
  if type(target) == "table" then
    for _, name in ipairs(target) do
      if not S.base_by[name] then fail("no layer named '%s'", tostring(name)) end
      out[#out + 1] = name
    end
    return out
  end
  if type(target) ~= "string" then fail("give a layer name, a Lua pattern, a list of names or \"default\"") end
  if S.base_by[target] then return {target} end
  local ok, err = pcall(function()
    for _, n in ipairs(S.base) do
      if n.name:match("^" .. target .. "$") then out[#out + 1] = n.name end
    end
  end)
  if not ok then fail("bad pattern '%s': %s", target, tostring(err)) end
  if #out == 0 then fail("'%s' matches no layer name or Lua pattern", target) end
  return out
end

-- the planned setting of a layer (nil: the map's default): {prec, obs, gran, own = it has an entry}
function wb.planned(name)
  local d, e = S.map.default, name and S.map.nodes[name]
  local p = {prec = d.prec, obs = d.obs, gran = d.gran, own = e ~= nil}
  if e then
    p.prec = e.prec or p.prec
    p.obs = e.obs or p.obs
    p.gran = e.gran or p.gran
  end
  local n = name and S.base_by[name]
  if n and applies[p.prec] and not applies[p.prec][n.op] then p.prec, p.na = "fp32", true end
  return p
end

local function set_field(target, field, value)
  local names = targets(target)
  if not names then
    S.map.default[field] = value
  else
    for _, name in ipairs(names) do
      local e = S.map.nodes[name] or {}
      e[field] = value
      if next(e) == nil then e = nil end
      S.map.nodes[name] = e
    end
  end
  S.version = S.version + 1
  return names
end

local function map_line()
  local code = wb.map_code(true)
  if #code > 200 then code = code:sub(1, 197) .. "..." end
  note("map: %s", code)
end

function wb.set_precision(target, level)
  level = norm("precision", level, level_ok)
  if target == "default" and level == "keep" then fail("the default has no default to keep") end
  local names = targets(target)
  if names and applies[level] then
    local skip = {}
    for _, name in ipairs(names) do
      if not applies[level][S.base_by[name].op] then skip[#skip + 1] = name end
    end
    if #skip == #names and #names == 1 then
      fail("%s applies to %s layers only; %s is %s", level, level == "dynamic" and "linear and lstm" or
           "conv2d, linear and lstm", names[1], S.base_by[names[1]].op)
    end
    if #skip > 0 then note("%s does not apply to %d of these layers (they stay FP32)", level, #skip) end
  end
  set_field(target, "prec", level ~= "keep" and level or nil)
  map_line()
  wb.refresh()
end

-- Calibrate once, compare every range: on a prepared model whose observers
-- have seen data, the layers' observers re-derive their range from the same
-- statistics (o:as(kind)); nothing is recalibrated.
local function rederive(names, kind)
  if not (S.phase == "prepared" or S.phase == "calibrated") or not S.m:is_prepared() then return end
  local done = {}
  if not names then   -- the default: every layer without an observer of its own
    names = {}
    for _, n in ipairs(S.base) do
      if not (S.map.nodes[n.name] and S.map.nodes[n.name].obs) then names[#names + 1] = n.name end
    end
  end
  for _, name in ipairs(names) do
    local p = wb.planned(name)
    local o = (p.prec == "int8" or p.prec == "w4a8") and S.m:observer(name) or nil
    if o and o:count() > 0 then
      local ok, c = pcall(o.as, o, kind)
      if ok then
        local lo0, hi0 = o:range()
        S.m:set_observer(name, c)
        local lo, hi = c:range()
        done[#done + 1] = string.format("%s %.4g..%.4g -> %.4g..%.4g", name, lo0, hi0, lo, hi)
      end
    end
  end
  if #done > 0 then
    note("range re-derived from the same statistics (no calibration): %s%s", table.concat(done, ", ", 1, math.min(3, #done)),
         #done > 3 and string.format(" and %d more", #done - 3) or "")
  end
end

function wb.set_observer(target, kind)
  kind = norm("observer", kind, obs_ok)
  local names = set_field(target, "obs", kind)
  map_line()
  rederive(names, kind)
  wb.refresh()
end

function wb.set_granularity(target, g)
  g = norm("weight granularity", g, gran_ok)
  set_field(target, "gran", g)
  map_line()
  wb.refresh()
end

-- QConfig of a planned setting (false = FP32 in the static map) and its Lua code
local function qconfig_of(p)
  if p.prec == "fp32" or p.prec == "dynamic" then return false, "false" end
  if p.prec == "fp16" then return qlab.qconfig.f16(), "qlab.qconfig.f16()" end
  if p.prec == "bf16" then return qlab.qconfig.bf16(), "qlab.qconfig.bf16()" end
  local w4 = p.prec == "w4a8"
  if p.obs == "histogram" then
    if p.gran == "per_channel" then
      return (w4 and qlab.qconfig.w4a8() or qlab.qconfig.default()), w4 and "qlab.qconfig.w4a8()" or "qlab.qconfig.default()"
    elseif not w4 then
      return qlab.qconfig.per_tensor(), "qlab.qconfig.per_tensor()"
    end
  end
  -- 8-bit activations, as qconfig.default() (accuracy first; qconfig.fast_7bit() is the 7-bit one)
  local aopt = p.obs == "histogram" and {bins = 2048} or {}
  local wopt = {dtype = "s8", symmetric = true, per_channel = p.gran == "per_channel", bits = w4 and 4 or nil}
  local acode = p.obs == "histogram" and "{bins = 2048}" or "{}"
  local wcode = string.format("{dtype = \"s8\", symmetric = true, per_channel = %s%s}", tostring(p.gran == "per_channel"),
                              w4 and ", bits = 4" or "")
  return qlab.qconfig{activation = qlab.observer[p.obs](aopt), weight = qlab.observer.minmax(wopt)},
         string.format("qlab.qconfig{activation = qlab.observer.%s%s, weight = qlab.observer.minmax%s}", p.obs, acode, wcode)
end

local short_obs = {minmax = "mm", moving_average = "mavg", histogram = "hist", percentile = "pct", entropy = "ent",
                   mse = "mse"}
local function qc_var(p)
  if p.prec == "fp32" or p.prec == "dynamic" then return nil end
  if p.prec == "fp16" or p.prec == "bf16" then return p.prec end
  local v = p.prec
  if p.obs ~= "histogram" then v = v .. "_" .. short_obs[p.obs] end
  if p.gran == "per_tensor" then v = v .. "_pt" end
  return v
end

local function lua_key(k)
  if k:match("^[%a_][%w_]*$") and k ~= "default" then return k end
  return string.format("[%q]", k)
end

-- The static map (node -> QConfig | false), what m:prepare takes.
function wb.qconfig_map()
  local map = {default = (qconfig_of(wb.planned(nil)))}
  for _, n in ipairs(S.base) do
    if S.map.nodes[n.name] then map[n.name] = (qconfig_of(wb.planned(n.name))) end
  end
  return map
end

-- The map as Lua code: qconfig locals, then m:prepare{...}. compact: one line.
function wb.map_code(compact)
  local defs, order = {}, {}
  local function ref(p)
    local var = qc_var(p)
    if not var then return "false" end
    if not defs[var] then
      local _, code = qconfig_of(p)
      defs[var] = code
      order[#order + 1] = var
    end
    return var
  end
  local d = S.map.default
  local items = {"default = " .. ref({prec = d.prec, obs = d.obs, gran = d.gran})}
  local dyn = {}
  for _, n in ipairs(S.base) do
    if S.map.nodes[n.name] then
      local p = wb.planned(n.name)
      items[#items + 1] = lua_key(n.name) .. " = " .. ref(p)
    end
    if wb.planned(n.name).prec == "dynamic" then dyn[#dyn + 1] = n.name end
  end
  local lines = {}
  for _, v in ipairs(order) do lines[#lines + 1] = string.format("local %s = %s", v, defs[v]) end
  local sep = compact and ", " or ",\n  "
  lines[#lines + 1] = (compact or #items <= 3) and ("m:prepare{" .. table.concat(items, ", ") .. "}")
                      or ("m:prepare{\n  " .. table.concat(items, sep) .. ",\n}")
  if #dyn > 0 then
    lines[#lines + 1] = string.format("-- after convert: m = qlab.quantize_dynamic(m, {types = {\"linear\", \"lstm\"}, " ..
                                      "only %s})", table.concat(dyn, ", "))
  end
  if compact then
    local body = lines[#lines - (#dyn > 0 and 1 or 0)]
    return body .. (#dyn > 0 and ("  dynamic: " .. table.concat(dyn, ", ")) or "")
  end
  return table.concat(lines, "\n")
end

-- what the map says of one layer, as in the code: "conv3 = w4a8_ent" or "(default) int8"
function wb.map_entry(name)
  local p = wb.planned(name)
  local var = qc_var(p) or "false"
  if p.prec == "dynamic" then var = "false, then dynamic" end
  if S.map.nodes[name] then return lua_key(name) .. " = " .. var end
  return "(default) " .. var
end

function wb.map()
  for line in (wb.map_code() .. "\n"):gmatch("(.-)\n") do wb.out(line, "code_out") end
end

---------------------------------------------------------------------------
-- the workflow

local function set_m(model)
  S.m = model
  _G.m = model
  S.version = S.version + 1
end

local function invalidate()
  S.result, S.latency = nil, nil
  S.sqnr, S.share = {}, {}
end

function wb.reset()
  set_m(S.fp32:clone())
  S.m:fuse()
  S.phase = "fp32"
  S.calibrated = 0
  S.range = {}
  invalidate()
  S.dirty = false
  collectgarbage()
  note("m is the FP32 model again (fused); the map is kept")
  wb.refresh()
end

function wb.prepare()
  if S.phase ~= "fp32" then wb.reset() end
  local map = wb.qconfig_map()
  S.m:fuse()
  S.m:prepare(map)
  S.phase = "prepared"
  S.calibrated = 0
  S.range = {}
  invalidate()
  S.dirty = true
  for line in (wb.map_code() .. "\n"):gmatch("(.-)\n") do note("%s", line) end
  local observed, planned = 0, 0
  if S.m:is_prepared() then
    for _, p in ipairs(S.m:plan()) do
      if p.observed then observed = observed + 1 end
      if p.mode ~= "f32" then planned = planned + 1 end
    end
  end
  say("prepared: %d layer%s to quantize, %d observer%s", planned, planned == 1 and "" or "s", observed,
      observed == 1 and "" or "s")
  wb.refresh()
end

function wb.calibrate(n)
  n = n or S.calib_batches
  if math.type(n) ~= "integer" or n < 1 then fail("calibrate: give a number of batches >= 1") end
  if S.phase == "fp32" then fail("calibrate: prepare first (wb.prepare(), key p)") end
  if S.phase == "converted" then fail("calibrate: m is converted; wb.prepare() starts again") end
  S.calib_batches = n
  S.data.calib = S.data.train:loader{batch = S.calib_batch, batches = n}
  if S.m:is_prepared() then
    local t0 = qlab.clock()
    qlab.calibrate(S.m, S.data.calib)
    say("calibrated on %d batches of %d training images (%.1f s)", n, S.calib_batch, qlab.clock() - t0)
  else
    note("nothing to observe: no layer is statically quantized")
  end
  S.phase = "calibrated"
  S.calibrated = (S.calibrated or 0) + n
  wb.refresh()
end

function wb.convert()
  if S.phase == "fp32" then fail("convert: prepare and calibrate first (keys p, c)") end
  if S.phase == "converted" then fail("convert: m is already converted") end
  if S.phase == "prepared" and S.m:is_prepared() then
    note("converting without calibration: observers saw no data")
  end
  local before = S.m:size_bytes()
  if S.m:is_prepared() then S.m:convert() end
  local dyn, keep = {}, {}
  for _, n in ipairs(S.base) do
    if n.op == "linear" or n.op == "lstm" then
      if wb.planned(n.name).prec == "dynamic" then dyn[#dyn + 1] = n.name else keep[#keep + 1] = n.name end
    end
  end
  if #dyn > 0 then
    set_m(qlab.quantize_dynamic(S.m, {types = {"linear", "lstm"}, dtype = "s8", exclude = #keep > 0 and keep or nil}))
  end
  S.phase = "converted"
  invalidate()
  S.version = S.version + 1
  say("converted: %.3f MB -> %.3f MB%s", before / 1e6, S.m:size_bytes() / 1e6,
      #dyn > 0 and string.format(" (%d dynamic INT8)", #dyn) or "")
  wb.refresh()
end

local function fmt_eval(r)
  local s = string.format("top-1 %.2f %%, top-5 %.2f %% on %d images", r.top1, r.top5, r.n)
  for k, v in pairs(r) do
    if k ~= "top1" and k ~= "top5" and k ~= "n" and k ~= "loss" then
      s = s .. string.format(", %s %s", k, type(v) == "number" and string.format("%.4g", v) or pretty.pretty(v))
    end
  end
  return s
end

function wb.evaluate()
  if not S.fp32_result then
    S.fp32_result = qlab.evaluate(S.fp32, S.data.val)
    say("FP32: %s", fmt_eval(S.fp32_result))
    qlab.record("top1_fp32", S.fp32_result.top1)
  end
  local r = qlab.evaluate(S.m, S.data.val)
  S.result = r
  S.result_phase = S.phase
  say("evaluate (%s): %s; FP32 %.2f %%", S.phase, fmt_eval(r), S.fp32_result.top1)
  qlab.record("top1", r.top1)
  wb.refresh()
  return r
end

function wb.profile(runs)
  runs = runs or 30
  if not S.fp32_latency then
    S.fp32_latency = qlab.time_forward(S.fp32, {batch = 1, runs = runs, warmup = 3}).median
  end
  local t = qlab.time_forward(S.m, {batch = 1, runs = runs, warmup = 3})
  S.latency = t.median
  S.share = {}
  local prof = qlab.profile(S.m, {batch = 1, runs = math.max(3, runs // 3), warmup = 2})
  local top = {}
  for _, p in ipairs(prof) do
    S.share[p.name] = p.share
    top[#top + 1] = p
  end
  table.sort(top, function(a, b) return a.share > b.share end)
  local parts = {}
  for i = 1, math.min(3, #top) do parts[i] = string.format("%s %.0f%%", top[i].name, 100 * top[i].share) end
  say("batch-1 latency %.3f ms (FP32 %.3f ms); most time: %s", t.median, S.fp32_latency, table.concat(parts, ", "))
  qlab.record("latency_ms", t.median)
  wb.refresh()
  return t
end

function wb.compare(batches)
  batches = batches or 2
  local loader = S.data.test:subset(1, 256 * batches):loader{batch = 256}
  local res = qlab.compare(S.fp32, S.m, loader, {batches = batches})
  S.sqnr = {}
  local worst
  for _, r in ipairs(res) do
    if r.name ~= "output" then
      S.sqnr[r.name] = r.sqnr_db
      if r.sqnr_db and r.sqnr_db ~= math.huge and (not worst or r.sqnr_db < worst.sqnr_db) then worst = r end
    else
      S.sqnr_output = r.sqnr_db
    end
  end
  say("SQNR vs FP32 on %d images: output %s dB%s", 256 * batches, S.sqnr_output and string.format("%.2f", S.sqnr_output) or "-",
      worst and string.format("; lowest %s %.2f dB", worst.name, worst.sqnr_db) or "")
  wb.refresh()
  return res
end

function wb.save(path)
  path = path or (S.name:gsub("%.qlm$", "") .. "_" .. S.phase .. ".qlm")
  S.m:save(path)
  S.dirty = false
  S.saved_path = path
  S.saved = S.saved or {}
  local known = false
  for _, p in ipairs(S.saved) do known = known or p == path end
  if not known then S.saved[#S.saved + 1] = path end
  say("saved %s (%.3f MB)", path, S.m:size_bytes() / 1e6)
end

---------------------------------------------------------------------------
-- the session

-- wb.show(...): an expression's values, as the console printed them
function wb.show(...)
  if select("#", ...) > 0 then
    for line in (pretty.values(...) .. "\n"):gmatch("(.-)\n") do wb.out(line, "output") end
  end
end

function wb.session_text()
  local out = {"-- qlab workbench session: replay with  qlab --script THIS_FILE",
               "local wb = require \"qlab.workbench.actions\"", S.open_code or "wb.open()"}
  for _, e in ipairs(wb.session) do
    if e.skip then -- a continuation line of an expression written whole on its first line
    elseif e.kind == "code" then out[#out + 1] = e.script or e.text
    elseif e.kind == "code_err" then out[#out + 1] = "-- (failed) " .. e.text
    elseif e.kind == "meta" then out[#out + 1] = "-- (not replayed) " .. e.text
    elseif e.text:match("^%-%-") then out[#out + 1] = e.text
    else out[#out + 1] = "-- " .. e.text end
  end
  return table.concat(out, "\n") .. "\n"
end

-- The session as it stands, rewritten after every console line and key action
-- (wb.autosave_path, set by the workbench: $HOME/.qlab_last_session.lua), so
-- a workbench killed by SIGTERM / SIGHUP, or by anything, keeps its log.
function wb.autosave()
  local path = wb.autosave_path
  if not path then return end
  local tmp = path .. ".tmp"
  local f = io.open(tmp, "w")
  if not f then return end
  local ok = f:write(wb.session_text())
  f:close()
  if ok then os.rename(tmp, path) else os.remove(tmp) end
end

function wb.save_session(path)
  path = path or "qlab_session.lua"
  local f, err = io.open(path, "w")
  if not f then fail("save_session: %s", err) end
  f:write(wb.session_text())
  f:close()
  say("session saved to %s (replay: qlab --script %s)", path, path)
end

-- The observer histogram of a layer in n bins {counts, lo, hi}, or nil
-- (not prepared, not calibrated, or an observer without a histogram).
local hist_cache = {}
function wb.histogram(name, n)
  if not (S.phase == "prepared" or S.phase == "calibrated") or not S.m:is_prepared() then return nil end
  local key = table.concat({S.version, name, n}, "\0")
  if hist_cache.key == key then return hist_cache.value end
  local value
  local o = S.m:observer(name)
  if o and o:count() > 0 then
    local ok, counts, lo, hi = pcall(o.histogram, o)
    if ok and type(counts) == "table" and #counts > 0 then
      local out, per = {}, #counts / n
      for i = 1, n do
        local sum = 0
        for k = math.floor((i - 1) * per) + 1, math.floor(i * per) do sum = sum + (counts[k] or 0) end
        out[i] = sum
      end
      value = {counts = out, lo = lo, hi = hi}
    end
  end
  hist_cache.key, hist_cache.value = key, value
  return value
end

wb.qconfig_of, wb.qc_var, wb.set_field, wb.map_line = qconfig_of, qc_var, set_field, map_line
require("qlab.workbench.actions_live")(wb)

---------------------------------------------------------------------------
-- the rows the layer table draws

local short_prec = {f32 = "fp32", f16 = "fp16", bf16 = "bf16", int8 = "int8", w4a8 = "w4a8", dyn8 = "dyn8", u8 = "u8"}
wb.short_prec = short_prec

function wb.refresh()
  local m = S.m
  if S.phase == "fp32" and m:is_prepared() then S.phase = "prepared" end   -- m:prepare{...} typed in the console
  local nodes = m:nodes()
  local rows = {}
  local observe = S.phase == "prepared" or S.phase == "calibrated"
  for i, n in ipairs(nodes) do
    local base = S.base_by[n.name]
    local r = {index = i, name = n.name, op = n.op, shape = table.concat(n.shape, "x"), params = n.params,
               macs = S.macs[n.name], actual = short_prec[n.precision] or n.precision, base = base ~= nil,
               inputs = n.inputs, base_op = base and base.op}
    if base then
      local p = wb.planned(n.name)
      r.plan, r.own, r.na = p.prec, p.own, p.na
      if p.prec == "int8" or p.prec == "w4a8" then r.obs, r.gran = p.obs, p.gran end
    end
    if observe and m:is_prepared() then
      local o = m:observer(n.name)
      if o and o:count() > 0 then
        local lo, hi = o:range()
        if type(lo) == "number" then S.range[n.name] = {lo, hi} end
      end
    end
    if n.qparams then
      local q = n.qparams
      r.qparams = q
      r.range = {(q.qmin - q.zero_point) * q.scale, (q.qmax - q.zero_point) * q.scale}
    else
      r.range = S.range[n.name]
    end
    r.sqnr, r.drop, r.share = S.sqnr[n.name], S.sens[n.name], S.share[n.name]
    rows[i] = r
  end
  S.rows = rows
  S.version = S.version + 1
end

return wb
