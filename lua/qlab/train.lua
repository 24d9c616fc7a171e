-- qlab.train(model, loader, opts): the training loop.
--   opts.epochs (1), opts.lr, opts.optimizer ("sgd" | "adam" | "adamw" or an
--   Optimizer), momentum, nesterov, weight_decay, betas,
--   schedule ("none" | "step" | "cosine"), step_size, gamma, warmup (epochs,
--   may be fractional), val (a Loader evaluated after every epoch),
--   checkpoint (path written atomically after every epoch), resume (continue
--   from opts.checkpoint if it exists), on_batch(info) and on_epoch(info)
--   (return false to stop), quiet.
-- Returns {epochs = {{epoch, loss, acc, val_top1, lr, seconds, images_per_s}}, optimizer}.
local core = require "qlab.core"

local M = {}

-- Plain data (numbers, strings, booleans, tables of them) to Lua source.
local function serialize(v)
  local t = type(v)
  if t == "number" then return string.format("%.17g", v)
  elseif t == "string" then return string.format("%q", v)
  elseif t == "boolean" then return tostring(v)
  elseif t == "table" then
    local parts = {}
    for k, x in pairs(v) do
      if type(x) ~= "function" and type(x) ~= "userdata" then
        parts[#parts + 1] = "[" .. serialize(k) .. "]=" .. serialize(x)
      end
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "nil"
end

local function deserialize(s)
  local f = assert(load("return " .. s, "checkpoint state", "t", {}))
  return f()
end

local function lr_at(o, e)   -- e: fractional epoch in [0, epochs)
  local lr, warm = o.lr, o.warmup or 0
  if warm > 0 and e < warm then return lr * (e + 1e-3) / warm end
  if o.schedule == "step" then
    return lr * (o.gamma or 0.1) ^ math.floor(e / (o.step_size or 30))
  elseif o.schedule == "cosine" then
    local span = math.max(o.epochs - warm, 1e-9)
    return 0.5 * lr * (1 + math.cos(math.pi * (e - warm) / span))
  end
  return lr
end
M.lr_at = lr_at

local known = {epochs = 1, lr = 1, optimizer = 1, momentum = 1, nesterov = 1, weight_decay = 1, betas = 1,
               schedule = 1, step_size = 1, gamma = 1, warmup = 1, val = 1, checkpoint = 1, resume = 1,
               on_batch = 1, on_epoch = 1, quiet = 1, freeze_bn_after = 1, freeze_observers_after = 1}

local function make_optimizer(o)
  if type(o.optimizer) == "userdata" then return o.optimizer end
  local kind = o.optimizer or "sgd"
  local f = core.optim[kind]
  if not f then error("train: unknown optimizer '" .. tostring(kind) .. "' (sgd, adam, adamw)", 3) end
  local args = {lr = o.lr, weight_decay = o.weight_decay, betas = o.betas}
  if kind == "sgd" then args.momentum = o.momentum; args.nesterov = o.nesterov end
  return f(args)
end

local function isatty2() return core.stderr_tty() end

function M.train(model, loader, o)
  o = o or {}
  for k in pairs(o) do
    if not known[k] then error("train: unknown option '" .. tostring(k) .. "'", 2) end
  end
  o.epochs = o.epochs or 1
  o.lr = o.lr or (o.optimizer == "adam" or o.optimizer == "adamw") and 1e-3 or 0.1
  o.schedule = o.schedule or "none"
  if o.schedule ~= "none" and o.schedule ~= "step" and o.schedule ~= "cosine" then
    error("train: unknown schedule '" .. tostring(o.schedule) .. "' (none, step, cosine)", 2)
  end
  local opt = make_optimizer(o)
  local history = {epochs = {}, optimizer = opt}
  local start = 1
  if o.resume and o.checkpoint then
    local f = io.open(o.checkpoint, "rb")
    if f then
      f:close()
      local st = deserialize(core.checkpoint_load(o.checkpoint, model, opt, loader))
      start = st.epoch + 1
      history.epochs = st.history or {}
      if not o.quiet then io.stderr:write(string.format("resumed from %s after epoch %d\n", o.checkpoint, st.epoch)) end
    end
  end
  local nb = #loader
  local tty = not o.quiet and isatty2()
  for epoch = start, o.epochs do
    if o.freeze_bn_after and epoch > o.freeze_bn_after and model.freeze_bn then
      if not model:bn_frozen() and not o.quiet then print(string.format("epoch %d: freezing batch-norm statistics", epoch)) end
      model:freeze_bn()
    end
    if o.freeze_observers_after and epoch > o.freeze_observers_after and model.freeze_observers then
      if not model:observers_frozen() and not o.quiet then print(string.format("epoch %d: freezing observers", epoch)) end
      model:freeze_observers()
    end
    local t0, seen, loss_sum, correct = core.clock(), 0, 0, 0
    local b, lr = 0, o.lr
    for x, y in loader:iter() do
      lr = lr_at(o, (epoch - 1) + b / nb)
      local loss, c = model:train_step(opt, x, y, lr)
      local n = x:shape()[1]
      b, seen, loss_sum, correct = b + 1, seen + n, loss_sum + loss * n, correct + c
      if tty and (b % 10 == 0 or b == nb) then
        io.stderr:write(string.format("\repoch %d/%d  %d/%d  loss %.4f  acc %.2f%%  lr %.4g  %.0f img/s   ",
          epoch, o.epochs, b, nb, loss_sum / seen, 100 * correct / seen, lr, seen / (core.clock() - t0)))
      end
      if o.on_batch and o.on_batch{epoch = epoch, batch = b, batches = nb, loss = loss, lr = lr} == false then
        break
      end
    end
    if tty then io.stderr:write("\n") end
    local secs = core.clock() - t0
    local rec = {epoch = epoch, loss = loss_sum / math.max(seen, 1), acc = 100 * correct / math.max(seen, 1),
                 lr = lr, seconds = secs, images_per_s = seen / secs}
    if o.val then
      local r = core.evaluate(model, o.val)
      rec.val_top1, rec.val_loss = r.top1, r.loss
    end
    history.epochs[#history.epochs + 1] = rec
    if not o.quiet then
      print(string.format("epoch %d/%d  loss %.4f  train %.2f%%%s  lr %.4g  %.1f s  %.0f img/s",
        epoch, o.epochs, rec.loss, rec.acc,
        rec.val_top1 and string.format("  val %.2f%%", rec.val_top1) or "", lr, secs, rec.images_per_s))
      io.stdout:flush()
    end
    if o.checkpoint then
      core.checkpoint_save(o.checkpoint, model, opt, loader, serialize{epoch = epoch, history = history.epochs})
    end
    if o.on_epoch and o.on_epoch(rec) == false then break end
  end
  return history
end

return M
