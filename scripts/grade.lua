-- Grades a lab 2 result file against the lab's expectations, one line per
-- item with the figure it rests on; exit status 0 only when every item passes.
--   ./qlab --script scripts/grade.lua out.json
local qlab = require "qlab"
local path = arg[1] or error("usage: qlab --script scripts/grade.lua RESULTS.json", 0)
local f = io.open(path, "rb") or error("grade: cannot read " .. path, 0)
local text = f:read("a")
f:close()
local doc, err = qlab.json_decode(text)
if doc == nil then error("grade: " .. path .. " is not JSON: " .. tostring(err), 0) end
local lab = type(doc) == "table" and doc.lab02
if type(lab) ~= "table" or lab.schema ~= "qlab.lab02/1" then
  error("grade: " .. path .. " holds no lab02 results of schema qlab.lab02/1", 0)
end
local parts = lab.parts or {}
local passed, failed = 0, 0
local function item(name, good, figure)
  print(string.format("%-4s %-46s %s", good and "pass" or "FAIL", name, figure))
  if good then passed = passed + 1 else failed = failed + 1 end
end
local function v(part, variant)
  local p = parts[part]
  if type(p) ~= "table" then return nil, part .. " missing" end
  if p.failed then return nil, part .. " failed: " .. tostring(p.failed):gsub("\n.*", "") end
  if p.skipped then return nil, part .. " skipped: " .. p.skipped end
  local r = p.variants and p.variants[variant]
  if type(r) ~= "table" then return nil, part .. "." .. variant .. " missing" end
  return r
end
local function check(name, part, variant, pred, fmt)
  local r, why = v(part, variant)
  if not r then item(name, false, why) return end
  local good, fig = pred(r)
  item(name, good, fig)
end
local quick = lab.quick and " (quick run: a smoke test, not the lab's figures)" or ""
print(string.format("lab 2 results: %s, model %s, kernels %s%s", path, tostring(lab.model), tostring(lab.isa), quick))

check("PTQ INT8 accuracy drop < 1 point", "part1_ptq", "ptq_int8",
      function(r) return r.drop < 1, string.format("drop %.2f (top-1 %.2f)", r.drop, r.top1) end)
check("PTQ INT8 model about 4x smaller", "part1_ptq", "ptq_int8",
      function(r) return r.size_ratio >= 3.5, string.format("%.2fx", r.size_ratio) end)
check("PTQ INT8 faster than FP32 at batch 1", "part1_ptq", "ptq_int8",
      function(r) return r.speedup_b1 > 1, string.format("%.2fx (%.3f ms)", r.speedup_b1, r.latency_b1_ms) end)
check("dynamic INT8 LSTM drop < 1 point", "part2_dynamic", "lstm_dynamic_int8",
      function(r) return r.drop < 1, string.format("drop %.2f", r.drop) end)
check("QAT INT8 accuracy drop < 0.5 point", "part3_qat", "qat_int8",
      function(r) return r.drop < 0.5, string.format("drop %.2f (top-1 %.2f)", r.drop, r.top1) end)
check("per-channel at least as accurate as per-tensor", "part4_per_channel", "ptq_int8_per_channel",
      function(r)
        local t = v("part4_per_channel", "ptq_int8_per_tensor")
        if not t then return false, "per-tensor missing" end
        return r.top1 >= t.top1, string.format("%.2f vs %.2f", r.top1, t.top1)
      end)
check("mixed precision drop < 0.5 point", "part5_sensitivity", "greedy_mixed",
      function(r) return r.drop < 0.5, string.format("drop %.2f", r.drop) end)
check("mixed precision >= 1.5x FP32's throughput", "part5_sensitivity", "greedy_mixed",
      function(r) return r.speedup_b64 >= 1.5, string.format("%.2fx at batch 64 (%.2fx at batch 1)", r.speedup_b64,
                                                             r.speedup_b1) end)
check("mixed precision >= 3x smaller than FP32", "part5_sensitivity", "greedy_mixed",
      function(r) return r.size_ratio >= 3, string.format("%.2fx", r.size_ratio) end)
local p6 = parts.part6_bench
if type(p6) == "table" and not p6.skipped and not p6.failed then
  local function exists(p) local h = p and io.open(p, "rb"); if h then h:close() end; return h ~= nil end
  item("benchmark report written", exists(p6.report), tostring(p6.report))
  item("report charts present", (p6.charts or 0) > 0, string.format("%d charts", p6.charts or 0))
else
  item("benchmark report written", false, type(p6) == "table" and (p6.skipped or p6.failed) or "part6_bench missing")
end
print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
