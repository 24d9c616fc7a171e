-- Trains the shipped FP32 baselines on Fashion-MNIST with qlab's own engine
-- and writes data/models/<name>_fmnist.qlm plus data/models/README.md.
--   ./qlab --script scripts/train_baselines.lua [name ...] [--epochs N] [--out DIR]
-- Inputs are x/255 (no mean/std), so `test:loader{batch = 256}` evaluates
-- the shipped models as they were trained. Every recipe is seeded: a rerun
-- reproduces the same weights on the same machine and thread count.
local qlab = require "qlab"

local recipes = {
  small_cnn = {epochs = 10, batch = 128, optimizer = "sgd", lr = 0.05, momentum = 0.9, nesterov = true,
               weight_decay = 5e-4, schedule = "cosine", warmup = 0.3, flip = true, crop_pad = 2},
  lstm = {epochs = 12, batch = 128, optimizer = "adam", lr = 2e-3, schedule = "cosine", warmup = 0.3},
  resnet18 = {epochs = 8, batch = 128, optimizer = "sgd", lr = 0.1, momentum = 0.9, nesterov = true,
              weight_decay = 5e-4, schedule = "cosine", warmup = 0.5, flip = true, crop_pad = 2},
  mobilenet_v2 = {epochs = 6, batch = 128, optimizer = "sgd", lr = 0.05, momentum = 0.9, nesterov = true,
                  weight_decay = 4e-5, schedule = "cosine", warmup = 0.5, flip = true, crop_pad = 2},
}
local order = {"small_cnn", "lstm", "resnet18", "mobilenet_v2"}

local names, epochs_override, out = {}, nil, "data/models"
local i = 1
while i <= #arg do
  if arg[i] == "--epochs" then epochs_override = tonumber(arg[i + 1]); i = i + 1
  elseif arg[i] == "--out" then out = arg[i + 1]; i = i + 1
  elseif recipes[arg[i]] then names[#names + 1] = arg[i]
  else error("unknown argument '" .. arg[i] .. "' (models: " .. table.concat(order, ", ") .. ")") end
  i = i + 1
end
if #names == 0 then names = order end
os.execute("mkdir -p " .. out)

local train = qlab.data.fashion_mnist{split = "train"}
local test = qlab.data.fashion_mnist{split = "test"}
local val = test:loader{batch = 500}
local subset = test:subset(1, 2000):loader{batch = 500}

-- results of earlier runs, so the README lists every model
local results_path = out .. "/baselines.lua"
local results = {}
local f = io.open(results_path)
if f then results = load("return " .. f:read("a"), "baselines", "t", {})() or {}; f:close() end

for _, name in ipairs(names) do
  local r = recipes[name]
  local epochs = epochs_override or r.epochs
  qlab.seed(2026)
  local model = qlab.models[name]()
  print(string.format("== %s: %d parameters, %d epochs, threads %d", name, model:num_params(), epochs, qlab.threads()))
  local ld = train:loader{batch = r.batch, shuffle = true, seed = 1, flip = r.flip, crop_pad = r.crop_pad}
  local t0 = qlab.clock()
  local h = qlab.train(model, ld, {epochs = epochs, optimizer = r.optimizer, lr = r.lr, momentum = r.momentum,
                                   nesterov = r.nesterov, weight_decay = r.weight_decay, schedule = r.schedule,
                                   warmup = r.warmup, val = val,
                                   checkpoint = out .. "/" .. name .. ".ckpt", resume = true})
  local wall = qlab.clock() - t0
  local full = qlab.evaluate(model, val)
  local sub = qlab.evaluate(model, subset)
  local path = out .. "/" .. name .. "_fmnist.qlm"
  model:save(path)
  os.remove(out .. "/" .. name .. ".ckpt")
  local secs = 0
  for _, e in ipairs(h.epochs) do secs = secs + e.seconds end
  results[name] = {top1 = full.top1, top1_subset2000 = sub.top1, loss = full.loss, epochs = epochs,
                   seconds_per_epoch = secs / #h.epochs, wall_seconds = wall, threads = qlab.threads(),
                   params = model:num_params(), size_bytes = model:size_bytes()}
  print(string.format("%s: top-1 %.2f %% on 10,000 test images (first 2,000: %.2f %%), %.0f s per epoch -> %s",
                      name, full.top1, sub.top1, secs / #h.epochs, path))
  qlab.record(name, results[name])
  -- keep the record of every model trained so far
  local parts = {}
  for k, v in pairs(results) do
    local fields = {}
    for kk, vv in pairs(v) do fields[#fields + 1] = string.format("%s = %.17g", kk, vv) end
    table.sort(fields)
    parts[#parts + 1] = string.format("  %s = {%s},", k, table.concat(fields, ", "))
  end
  table.sort(parts)
  local rf = assert(io.open(results_path, "w"))
  rf:write("{\n", table.concat(parts, "\n"), "\n}\n")
  rf:close()
end

-- data/models/README.md
local lines = {
  "# Shipped FP32 baselines",
  "",
  "Trained by qlab's own engine on Debian's Fashion-MNIST (60,000 training images),",
  "inputs x/255, with `./qlab --script scripts/train_baselines.lua [model]` (recipes in",
  "that script; seeded). Top-1 on the full 10,000-image test set; the tests check the",
  "first 2,000 test images against the second column.",
  "",
  "| model | params | size | top-1 (10,000) | top-1 (first 2,000) | epochs | s/epoch | wall | threads |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
}
for _, name in ipairs(order) do
  local r = results[name]
  if r then
    lines[#lines + 1] = string.format("| %s | %d | %.1f MB | %.2f %% | %.2f %% | %d | %.0f | %.1f min | %d |",
      name, r.params, r.size_bytes / 1e6, r.top1, r.top1_subset2000, r.epochs, r.seconds_per_epoch,
      r.wall_seconds / 60, r.threads)
  end
end
local rf = assert(io.open(out .. "/README.md", "w"))
rf:write(table.concat(lines, "\n"), "\n")
rf:close()
