-- The tables of the peer benchmark (scripts/bench_peers.sh) from the figures in DIR:
--   ./qlab --script scripts/bench_peers_table.lua DIR
-- reads DIR/qlab.json (scripts/bench_peers.lua), DIR/torch_<model>.json
-- (scripts/bench_vs_torch.py, or {"bench_vs_torch": {"skipped" | "crashed": why}}) and
-- DIR/ort_<model>_{fp32,int8}.json (scripts/ort_compare, or {"skipped": why}); prints one
-- markdown table per model and writes DIR/table.md and DIR/table.json.
-- Ratio = qlab's speed over the best peer's on that row (> 1: qlab is faster; for times,
-- the peer's time over qlab's). Fraction of peak = qlab's MACs per second over the
-- measured one-core peak times the threads used (FP32 at the FMA peak, INT8 at the INT8
-- dot-product peak of the ISA qlab's kernels use; a training step counts 3x the forward MACs).
local qlab = require "qlab"

local dir = arg[1] or error("usage: bench_peers_table.lua DIR", 0)

local function read_json(path)
  local f = io.open(path, "rb")
  if not f then return nil, "no " .. path end
  local text = f:read("a")
  f:close()
  local ok, v = pcall(qlab.json_decode, text)
  if not ok then return nil, path .. ": " .. tostring(v) end
  return v
end

local qdoc = assert(read_json(dir .. "/qlab.json"))
local Q = qdoc.bench_peers or error(dir .. "/qlab.json has no bench_peers record", 0)

local function short(msg)   -- a crash message for a table cell's footnote
  msg = tostring(msg):gsub("%s+", " ")
  return #msg > 160 and msg:sub(1, 157) .. "..." or msg
end

local function by_threads(list, th)
  for _, r in ipairs(list or {}) do
    if (r.threads or r.t) == th then return r end
  end
end

local peer_versions = {}

-- {value, note} for PyTorch on one row
local function torch_cell(T, key)
  if not T then return nil, "not run" end
  if T.skipped then return nil, T.skipped end
  local prec, th, what = key.prec, key.threads, key.what
  if what == "calib" then return T.calibration_s, T.calibration_s == nil and (T.crashed or "no figure") or nil end
  if what == "train" then
    local tr = T.train
    if not tr then return nil, T.crashed or "not measured" end
    return tr[prec .. "_images_per_s"], tr[prec .. "_error"]
  end
  local r = by_threads(T.timings, th)
  local p = r and r[prec]
  if not p then return nil, T.crashed or "no figure" end
  if p.error then return nil, p.error end
  if what == "b1" then return p.b1_median_ms end
  return p.b64_images_per_s
end

local function ort_cell(O, key)
  if key.what == "calib" or key.what == "train" then return nil, nil end   -- not a peer for these rows
  if not O then return nil, "not run" end
  if O.skipped then return nil, O.skipped end
  if O.crashed then return nil, O.crashed end
  local r = by_threads(O.ort and O.ort.threads, key.threads)
  if not r then return nil, "no figure" end
  if key.what == "b1" then return r.b1_ms end
  return r.b64_ips
end

local rows_spec = {
  {label = "FP32 batch 1 (ms)", prec = "fp32", threads = 1, what = "b1"},
  {label = "FP32 batch 64 (img/s)", prec = "fp32", threads = 1, what = "b64"},
  {label = "FP32 batch 1, 2 threads (ms)", prec = "fp32", threads = 2, what = "b1"},
  {label = "FP32 batch 64, 2 threads (img/s)", prec = "fp32", threads = 2, what = "b64"},
  {label = "INT8 batch 1 (ms)", prec = "int8", threads = 1, what = "b1"},
  {label = "INT8 batch 64 (img/s)", prec = "int8", threads = 1, what = "b64"},
  {label = "INT8 batch 1, 2 threads (ms)", prec = "int8", threads = 2, what = "b1"},
  {label = "INT8 batch 64, 2 threads (img/s)", prec = "int8", threads = 2, what = "b64"},
  {label = string.format("calibration %d x 32, histogram (s)", Q.config and Q.config.calib_batches or 100),
   what = "calib"},
  {label = "training step b128 FP32, 2 threads (img/s)", prec = "fp32", threads = 2, what = "train"},
  {label = "training step b128 QAT, 2 threads (img/s)", prec = "qat", threads = 2, what = "train"},
}

local function qlab_cell(R, key)
  if key.what == "calib" then return R.calibration_s, nil end
  if key.what == "train" then
    return R.train[key.prec .. "_images_per_s"], R.train[key.prec .. "_peak_fraction"]
  end
  local r = by_threads(R.timings, key.threads)[key.prec]
  if key.what == "b1" then return r.b1_median_ms, r.b1_peak_fraction, r.b1_vnni_fraction end
  return r.b64_images_per_s, r.b64_peak_fraction, r.b64_vnni_fraction
end

local lower_is_better = {b1 = true, calib = true}

local function fmt(v, what)
  if v == nil then return "-" end
  if what == "b1" then return string.format("%.3f", v) end
  if what == "calib" then return string.format("%.2f", v) end
  local s = string.format("%.0f", v)
  local int = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (int:gsub("^,", ""))
end

local md, doc = {}, {schema = "qlab.bench_peers/1", created = os.date("!%Y-%m-%dT%H:%M:%SZ"), dir = dir,
                     machine = {cpu_model = Q.machine.cpu_model, cores = Q.cores, isa = Q.isa,
                                isa_best = Q.machine.isa_best, openblas_core = Q.machine.openblas.core,
                                openblas_coretype = Q.openblas_coretype},
                     basis = Q.basis, quick = Q.quick, models = {}}
local function emit(line) md[#md + 1] = line end

local coretype = Q.openblas_coretype
emit(string.format("# qlab vs PyTorch vs ONNX Runtime%s", Q.quick and " (--quick: few runs, not for quoting)" or ""))
emit("")
emit(string.format("- CPU: %s, %d cores", Q.machine.cpu_model, Q.cores))
emit(string.format("- ISA qlab used: INT8 kernels `%s` (CPU best `%s`); OpenBLAS kernels %s (`%s`)", Q.isa,
  Q.machine.isa_best, tostring(Q.machine.openblas.core), tostring(Q.machine.openblas.isa)))
emit(string.format("- OPENBLAS_CORETYPE: %s", coretype and ("`" .. tostring(coretype) .. "`") or "unset"))
emit(string.format("- date: %s", os.date("!%Y-%m-%d %H:%M UTC")))
if Q.loadavg and Q.loadavg.start then
  emit(string.format("- load average (1 min) when qlab's part started / ended: %.2f / %.2f on %d cores "
    .. "(other jobs share the machine when it is well above 0)", Q.loadavg.start, Q.loadavg.finish or 0, Q.cores))
end
emit(string.format("- peak of one core (qlab.peak): FP32 %.1f GFMA/s (`%s` FMA), INT8 %.1f GMAC/s (`%s` dot product)%s",
  Q.basis.fp32.gmacs, Q.basis.fp32.isa, Q.basis.int8.gmacs, Q.basis.int8.isa,
  Q.basis.int8_vnni and string.format("; VNNI (`avx512` vpdpbusd) %.1f GMAC/s, the second figure of the INT8 rows",
                                      Q.basis.int8_vnni.gmacs) or ""))

local notes = {}
for _, name in ipairs((function()
    local n = {}
    for k in pairs(Q.models) do n[#n + 1] = k end
    table.sort(n, function(a, b)   -- resnet18 first, then by name
      if (a == "resnet18") ~= (b == "resnet18") then return a == "resnet18" end
      return a < b
    end)
    return n
  end)()) do
  local R = Q.models[name]
  local tdoc = read_json(dir .. "/torch_" .. name .. ".json")
  local T = tdoc and tdoc.bench_vs_torch
  local O = {fp32 = read_json(dir .. "/ort_" .. name .. "_fp32.json"), int8 = read_json(dir .. "/ort_" .. name .. "_int8.json")}
  local tv = T and T.torch_version and ("PyTorch " .. T.torch_version:gsub("%+.*", "") ..
                                        " (quantized engine " .. tostring(T.quantized_engine) .. ")")
  local ov = (O.fp32 and O.fp32.ort and O.fp32.ort.version) or (O.int8 and O.int8.ort and O.int8.ort.version)
  if tv then peer_versions.torch = tv end
  if ov then peer_versions.ort = "ONNX Runtime " .. ov end

  emit("")
  emit(string.format("## %s (%.2f M MACs per image%s)", name, R.macs_fp32 / 1e6,
    R.macs_live_fp32 and string.format(", %.2f M on taps that read the image: the fractions of peak count those",
                                       R.macs_live_fp32 / 1e6) or ""))
  emit("")
  emit("| | qlab | PyTorch | ONNX Runtime | qlab / best peer | qlab fraction of peak |")
  emit("|---|---:|---:|---:|---:|---:|")
  local foot, foot_of = {}, {}
  local function note(msg)
    msg = short(msg)
    if not foot_of[msg] then foot[#foot + 1] = msg; foot_of[msg] = #foot end
    return "[" .. foot_of[msg] .. "]"
  end
  local mrows = {}
  for _, key in ipairs(rows_spec) do
    local qv, frac, vfrac = qlab_cell(R, key)
    local tval, tnote = torch_cell(T, key)
    local oval, onote = ort_cell(key.prec == "int8" and O.int8 or O.fp32, key)
    local best, best_name
    for _, p in ipairs{{tval, "PyTorch"}, {oval, "ORT"}} do
      if p[1] and (not best or (lower_is_better[key.what] and p[1] < best or not lower_is_better[key.what] and p[1] > best)) then
        best, best_name = p[1], p[2]
      end
    end
    local ratio = best and qv and (lower_is_better[key.what] and best / qv or qv / best) or nil
    local tcell = tval and fmt(tval, key.what) or (tnote and ("- " .. note(tnote)) or "-")
    local ocell = oval and fmt(oval, key.what) or (onote and ("- " .. note(onote)) or "-")
    emit(string.format("| %s | %s | %s | %s | %s | %s |", key.label, fmt(qv, key.what), tcell, ocell,
      ratio and string.format("%.2fx (%s)", ratio, best_name) or "-",
      frac and (string.format("%.1f %%", 100 * frac) .. (vfrac and string.format(" (VNNI %.1f %%)", 100 * vfrac) or ""))
      or "-"))
    mrows[#mrows + 1] = {label = key.label, qlab = qv, torch = tval, ort = oval, torch_note = tnote, ort_note = onote,
                         best_peer = best_name, ratio = ratio, peak_fraction = frac, vnni_fraction = vfrac}
  end
  if #foot > 0 then
    emit("")
    for k, msg in ipairs(foot) do emit(string.format("- [%d] %s", k, msg)) end
  end
  doc.models[#doc.models + 1] = {name = name, macs = R.macs_fp32, macs_live = R.macs_live_fp32, rows = mrows}
end

emit("")
emit(string.format("Peers: %s; %s. Ratio: qlab's speed over the best peer's on the row (> 1: qlab faster). "
  .. "Batch 1: median ms; batch 64 and training: images/s; PyTorch FP32 = TorchScript frozen + optimize_for_inference, "
  .. "INT8 = FX static PTQ, training = eager (QAT: prepare_qat_fx); ORT INT8 = qlab's QDQ export (keep_fusable). "
  .. "Fraction of peak: MACs/s over the one-core peak x threads (training: 3x the forward MACs).",
  peer_versions.torch or "PyTorch: no figures (see the notes)", peer_versions.ort or "ONNX Runtime: no figures (see the notes)"))
doc.peers = peer_versions

local text = table.concat(md, "\n") .. "\n"
io.write(text)
local f = assert(io.open(dir .. "/table.md", "wb"))
f:write(text)
f:close()
f = assert(io.open(dir .. "/table.json", "wb"))
f:write(qlab.json_encode(doc))
f:close()
