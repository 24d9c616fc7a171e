-- Lab 2, part 6: one benchmark over every variant built so far, measured the
-- same way (qlab.bench: interleaved latency at batch 1 and 64, throughput,
-- accuracy with ties and agreement, size, memory, per-op time, fraction of
-- the machine's measured peak), then the report a team reads before it
-- ships a model (qlab.report: report.md, results.json, report.html).
--   ./qlab --script lua/labs/lab02/part6_bench.lua [--quick] [--model NAME]
-- scripts/bench_all.lua does the same for every model and variant.
local qlab = require "qlab"
local lab = require "labs.lab02.common"

local function run(ctx)
  local fp32 = lab.load(ctx)
  -- TODO 1: the variants, each built inside the benchmark (a failing one is reported, not fatal)
  local models = {
    {"fp32", fp32},
    {"ptq_int8", function() return qlab.ptq(fp32, qlab.qconfig.default(), ctx.calib()) end},
    {"ptq_int8_per_tensor", function() return qlab.ptq(fp32, qlab.qconfig.per_tensor(), ctx.calib()) end},
    {"ptq_w4a8", function() return qlab.ptq(fp32, qlab.qconfig.w4a8(), ctx.calib()) end},
    {"fp16", function() return qlab.ptq(fp32, qlab.qconfig.f16(), ctx.calib()) end, kind = "f16"},
  }
  -- TODO 2: measure them side by side
  local suite = qlab.bench{name = ctx.model_name, models = models, data = ctx.val, reference = "fp32",
                           batch_sizes = {1, 64}, threads = {ctx.threads}, quick = ctx.quick,
                           runs = ctx.quick and {[1] = 10, [64] = 2} or {[1] = 100, [64] = 20},
                           rounds = ctx.quick and 2 or 5, quiet = ctx.quick}
  -- TODO 3: the report, with the per-layer sensitivity of W4A8 as its last chart
  local rank = qlab.sensitivity(fp32, {data = ctx.val, calib = ctx.calib(), qconfig = qlab.qconfig.w4a8(),
                                       metric = "sqnr", batches = 2, time = false, quiet = true})
  local dir = "out/lab02/report"
  local rep = qlab.report(suite, {dir = dir, title = "Lab 2: " .. ctx.model_name .. ", FP32 vs quantized",
                                  sensitivity = rank, command = "lua/labs/lab02/part6_bench.lua"})
  print("\nPart 6, benchmark of " .. ctx.model_name .. ": " .. #suite.variants .. " variants")
  for _, v in ipairs(suite.variants) do
    if v.status == "ok" then
      local l1 = v.latency[1]
      print(string.format("  %-22s top-1 %6.2f  drop %5.2f  b1 %7.3f ms  speed-up %5.2fx  %6.2f MB", v.name,
                          v.accuracy.top1, v.accuracy.drop, l1.median, l1.speedup, v.size.bytes / 1e6))
    else
      print(string.format("  %-22s %s: %s", v.name, v.status, tostring(v.error or v.reason)))
    end
  end
  for _, r in ipairs(rep.recommendations or {}) do print("  * " .. (r.text or tostring(r))) end
  local charts = 0
  for _, f in ipairs(rep.files) do if f:match("%.svg$") then charts = charts + 1 end end
  print("report: " .. dir .. "/report.html (" .. charts .. " charts)")
  return {report = dir .. "/report.html", charts = charts, files = rep.files, variants_measured = #suite.variants}
end

if ... ~= "labs.lab02.part6_bench" then lab.main("part6_bench", run, arg) end
return run
