-- Lab 2, every part in one process, one JSON for the grader:
--   ./qlab --json out.json --script lua/labs/lab02/all.lua [--quick] [--model NAME]
--   ./qlab --script scripts/grade.lua out.json
-- The JSON schema is docs/lab02_schema.md ("qlab.lab02/1").
local qlab = require "qlab"
local lab = require "labs.lab02.common"

local parts = {"part1_ptq", "part2_dynamic", "part3_qat", "part4_per_channel", "part5_sensitivity",
               "part6_bench", "bonus_onnx"}
local ctx = lab.context(arg)
local results = {}
local t0 = qlab.clock()
for _, p in ipairs(parts) do
  local ok, run = pcall(require, "labs.lab02." .. p)
  if not ok then
    results[p] = {skipped = "not available: " .. tostring(run):gsub("\n.*", "")}
    print(string.format("\n== %s: skipped (%s)", p, results[p].skipped))
  else
    print(string.format("\n== %s", p))
    local t = qlab.clock()
    local good, res = xpcall(run, debug.traceback, ctx)
    if good then
      res.seconds = qlab.clock() - t
      results[p] = res
    else   -- one failing part does not take the others down; the grader reports it
      results[p] = {failed = tostring(res)}
      print(string.format("%s failed: %s", p, res))
    end
  end
end
lab.record(ctx, results)
print(string.format("\nlab 2: %d parts in %.0f s", #parts, qlab.clock() - t0))
