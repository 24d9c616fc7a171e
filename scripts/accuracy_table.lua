-- The accuracy table, with the top-1 rule users know (ties to the lower class
-- index): FP32, static PTQ (per-channel 8-bit default, per-tensor, 7-bit
-- fast_7bit, W4A8), the shipped QAT models as they are (and with float
-- logits, model:fold_dequantize()), and the greedy
-- mixed-precision search from W4A8; each with ties, agreement with FP32 and
-- the flips each way, on the full test set.
--   ./qlab --script scripts/accuracy_table.lua [--quick] [--model resnet18|mobilenet_v2]
--          [--no-greedy] [--budget 0.3]
--   add --json out.json before --script to keep the figures
local qlab = require "qlab"

local quick, names, greedy, budget = false, nil, true, 0.3
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--quick" then quick = true
  elseif a == "--no-greedy" then greedy = false
  elseif a == "--model" then names = names or {}; names[#names + 1] = assert(arg[i + 1], "--model NAME"); i = i + 1
  elseif a == "--budget" then budget = assert(tonumber(arg[i + 1]), "--budget POINTS"); i = i + 1
  else error("accuracy_table.lua: unknown argument '" .. tostring(a) .. "'", 0) end
  i = i + 1
end
names = names or {"resnet18", "mobilenet_v2"}
local shipped_qat = {resnet18 = {"qat int8 (shipped)", "data/models/resnet18_fmnist_qat_int8.qlm"},
                     mobilenet_v2 = {"qat w4a8 (shipped)", "data/models/mobilenet_v2_fmnist_qat_w4a8.qlm"}}

qlab.seed(0)
local train = qlab.data.fashion_mnist{split = "train"}
local test = qlab.data.fashion_mnist{split = "test"}
local val = (quick and test:subset(1, 2000) or test):loader{batch = 250}
local function calib() return train:loader{batch = 32, shuffle = true, seed = 1, batches = quick and 20 or 100} end


local results = {}
for _, name in ipairs(names) do
  local fp32 = qlab.load("data/models/" .. name .. "_fmnist.qlm")
  local rows = {}
  local function add(label, m)
    local r = qlab.evaluate(m, val, {reference = fp32})
    rows[#rows + 1] = {variant = label, top1 = r.top1, drop = r.ref_top1 - r.top1, ties = r.ties, agree = r.agree,
                       lost = r.flips.lost, gained = r.flips.gained, size_bytes = m:size_bytes(), n = r.n}
    local w = rows[#rows]
    print(string.format("  %-26s %7.2f %7.2f %6d %8.2f %6d %6d %9.2f", label, w.top1, w.drop, w.ties, w.agree,
                        w.lost, w.gained, w.size_bytes / 1e6))
  end
  local base = qlab.evaluate(fp32, val)
  print(string.format("\n== %s: FP32 top-1 %.2f %% (ties %d) on %d test images; kernels %s, %d threads", name,
                      base.top1, base.ties, base.n, qlab.cpu().isa, qlab.threads()))
  print(string.format("  %-26s %7s %7s %6s %8s %6s %6s %9s", "variant", "top-1", "drop", "ties", "agree %",
                      "lost", "gained", "size MB"))
  rows[1] = {variant = "fp32", top1 = base.top1, drop = 0, ties = base.ties, agree = 100, lost = 0, gained = 0,
             size_bytes = fp32:size_bytes(), n = base.n}
  for _, v in ipairs{{"ptq int8 per-channel", "default"}, {"ptq int8 per-tensor", "per_tensor"},
                     {"ptq int8 7-bit act", "fast_7bit"}, {"ptq w4a8", "w4a8"}} do
    local m = qlab.ptq(fp32, qlab.qconfig[v[2]](), calib())
    add(v[1], m)
    m:free()
  end
  local q = shipped_qat[name]
  if q and io.open(q[2], "rb") then
    local m = qlab.load(q[2])
    add(q[1], m)
    if m:fold_dequantize() > 0 then add(q[1]:gsub("%)", ", float logits)"), m) end   -- converted before f32_out
    m:free()
  end
  if greedy then
    local mp = qlab.mixed_precision(fp32, {data = val, calib = calib(), qconfig = qlab.qconfig.w4a8(), budget = budget,
                                           k = 3, quiet = true, latency_runs = 10, calib_batches = quick and 20 or 100})
    add(string.format("greedy mixed from w4a8 (%d)", #mp.steps), mp.model)
    for _, s in ipairs(mp.steps) do
      print(string.format("      step %d: %s %s>%s -> top-1 %.2f (drop %.2f), %.2f MB", s.step, s.node, s.from, s.to,
                          s.top1, s.drop, s.size_bytes / 1e6))
    end
    rows[#rows].steps = mp.steps
    mp.model:free()
  end
  results[#results + 1] = {model = name, isa = qlab.cpu().isa, rows = rows}
end
qlab.record("accuracy_table", results)
