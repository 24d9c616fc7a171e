-- Training: optimizers drive the loss down; a checkpointed and resumed run
-- equals an uninterrupted one; schedules; bad options.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"

local train = qlab.data.fashion_mnist{split = "train"}:subset(1, 1024)
local tmp = H.tmpdir()

local function tiny()
  local b = qlab.nn.graph{input = {28, 28, 1}}
  local x = b:conv_bn("conv1", "bn1", b:input(), {out = 8, kernel = 3, stride = 2, padding = 1})
  x = b:conv_bn("conv2", "bn2", x, {out = 16, kernel = 3, stride = 2, padding = 1})
  x = b:global_avgpool("pool", x)
  return b:build(b:linear("fc", x, {out = 10}))
end

H.test("a few hundred steps drive the loss down and accuracy up (deterministic)", function()
  local function run()
    qlab.seed(7)
    local m = tiny()
    local ld = train:loader{batch = 32, shuffle = true, seed = 3}
    local h = qlab.train(m, ld, {epochs = 8, lr = 0.05, momentum = 0.9, quiet = true})
    return h, m
  end
  local h = run()
  local first, last = h.epochs[1], h.epochs[#h.epochs]
  assert(#h.epochs == 8)
  assert(last.loss < first.loss * 0.7, string.format("loss %.4f -> %.4f", first.loss, last.loss))
  assert(last.acc > first.acc + 10, string.format("acc %.2f -> %.2f", first.acc, last.acc))
  local h2 = run()
  assert(h2.epochs[8].loss == last.loss, "same seed must give the same run")
end)

H.test("adam and adamw also learn", function()
  for _, kind in ipairs{"adam", "adamw"} do
    qlab.seed(1)
    local m = tiny()
    local h = qlab.train(m, train:loader{batch = 64, shuffle = true, seed = 1},
                         {epochs = 4, optimizer = kind, lr = 3e-3, quiet = true})
    assert(h.epochs[4].loss < h.epochs[1].loss, kind)
  end
end)

H.test("checkpoint and resume equals an uninterrupted run", function()
  local opts = function(ck) return {epochs = 4, lr = 0.05, momentum = 0.9, nesterov = true, weight_decay = 1e-4,
                                    schedule = "cosine", warmup = 0.5, quiet = true, checkpoint = ck, resume = true} end
  qlab.seed(11)
  local a = tiny()
  local base = a:clone()
  local la = train:loader{batch = 64, shuffle = true, seed = 5, flip = true, crop_pad = 2}
  qlab.train(a, la, opts(tmp .. "/full.ckpt"))

  -- interrupted after epoch 2: stop via on_epoch, then resume in a fresh model and loader
  local b = base:clone()
  local lb = train:loader{batch = 64, shuffle = true, seed = 5, flip = true, crop_pad = 2}
  local o = opts(tmp .. "/part.ckpt")
  o.on_epoch = function(rec) if rec.epoch == 2 then return false end end
  qlab.train(b, lb, o)
  local c = base:clone()   -- a new process would start from scratch weights: the checkpoint restores them
  local lc = train:loader{batch = 64, shuffle = true, seed = 99, flip = true, crop_pad = 2}
  local h = qlab.train(c, lc, opts(tmp .. "/part.ckpt"))
  assert(#h.epochs == 4, "history restored and continued")
  for _, name in ipairs{"conv1.weight", "bn1.running_mean", "fc.weight", "fc.bias"} do
    local x, y = a:param(name):table(), c:param(name):table()
    for i = 1, #x do assert(x[i] == y[i], name .. " differs at " .. i) end
  end
end)

H.test("schedules", function()
  local lr_at = require("qlab.train").lr_at
  H.near(lr_at({lr = 1, schedule = "step", step_size = 2, gamma = 0.1, epochs = 6}, 4.5), 0.01, 1e-9)
  H.near(lr_at({lr = 1, schedule = "cosine", epochs = 10}, 5), 0.5, 1e-9)
  H.near(lr_at({lr = 1, schedule = "cosine", epochs = 10, warmup = 2}, 1), 0.5, 1e-2)
end)

H.test("bad options are clear errors", function()
  local m = tiny()
  local ld = train:loader{batch = 32}
  H.raises(function() qlab.train(m, ld, {epocs = 1}) end, "unknown option 'epocs'")
  H.raises(function() qlab.train(m, ld, {optimizer = "lion"}) end, "unknown optimizer 'lion'")
  H.raises(function() qlab.train(m, ld, {schedule = "linear"}) end, "unknown schedule")
  H.raises(function() qlab.optim.sgd{lr = -1} end, "must be >= 0")
  H.raises(function() qlab.optim.sgd{nesterov = true} end, "nesterov needs momentum")
end)

H.done()
