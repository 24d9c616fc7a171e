-- The workbench's long actions with live views (installed into `wb` by
-- actions.lua). Each reports its steps through wb.on_live(what, done, total)
-- when the workbench set it (jobs.lua: redraw, read keys; false cancels);
-- headless, nothing is set and they run as plain calls.
--   wb.sensitivity([images | {images =, metric = "top1" | "sqnr", mode = "single" | "all_but_one", level =}])
--       fills S.sens_rank node by node (the ranking the sensitivity pane draws)
--   wb.keep_sensitive(k [, level])    the k most sensitive layers of the last ranking at level (fp32)
--   wb.mixed_precision([{budget =, images =, k =, max_steps =}])  the greedy search, step by step,
--       then its precisions in the map
--   wb.bench([{images =, quick =}])   qlab.bench over FP32, the current model and the models saved
--   wb.report([dir])                  the report of the last bench (HTML, Markdown, JSON)
--   wb.qat([{epochs = 1, batches = 100, lr = 1e-3}])  quantization-aware training of the FP32
--       model with the map's default level (INT8 or W4A8; layers planned unquantized stay FP32),
--       the loss of every batch recorded as it goes (the QAT pane's curve), then converted
--   wb.ranges(name, bins [, opts]), wb.weights(name, cols): what the calibration and weights
--       panes draw (inspect.lua), from m's observers and the FP32 weights
local qlab = require "qlab"
local inspect = require "qlab.workbench.inspect"

return function(wb)
  local S = wb.state
  local say, note = wb.say, wb.note

  local function live(what, done, total)
    S.version = S.version + 1
    if wb.on_live then return wb.on_live(what, done, total) end
    return true
  end

  local function quant_setting(level)
    local p = wb.planned(nil)
    if level then p = {prec = level, obs = p.obs, gran = p.gran} end
    if p.prec ~= "int8" and p.prec ~= "w4a8" then p = {prec = "int8", obs = "histogram", gran = "per_channel"} end
    return p
  end

  -- the value a ranking entry is ranked by: top-1 points lost (or gained
  -- back, all_but_one), or the logits' SQNR
  function wb.sens_value(e, info)
    if info and info.mode == "all_but_one" then
      if e.gain then return e.gain, string.format("%+.2f", e.gain) end
      return e.gain_db or 0, string.format("%+.1f dB", e.gain_db or 0)
    end
    if e.drop then return e.drop, string.format("%.2f", e.drop) end
    return 10 ^ (-(e.sqnr_db or 0) / 10), string.format("%.1f dB", e.sqnr_db or 0)
  end

  -- The ranking in order, most harmful first, and the value it is ordered
  -- by (a function): the ranking's own value; when no layer costs anything
  -- on it (top-1 drops all <= 0 on a robust model) the logits' noise power
  -- against FP32 (lowest SQNR first), and by_noise = true.
  function wb.sens_order(rank, info)
    local value = function(e) return (wb.sens_value(e, info)) end
    local max = -math.huge
    for _, e in ipairs(rank) do max = math.max(max, value(e)) end
    local by_noise = max <= 0 and rank[1] ~= nil and rank[1].sqnr_db ~= nil
    if by_noise then value = function(e) return 10 ^ (-(e.sqnr_db or 0) / 10) end end
    local out = {}
    for _, e in ipairs(rank) do out[#out + 1] = e end
    table.sort(out, function(a, b)
      local va, vb = value(a), value(b)
      if va == vb then return a.name < b.name end
      return va > vb
    end)
    return out, value, by_noise
  end

  function wb.sensitivity(opts)
    if type(opts) == "number" then opts = {images = opts} end
    opts = opts or {}
    local images = opts.images or 1000
    local metric, mode = opts.metric or "top1", opts.mode or "single"
    local p = quant_setting(opts.level)
    local qc = wb.qconfig_of(p)
    S.sens, S.sens_rank = {}, {}
    S.sens_info = {metric = metric, mode = mode, level = wb.qc_var(p), images = images, running = true}
    local rank, info = qlab.sensitivity(S.fp32, {data = S.data.test:subset(1, images):loader{batch = 250},
      calib = S.data.train:loader{batch = S.calib_batch, batches = S.calib_batches}, qconfig = qc, metric = metric,
      mode = mode, quiet = true, time = false,
      on_node = function(e, i, n)
        S.sens_rank[#S.sens_rank + 1] = e
        S.sens[e.name] = e.drop
        S.sens_info.done, S.sens_info.total = i, n
        wb.refresh()
        return live("sensitivity", i, n)
      end})
    S.sens_rank = rank
    S.sens = {}
    for _, e in ipairs(rank) do S.sens[e.name] = e.drop end
    for k, v in pairs(info) do if type(v) ~= "table" then S.sens_info[k] = v end end
    S.sens_info.running = false
    local parts = {}
    for i = 1, math.min(3, #rank) do parts[i] = rank[i].name .. " " .. select(2, wb.sens_value(rank[i], S.sens_info)) end
    say("sensitivity (%s, %s %s, %d images%s): most harmful %s", S.sens_info.level, metric, mode, info.n,
        info.top1_fp32 and string.format(", FP32 %.2f %%", info.top1_fp32) or "", table.concat(parts, ", "))
    wb.refresh()
    return rank
  end

  function wb.keep_sensitive(k, level)
    k, level = k or 3, level or "fp32"
    if not S.sens_rank or #S.sens_rank == 0 then error("keep_sensitive: run a sensitivity first (wb.sensitivity(), key i)", 2) end
    local sorted = wb.sens_order(S.sens_rank, S.sens_info)
    local names = {}
    for i = 1, math.min(k, #sorted) do names[i] = sorted[i].name end
    note("the %d most sensitive layers stay %s: %s", #names, level, table.concat(names, ", "))
    wb.set_precision(names, level)
    return names
  end

  local from_mp = {f16 = "fp16", bf16 = "bf16", fp32 = "fp32", f32 = "fp32", int8 = "int8", w4a8 = "w4a8"}

  function wb.mixed_precision(opts)
    opts = opts or {}
    local images = opts.images or 500
    local p = quant_setting(opts.level)
    S.mp = {steps = {}, budget = opts.budget or 0.5, running = true, level = wb.qc_var(p)}
    local res = qlab.mixed_precision(S.fp32, {data = S.data.test:subset(1, images):loader{batch = 250},
      calib = S.data.train:loader{batch = S.calib_batch, batches = S.calib_batches}, qconfig = wb.qconfig_of(p),
      budget = S.mp.budget, k = opts.k or 3, max_steps = opts.max_steps, latency_runs = opts.latency_runs or 5,
      quiet = true,
      on_step = function(st)
        S.mp.steps[#S.mp.steps + 1] = st
        return live("greedy step", #S.mp.steps, opts.max_steps or 0)
      end})
    S.mp.start, S.mp.final, S.mp.running = res.start, res.final, false
    res.model:free()
    for name, lvl in pairs(res.precision) do
      if S.base_by[name] then
        local e = S.map.nodes[name] or {}
        e.prec = from_mp[lvl] or lvl
        S.map.nodes[name] = e
      end
    end
    S.version = S.version + 1
    wb.map_line()
    say("mixed precision: %d step%s, top-1 %.2f (drop %.2f, budget %.2f), %.3f MB; its precisions are in the map (p prepares)",
        #S.mp.steps, #S.mp.steps == 1 and "" or "s", res.final.top1, res.final.drop, S.mp.budget, res.final.size_bytes / 1e6)
    wb.refresh()
    return S.mp
  end

  function wb.bench(opts)
    opts = opts or {}
    local models = {{"fp32", S.fp32}}
    if S.phase ~= "fp32" then models[#models + 1] = {"current (" .. S.phase .. ")", S.m} end
    for _, path in ipairs(S.saved or {}) do
      models[#models + 1] = {path:gsub("^.*/", ""):gsub("%.qlm$", ""), function() return qlab.load(path) end}
    end
    local images = opts.images or math.min(S.val_images, 1000)
    local suite = qlab.bench{models = models, data = S.data.test:subset(1, images):loader{batch = 250},
      name = S.name:gsub("%.qlm$", ""), quick = opts.quick ~= false, batch_sizes = opts.batch_sizes or {1, 32},
      threads = {qlab.threads()}, quiet = true,
      progress = function(done, total, label) return not live(label ~= "" and label or "bench", done, total) end}
    S.bench = suite
    local parts = {}
    for _, v in ipairs(suite.variants) do
      if v.status == "ok" then
        local l = v.latency[1]
        parts[#parts + 1] = string.format("%s %.2f %% %.3f ms", v.name, v.accuracy.top1, l.median)
      else parts[#parts + 1] = v.name .. " " .. v.status end
    end
    say("bench (%d images): %s", images, table.concat(parts, "; "))
    wb.refresh()
    return suite
  end

  function wb.report(dir)
    if not S.bench then error("report: run a bench first (wb.bench(), key b in the bench pane)", 2) end
    dir = dir or "qlab_report"
    local r = qlab.report(S.bench, {dir = dir, sensitivity = S.sens_rank and #S.sens_rank > 0 and S.sens_rank or nil,
                                    title = "qlab workbench: " .. S.name})
    S.report_path = dir .. "/report.html"
    say("report written: %s/report.html, %s/report.md, %s/results.json", dir, dir, dir)
    return r
  end

  function wb.qat(opts)
    opts = opts or {}
    local p = quant_setting(nil)
    local qc = p.prec == "w4a8" and qlab.qconfig.w4a8_qat() or qlab.qconfig.default_qat()
    local map = {default = qc}
    for _, n in ipairs(S.base) do
      local pl = wb.planned(n.name)
      if (n.op == "conv2d" or n.op == "linear") and pl.prec ~= "int8" and pl.prec ~= "w4a8" then map[n.name] = false end
    end
    local q = S.fp32:clone()
    if not pcall(q.prepare_qat, q, map) then   -- names the unfused model lacks: the default alone
      q:free()
      q = S.fp32:clone()
      q:prepare_qat(qc)
    end
    local batches = opts.batches or 100
    local ld = S.data.train:loader{batch = opts.batch or 64, shuffle = true, seed = 2, batches = batches}
    local epochs = opts.epochs or 1
    S.qat = {losses = {}, epochs = {}, nb = #ld, total = epochs * #ld, lr = opts.lr or 1e-3, running = true,
             level = p.prec == "w4a8" and "w4a8_qat" or "default_qat"}
    local t0 = qlab.clock()
    qlab.train(q, ld, {epochs = epochs, lr = S.qat.lr, momentum = 0.9, schedule = "cosine", quiet = true,
      on_batch = function(b)
        S.qat.losses[#S.qat.losses + 1] = b.loss
        S.qat.last_lr = b.lr
        return live("training", #S.qat.losses, S.qat.total)
      end,
      on_epoch = function(rec) S.qat.epochs[#S.qat.epochs + 1] = rec end})
    q:convert()
    local before = S.m:size_bytes()
    S.m = q
    _G.m = q
    S.phase = "converted"
    S.result, S.latency, S.sqnr, S.share = nil, nil, {}, {}
    S.dirty = true
    S.qat.running, S.qat.seconds = false, qlab.clock() - t0
    local l = S.qat.losses
    say("QAT (%s): %d batches of %d in %.1f s, loss %.4f -> %.4f; m is the converted QAT model (%.3f -> %.3f MB; e evaluates)",
        S.qat.level, #l, opts.batch or 64, S.qat.seconds, l[1] or 0, l[#l] or 0, before / 1e6, q:size_bytes() / 1e6)
    S.version = S.version + 1
    wb.refresh()
    return S.qat
  end

  -- what the calibration pane draws for a layer (nil: no observer with data)
  function wb.ranges(name, bins, opts)
    if not (S.phase == "prepared" or S.phase == "calibrated") or not S.m:is_prepared() then return nil end
    local ok, o = pcall(S.m.observer, S.m, name)
    if not ok or not o then return nil end
    return inspect.ranges(o, bins, opts)
  end

  -- what the weights pane draws for a conv / linear layer, from the FP32 weights (nil otherwise)
  function wb.weights(name, cols)
    local n = S.base_by[name]
    if not n or (n.op ~= "conv2d" and n.op ~= "linear") then return nil end
    if not S.fused then
      S.fused = S.fp32:clone()
      S.fused:fuse()
    end
    local ok, w = pcall(S.fused.param, S.fused, name .. ".weight")
    if not ok then return nil end
    return inspect.weights(w, cols)
  end
end
