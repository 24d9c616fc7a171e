-- The QAT recipe the lab scripts share: FP32 vs PTQ vs QAT on one model,
-- with timings, saving the converted QAT model when it meets a target.
local qlab = require "qlab"

local M = {}

-- o: model (name), ptq_qconfig, qat_qconfig, epochs, batches (per epoch, 0 = all), lr,
-- freeze_bn_after, freeze_observers_after, target_drop (points), save (path), quick
function M.run(o)
  qlab.seed(0)
  local train = qlab.data.fashion_mnist{split = "train"}
  local test = qlab.data.fashion_mnist{split = "test"}
  local val = o.quick and test:subset(1, 2000):loader{batch = 500} or test:loader{batch = 500}
  local fp32 = qlab.load("data/models/" .. o.model .. "_fmnist.qlm")
  local base = qlab.evaluate(fp32, val).top1
  print(string.format("%s FP32: %.2f %%", o.model, base))

  local t0 = qlab.clock()
  local ptq = fp32:clone()
  ptq:fuse()
  ptq:prepare(o.ptq_qconfig)
  qlab.calibrate(ptq, train:loader{batch = 32, shuffle = true, seed = 1, batches = 100})
  ptq:convert()
  local pe = qlab.evaluate(ptq, val, {reference = fp32})
  local ptq_top1 = pe.top1
  print(string.format("%s PTQ:  %.2f %% (%+.2f; %d ties, agrees with FP32 on %.2f %%), %.1f s", o.model, ptq_top1,
                      ptq_top1 - base, pe.ties, pe.agree, qlab.clock() - t0))

  local q = fp32:clone()
  q:prepare_qat(o.qat_qconfig)
  local ld = train:loader{batch = 128, shuffle = true, seed = 2, flip = true, crop_pad = 2, batches = o.batches or 0}
  t0 = qlab.clock()
  local h = qlab.train(q, ld, {epochs = o.epochs, lr = o.lr or 1e-3, momentum = 0.9, weight_decay = 5e-5,
                               schedule = "cosine", freeze_bn_after = o.freeze_bn_after,
                               freeze_observers_after = o.freeze_observers_after, val = o.quick and val or nil})
  local train_s = qlab.clock() - t0
  q:convert()
  local qe = qlab.evaluate(q, val, {reference = fp32})
  local qat_top1 = qe.top1
  print(string.format("%s QAT:  %.2f %% (%+.2f; %d ties, agrees with FP32 on %.2f %%) after %d epochs of %d batches, "
    .. "%.0f s (%.0f s per epoch)", o.model, qat_top1, qat_top1 - base, qe.ties, qe.agree, o.epochs, #ld, train_s,
    train_s / o.epochs))

  local t_ptq = qlab.time_forward(ptq, {batch = 1, runs = 100, warmup = 10})
  local t_qat = qlab.time_forward(q, {batch = 1, runs = 100, warmup = 10})
  print(string.format("batch-1 latency: PTQ %.3f ms, QAT %.3f ms (same kernels)", t_ptq.median, t_qat.median))
  local ok = base - qat_top1 < o.target_drop
  if ok and o.save and not o.quick then
    q:save(o.save)
    print("saved " .. o.save)
  elseif not ok then
    print(string.format("QAT misses the target (drop %.2f >= %.2f): not saved", base - qat_top1, o.target_drop))
  end
  local r = {fp32 = base, ptq = ptq_top1, qat = qat_top1, ptq_ties = pe.ties, qat_ties = qe.ties, ptq_agree = pe.agree,
             qat_agree = qe.agree, epochs = o.epochs, batches_per_epoch = #ld,
             train_seconds = train_s, ptq_b1_ms = t_ptq.median, qat_b1_ms = t_qat.median, met_target = ok,
             history = h.epochs}
  qlab.record(o.model .. "_qat", r)
  return r
end

function M.args(defaults)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--quick" then o.quick = true
    elseif a == "--epochs" then o.epochs = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--batches" then o.batches = tonumber(arg[i + 1]); i = i + 1
    elseif a == "--lr" then o.lr = tonumber(arg[i + 1]); i = i + 1
    else error("unknown argument '" .. a .. "' (--quick, --epochs N, --batches N, --lr X)") end
    i = i + 1
  end
  if o.quick then o.batches = o.batches or 20; o.epochs = math.min(o.epochs, 2) end
  return o
end

return M
