-- What every part of the lab shares: the command line (--quick, --model),
-- the data, one way to measure a variant, the printed table and the record.
-- Each part is a module returning run(ctx) -> results, and a script when run
-- with --script (lab.main), so all.lua runs every part in one process.
local qlab = require "qlab"
local M = {}

M.SCHEMA = "qlab.lab02/1"

-- ctx from the script's arguments: {quick, model_name, threads, train, test, val, calib()}
function M.context(args)
  local ctx = {quick = false, model_name = nil, threads = nil}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--quick" then ctx.quick = true
    elseif a == "--model" then ctx.model_name = assert(args[i + 1], "--model NAME"); i = i + 1
    elseif a == "--threads" then ctx.threads = assert(tonumber(args[i + 1]), "--threads N"); i = i + 1
    else error("unknown argument '" .. tostring(a) .. "' (--quick, --model NAME, --threads N)", 0) end
    i = i + 1
  end
  ctx.model_name = ctx.model_name or (ctx.quick and "small_cnn" or "resnet18")
  ctx.threads = ctx.threads or (ctx.quick and 1 or 2)   -- tests share the cores: one thread
  qlab.seed(0)
  qlab.threads(ctx.threads)
  ctx.train = qlab.data.fashion_mnist{split = "train"}
  ctx.test = qlab.data.fashion_mnist{split = "test"}
  -- the whole test set, as the lab's figures; --quick: its first 1,000 images
  ctx.val = (ctx.quick and ctx.test:subset(1, 1000) or ctx.test):loader{batch = 250}
  -- calibration: 100 batches of 32 shuffled training images (--quick: 10)
  ctx.calib = function() return ctx.train:loader{batch = 32, shuffle = true, seed = 1, batches = ctx.quick and 10 or 100} end
  return ctx
end

function M.load(ctx, name)
  return qlab.load("data/models/" .. (name or ctx.model_name) .. "_fmnist.qlm")
end

-- The figures the lab asks for, for one variant against its FP32 reference:
-- {top1, drop, ties, agree, lost, gained, latency_b1_ms, latency_b1_p95_ms,
--  latency_b64_ms, throughput_b64, size_bytes, size_ratio, speedup_b1, speedup_b64}
function M.measure(ctx, model, ref, ref_row)
  local r = {}
  local e = qlab.evaluate(model, ctx.val, ref and {reference = ref} or nil)
  r.top1, r.ties, r.n = e.top1, e.ties, e.n
  if ref then r.drop, r.agree, r.lost, r.gained = e.ref_top1 - e.top1, e.agree, e.flips.lost, e.flips.gained
  else r.drop, r.agree, r.lost, r.gained = 0, 100, 0, 0 end
  local t1 = qlab.time_forward(model, {batch = 1, runs = ctx.quick and 20 or 200, warmup = ctx.quick and 3 or 20})
  local t64 = qlab.time_forward(model, {batch = 64, runs = ctx.quick and 3 or 20, warmup = 2})
  r.latency_b1_ms, r.latency_b1_p95_ms = t1.median, t1.p95
  r.latency_b64_ms, r.throughput_b64 = t64.median, t64.images_per_s
  r.size_bytes = model:size_bytes()
  if ref_row then
    r.size_ratio = ref_row.size_bytes / r.size_bytes
    r.speedup_b1 = ref_row.latency_b1_ms / r.latency_b1_ms
    r.speedup_b64 = r.throughput_b64 / ref_row.throughput_b64
  else
    r.size_ratio, r.speedup_b1, r.speedup_b64 = 1, 1, 1
  end
  return r
end

-- Prints rows {{name, row}, ...} as the lab's table.
function M.print_table(title, rows)
  print("\n" .. title)
  print(string.format("  %-24s %7s %6s %5s %7s %9s %9s %8s %8s %8s", "variant", "top-1", "drop", "ties", "agree%",
                      "b1 ms", "b64 img/s", "MB", "speedup", "size x"))
  for _, v in ipairs(rows) do
    local r = v[2]
    print(string.format("  %-24s %7.2f %6.2f %5d %7.2f %9.3f %9.0f %8.2f %7.2fx %7.2fx", v[1], r.top1, r.drop, r.ties,
                        r.agree, r.latency_b1_ms, r.throughput_b64, r.size_bytes / 1e6, r.speedup_b1, r.size_ratio))
  end
end

-- Runs a part as a script: its results recorded under "lab02" -> part name.
function M.main(part, run, args)
  local ctx = M.context(args)
  local t0 = qlab.clock()
  local res = run(ctx)
  res.seconds = qlab.clock() - t0
  M.record(ctx, {[part] = res})
  return res
end

function M.record(ctx, parts)
  qlab.record("lab02", {schema = M.SCHEMA, quick = ctx.quick, model = ctx.model_name, isa = qlab.cpu().isa,
                        threads = ctx.threads, parts = parts})
end

return M
