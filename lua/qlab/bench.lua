-- The benchmark suite: every variant of a model measured the same way, in one process.
--   qlab.bench{models = {name = model | function() return model end, ...} | {{name, model}, ...},
--              data = loader, reference = "fp32", name = "resnet18",
--              batch_sizes = {1, 64}, threads = {1, 2}, runs = 60, rounds = 5, warmup = 3,
--              profile_runs = 10, peak = qlab.peak() result, quick = false,
--              progress = function(done, total, label) return cancel end | false, quiet = false,
--              notes = {name = "text"}, failed = {name = "error"}, skipped = {name = "reason"}}
--   runs may be a table by batch size ({[1] = 100, [64] = 20}); a variant that does not apply
--   is given in `skipped` with the reason and appears with status "skipped".
--     -> a suite (docs/report.md has the schema): {schema, name, machine, peak, config, reference,
--        gpu, variants = {{name, status, error, accuracy, size, macs, memory, latency, breakdown}}}
-- A model given as a function is built inside the suite, so a variant that fails to build is
-- recorded as failed with its error, as is one that fails to run; the others go on.
-- kinds = {name = "dynamic", ...} (or kind = in an array entry) says what a variant is (M.guess_kind
-- otherwise). Latency is interleaved: for every threads x batch configuration, `rounds` rounds run each
-- variant in turn (A B C A B C ...) for runs / rounds timed passes, so drift and the load of a
-- shared machine hit every variant alike; percentiles come from all the samples.
-- Accuracy is qlab.evaluate with the reference (PyTorch's top-1 rule, ties, agreement).
-- Memory is measured on a fresh clone per batch size: weights (m:size_bytes()), the planned
-- activation buffers (qlab.plan_bytes), the allocator's peak above the clone during its first
-- forward (activations, workspaces, packed weights), what stays resident after it, and the
-- growth of the process's peak RSS (0 once the process has been larger before).
-- Fraction of peak: the live MACs per image (qlab.macs: the taps that read the image, not
-- its padding, which qlab's convs skip from a batch of 8) over the measured one-core peak x threads
-- (capped at the cores), INT8 MACs at the INT8 peak of the ISA our kernels use, the others
-- at the FP32 peak of the level OpenBLAS runs; i.e. the time the arithmetic would take at
-- peak divided by the time measured.
local core = require "qlab.core"

local M = {}
M.SCHEMA = "qlab.bench/1"
M.GPU = "no GPU backend in this build"

local option_keys = {"models", "data", "reference", "name", "batch_sizes", "threads", "runs", "rounds",
                     "warmup", "profile_runs", "peak", "quick", "progress", "quiet", "notes", "failed", "kinds",
                     "skipped"}

local function check_opts(o)
  if type(o) ~= "table" then error("bench: give a table of options", 3) end
  local ok = {}
  for _, k in ipairs(option_keys) do ok[k] = true end
  for k in pairs(o) do
    if not ok[k] then error("bench: unknown option '" .. tostring(k) .. "'", 3) end
  end
end

local function is_model(x) return getmetatable(x) == debug.getregistry()["qlab.Model"] end

-- {{name =, build = model | function}} in a stable order: the reference first, then as given
-- (an array) or by name (a map).
local function variant_list(models, reference)
  local list = {}
  if #models > 0 then
    for i, v in ipairs(models) do
      if type(v) ~= "table" or type(v[1]) ~= "string" then
        error("bench: models[" .. i .. "] must be {name, model}", 3)
      end
      list[#list + 1] = {name = v[1], build = v[2], kind = v.kind}
    end
  else
    for name, v in pairs(models) do list[#list + 1] = {name = tostring(name), build = v} end
    table.sort(list, function(a, b) return a.name < b.name end)
  end
  for i, v in ipairs(list) do
    if v.name == reference and i > 1 then table.remove(list, i); table.insert(list, 1, v); break end
  end
  return list
end

-- What a variant is, from its name when not given: fp32 (the reference), static,
-- static_per_tensor, dynamic, f16, bf16, qat, w4a8, qat_w4a8, mixed, other. The report's
-- recommendations compare kinds (dynamic vs static, per-tensor vs per-channel).
function M.guess_kind(name, reference)
  local n = name:lower()
  if name == reference or n == "fp32" then return "fp32" end
  if n:find("mixed", 1, true) or n:find("greedy", 1, true) then return "mixed" end
  if n:find("qat", 1, true) then return n:find("w4", 1, true) and "qat_w4a8" or "qat" end
  if n:find("w4a8", 1, true) then return "w4a8" end
  if n:find("dyn", 1, true) then return "dynamic" end
  if n:find("bf16", 1, true) then return "bf16" end
  if n:find("f16", 1, true) then return "f16" end
  if n:find("per[_%- ]?tensor") then return "static_per_tensor" end
  if n:find("ptq", 1, true) or n:find("int8", 1, true) or n:find("static", 1, true) then return "static" end
  return "other"
end

local function percentile(sorted, q)   -- the rule of qlab.time_forward: nearest rank on (n - 1)
  local n = #sorted
  return sorted[math.floor(q * (n - 1) + 0.5) + 1]
end

-- Latency statistics of a list of milliseconds.
function M.stats(ms)
  local s = {}
  for i, v in ipairs(ms) do s[i] = v end
  table.sort(s)
  local n, sum = #s, 0
  for _, v in ipairs(s) do sum = sum + v end
  local mean = sum / n
  local var = 0
  for _, v in ipairs(s) do var = var + (v - mean) ^ 2 end
  local median = n % 2 == 1 and s[(n + 1) // 2] or 0.5 * (s[n // 2] + s[n // 2 + 1])
  local p5, p95 = percentile(s, 0.05), percentile(s, 0.95)
  return {runs = n, median = median, p95 = p95, p99 = percentile(s, 0.99), min = s[1], max = s[n],
          mean = mean, stddev = n > 1 and math.sqrt(var / (n - 1)) or 0,
          spread_pct = median > 0 and 100 * (p95 - p5) / median or 0}
end

-- A deterministic input of `batch` samples for a model (values in [0, 1)).
local function make_input(model, batch, cache)
  local shape = model:input_shape()
  local key = batch .. ":" .. table.concat(shape, "x")
  if cache[key] then return cache[key] end
  local full = {batch}
  for i, d in ipairs(shape) do full[i + 1] = d end
  local x = core.zeros(full)
  for i = 1, #x do x[i] = (i * 7919 % 255) / 255 end
  cache[key] = x
  return x
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end

-- Node precisions -> {precision = count}
local function precision_counts(model)
  local c = {}
  for _, n in ipairs(model:nodes()) do c[n.precision] = (c[n.precision] or 0) + 1 end
  return c
end

local function memory_of(model, batch, input)
  local c = model:clone()
  collectgarbage()
  core.reset_peak()
  local before = core.memory()
  c:forward(input)   -- the tensor it returns is a Lua copy, counted too; freed at once
  local after = core.memory()
  c:free()
  return {batch = batch, weights_bytes = model:size_bytes(), plan_bytes = core.plan_bytes(model, batch),
          alloc_peak_bytes = after.peak - before.current, resident_bytes = after.current - before.current,
          rss_growth_bytes = math.max(0, after.rss_peak - before.rss_peak)}
end

local function breakdown_of(model, batch, runs)
  local prof = core.profile(model, {batch = batch, runs = runs, warmup = 1})
  local nodes, by_op, total = {}, {}, 0
  for _, p in ipairs(prof) do
    nodes[#nodes + 1] = {name = p.name, op = p.op, ms = p.ms}
    by_op[p.op] = (by_op[p.op] or 0) + p.ms
    total = total + p.ms
  end
  for _, n in ipairs(nodes) do n.share = total > 0 and n.ms / total or 0 end
  local ops = {}
  for op, ms in pairs(by_op) do ops[#ops + 1] = {op = op, ms = ms, share = total > 0 and ms / total or 0} end
  table.sort(ops, function(a, b) if a.ms ~= b.ms then return a.ms > b.ms end return a.op < b.op end)
  return {batch = batch, threads = core.threads(), total_ms = total, nodes = nodes, ops = ops}
end

-- The peaks the fractions are taken against: {int8 = {isa, gmacs}, f32 = {isa, gmacs}}.
function M.peak_basis(peak, machine)
  local by = {}
  for _, l in ipairs(peak.levels) do by[l.isa] = l end
  local i8 = by[machine.isa] or peak.levels[#peak.levels]
  local f32 = by[machine.openblas.isa] or by[machine.isa] or peak.levels[#peak.levels]
  return {int8 = {isa = i8.isa, gmacs = i8.int8_gmacs}, f32 = {isa = f32.isa, gmacs = f32.fp32_gmacs}}
end

-- Milliseconds one image's MACs take at peak on `threads` threads.
local function bound_ms(macs, basis, threads, cores)
  local t = math.max(1, math.min(threads, cores))
  local s = (macs.int8 > 0 and macs.int8 / (basis.int8.gmacs * 1e9 * t) or 0)
          + (macs.f32 > 0 and macs.f32 / (basis.f32.gmacs * 1e9 * t) or 0)
  return s * 1e3
end

local function progress_drawer(opts)
  if opts.progress == false or opts.quiet then return function() end, function() end end
  if type(opts.progress) == "function" then
    return function(done, total, label)
      if opts.progress(done, total, label) then error("bench: cancelled", 0) end
    end, function() end
  end
  local tty = core.stderr_tty()
  local last = -1
  return function(done, total, label)
    local pct = total > 0 and math.floor(100 * done / total) or 0
    if tty then
      local w = 30
      local fill = total > 0 and math.floor(w * done / total) or 0
      io.stderr:write(string.format("\r%-38.38s [%s%s] %3d%%\27[K", label, string.rep("#", fill),
                                    string.rep(".", w - fill), pct))
    elseif pct ~= last and pct % 10 == 0 then
      io.stderr:write(string.format("bench: %3d%% %s\n", pct, label))
    end
    last = pct
    io.stderr:flush()
  end, function() if tty then io.stderr:write("\n"); io.stderr:flush() end end
end

function M.bench(opts)
  check_opts(opts)
  if type(opts.models) ~= "table" then error("bench: models = {name = model, ...} is required", 2) end
  local quick = opts.quick
  local batch_sizes = opts.batch_sizes or (quick and {1, 8} or {1, 64})
  local threads = opts.threads or (quick and {1} or {1, 2})
  local rounds = opts.rounds or (quick and 2 or 5)
  local function per_round(b)
    local n = opts.runs
    if type(n) == "table" then n = n[b] end
    n = math.max(rounds, n or (quick and 6 or 60))
    return math.max(1, n // rounds)
  end
  local runs_cfg = {}
  for _, b in ipairs(batch_sizes) do runs_cfg[#runs_cfg + 1] = per_round(b) * rounds end
  local warmup = opts.warmup or (quick and 1 or 3)
  local profile_runs = opts.profile_runs or (quick and 2 or 10)
  local reference = opts.reference or "fp32"
  local machine = core.machine()
  local peak = opts.peak or core.peak{target_ms = quick and 2 or 15}
  local basis = M.peak_basis(peak, machine)
  local draw, finish = progress_drawer(opts)
  local saved_threads = core.threads()

  local suite = {schema = M.SCHEMA, name = opts.name or "model", created = os.date("!%Y-%m-%dT%H:%M:%SZ"),
                 machine = machine, peak = {levels = peak.levels, seconds = peak.seconds, basis = basis},
                 reference = reference, gpu = M.GPU,
                 config = {batch_sizes = batch_sizes, threads = threads, runs = runs_cfg,
                           rounds = rounds, warmup = warmup, profile_runs = profile_runs, quick = quick and true or false},
                 variants = {}}
  local list = variant_list(opts.models, reference)
  local failed_in = opts.failed or {}
  local extra = {}
  for name, err in pairs(failed_in) do extra[#extra + 1] = {name = name, preset_error = tostring(err)} end
  for name, why in pairs(opts.skipped or {}) do extra[#extra + 1] = {name = name, skip = tostring(why)} end
  table.sort(extra, function(a, b) return a.name < b.name end)
  for _, v in ipairs(extra) do list[#list + 1] = v end

  -- build every variant; a failure is a result
  local ref_model
  for _, v in ipairs(list) do
    local r = {name = v.name, status = "ok", note = opts.notes and opts.notes[v.name] or nil, gpu = M.GPU,
               kind = v.kind or (opts.kinds and opts.kinds[v.name]) or M.guess_kind(v.name, reference)}
    if v.skip then
      r.status, r.reason = "skipped", v.skip
    elseif v.preset_error then
      r.status, r.error = "failed", v.preset_error
    else
      local ok, m = pcall(function()
        if type(v.build) == "function" then return v.build() end
        return v.build
      end)
      if ok and not is_model(m) then ok, m = false, "the variant did not give a model (" .. type(m) .. ")" end
      if ok then v.model = m else r.status, r.error = "failed", tostring(m) end
    end
    r.note = opts.notes and opts.notes[v.name] or nil   -- a builder may have written it
    if v.name == reference and v.model then ref_model = v.model end
    v.result = r
    suite.variants[#suite.variants + 1] = r
  end
  local function fail(v, err)
    v.result.status, v.result.error = "failed", tostring(err)
    v.model = nil
  end
  local function live()
    local l = {}
    for _, v in ipairs(list) do if v.model then l[#l + 1] = v end end
    return l
  end

  local nconf = #threads * #batch_sizes
  local total = #live() * (3 + nconf * (rounds + 1)) + 1
  local done = 0
  local function step(label) done = done + 1; draw(done, total, label) end

  -- static figures, memory and accuracy
  local tmp = os.tmpname()
  core.threads(threads[#threads])
  for _, v in ipairs(live()) do
    local ok, err = pcall(function()
      local m, r = v.model, v.result
      local mc = core.macs(m)
      r.macs = {per_image = mc.total, f32 = mc.f32, int8 = mc.int8,
                live = {per_image = mc.live.total, f32 = mc.live.f32, int8 = mc.live.int8}}
      r.precision = precision_counts(m)
      m:save(tmp)
      r.size = {bytes = m:size_bytes(), file_bytes = file_size(tmp), params = m:num_params()}
      os.remove(tmp)
      step("size / MACs  " .. v.name)
      r.memory = {}
      for _, b in ipairs(batch_sizes) do r.memory[#r.memory + 1] = memory_of(m, b, make_input(m, b, {})) end
      step("memory  " .. v.name)
      if opts.data then
        local e = (v.name ~= reference and ref_model) and core.evaluate(m, opts.data, {reference = ref_model})
                  or core.evaluate(m, opts.data)
        r.accuracy = {top1 = e.top1, top5 = e.top5, loss = e.loss, n = e.n, ties = e.ties,
                      agree = e.agree or (v.name == reference and 100 or nil),
                      ref_top1 = e.ref_top1 or (v.name == reference and e.top1 or nil),
                      lost = e.flips and e.flips.lost or 0, gained = e.flips and e.flips.gained or 0}
        if r.accuracy.ref_top1 then r.accuracy.drop = r.accuracy.ref_top1 - e.top1 end
      end
      step("accuracy  " .. v.name)
    end)
    if not ok then
      if tostring(err):find("cancelled", 1, true) then finish(); error(err, 0) end
      fail(v, err)
    end
  end

  -- interleaved latency, then the breakdown, per configuration
  local inputs = {}
  for _, th in ipairs(threads) do
    core.threads(th)
    for _, b in ipairs(batch_sizes) do
      local samples = {}
      for round = 1, rounds do
        for _, v in ipairs(live()) do
          local label = string.format("b%d t%d round %d/%d  %s", b, th, round, rounds, v.name)
          local ok, ms = pcall(core._bench_samples, v.model, make_input(v.model, b, inputs), per_round(b),
                               round == 1 and warmup or 1, label, function() draw(done, total, label) end)
          if ok then
            local s = samples[v] or {}
            for _, t in ipairs(ms) do s[#s + 1] = t end
            samples[v] = s
          elseif tostring(ms):find("cancelled", 1, true) or tostring(ms):find("interrupted", 1, true) then
            finish(); core.threads(saved_threads); error(ms, 0)
          else
            fail(v, ms)
          end
          step(label)
        end
      end
      for _, v in ipairs(live()) do
        local st = M.stats(samples[v])
        st.batch, st.threads = b, th
        st.images_per_s = st.median > 0 and b * 1e3 / st.median or 0
        local m = v.result.macs.live or v.result.macs
        st.gmacs = m.per_image * st.images_per_s / 1e9   -- the live MACs done per second
        local bound = bound_ms(m, basis, th, machine.cores)
        st.peak_fraction = st.median > 0 and bound * b / st.median or 0
        v.result.latency = v.result.latency or {}
        v.result.latency[#v.result.latency + 1] = st
        if th == threads[1] then
          local ok, bd = pcall(breakdown_of, v.model, b, profile_runs)
          if ok then
            v.result.breakdown = v.result.breakdown or {}
            v.result.breakdown[#v.result.breakdown + 1] = bd
          else
            fail(v, bd)
          end
        end
        step(string.format("b%d t%d profile  %s", b, th, v.name))
      end
    end
  end
  core.threads(saved_threads)

  -- speed-up against the reference at the same configuration
  local ref = nil
  for _, v in ipairs(list) do if v.name == reference and v.result.status == "ok" then ref = v.result end end
  for _, v in ipairs(list) do
    local r = v.result
    if r.status == "ok" and ref then
      for i, l in ipairs(r.latency or {}) do
        local rl = ref.latency[i]
        l.speedup = rl and l.median > 0 and rl.median / l.median or nil
      end
      r.size.reduction = r.size.bytes > 0 and ref.size.bytes / r.size.bytes or nil
    end
    if r.status ~= "ok" then
      r.latency, r.breakdown, r.memory, r.accuracy, r.size, r.macs, r.precision = nil, nil, nil, nil, nil, nil, nil
    end
  end
  done = total
  draw(done, total, "bench done")
  finish()
  return suite
end

return M
