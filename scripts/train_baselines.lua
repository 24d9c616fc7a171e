-- Trains the shipped FP32 baselines on Fashion-MNIST with qlab's own engine
-- and writes data/models/<name>_fmnist.qlm plus data/models/README.md.
--   ./qlab --script scripts/train_baselines.lua [name ...] [--epochs N] [--out DIR]
--   ./qlab --script scripts/train_baselines.lua --readme    (rewrite data/models/README.md only)
-- Inputs are x/255 (no mean/std), so `test:loader{batch = 256}` evaluates
-- the shipped models as they were trained. Every recipe is seeded: a rerun
-- reproduces the same weights on the same machine and thread count.
local qlab = require "qlab"

local recipes = {
  small_cnn = {epochs = 10, batch = 128, optimizer = "sgd", lr = 0.05, momentum = 0.9, nesterov = true,
               weight_decay = 5e-4, schedule = "cosine", warmup = 0.3, flip = true, crop_pad = 2},
  lstm = {epochs = 12, batch = 128, optimizer = "adam", lr = 2e-3, schedule = "cosine", warmup = 0.3},
  resnet18 = {epochs = 8, batch = 128, optimizer = "sgd", lr = 0.1, momentum = 0.9, nesterov = true,
              weight_decay = 5e-4, schedule = "cosine", warmup = 0.5, flip = true, crop_pad = 2,
              -- 8 augmented epochs leave it under-fitted (91.6 %): a short fine-tune without augmentation
              finetune = {epochs = 3, batch = 128, optimizer = "sgd", lr = 0.01, momentum = 0.9, nesterov = true,
                          weight_decay = 5e-4, schedule = "cosine"}},
  mobilenet_v2 = {epochs = 6, batch = 128, optimizer = "sgd", lr = 0.05, momentum = 0.9, nesterov = true,
                  weight_decay = 4e-5, schedule = "cosine", warmup = 0.5, flip = true, crop_pad = 2},
}
local order = {"small_cnn", "lstm", "resnet18", "mobilenet_v2"}

local names, epochs_override, out, readme_only = {}, nil, "data/models", false
local finetune_only = false   -- start from the saved model and run only the recipe's finetune stage
local i = 1
while i <= #arg do
  if arg[i] == "--epochs" then epochs_override = tonumber(arg[i + 1]); i = i + 1
  elseif arg[i] == "--out" then out = arg[i + 1]; i = i + 1
  elseif arg[i] == "--readme" then readme_only = true
  elseif arg[i] == "--finetune-only" then finetune_only = true
  elseif recipes[arg[i]] then names[#names + 1] = arg[i]
  else error("unknown argument '" .. arg[i] .. "' (models: " .. table.concat(order, ", ") .. ")") end
  i = i + 1
end
if #names == 0 and not readme_only then names = order end
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
  local path = out .. "/" .. name .. "_fmnist.qlm"
  local function stage(rc, n, tag)
    print(string.format("== %s%s: %d parameters, %d epochs, threads %d", name, tag, model:num_params(), n, qlab.threads()))
    local ld = train:loader{batch = rc.batch, shuffle = true, seed = 1, flip = rc.flip, crop_pad = rc.crop_pad}
    return qlab.train(model, ld, {epochs = n, optimizer = rc.optimizer, lr = rc.lr, momentum = rc.momentum,
                                  nesterov = rc.nesterov, weight_decay = rc.weight_decay, schedule = rc.schedule,
                                  warmup = rc.warmup, val = val,
                                  checkpoint = out .. "/" .. name .. tag .. ".ckpt", resume = true})
  end
  local t0 = qlab.clock()
  local h = {epochs = {}}
  local prev = results[name]
  if finetune_only then
    model = qlab.load(path)
    epochs = prev and prev.epochs or epochs
    t0 = t0 - (prev and prev.wall_seconds or 0)
    if prev then for _ = 1, prev.epochs do h.epochs[#h.epochs + 1] = {seconds = prev.seconds_per_epoch} end end
  else
    h = stage(r, epochs, "")
  end
  if r.finetune then
    local hf = stage(r.finetune, r.finetune.epochs, ".finetune")
    for _, e in ipairs(hf.epochs) do h.epochs[#h.epochs + 1] = e end
    epochs = epochs + r.finetune.epochs
    os.remove(out .. "/" .. name .. ".finetune.ckpt")
  end
  local wall = qlab.clock() - t0
  local full = qlab.evaluate(model, val)
  local sub = qlab.evaluate(model, subset)
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
  "Seconds per epoch are wall time on a 2-core machine shared with other jobs",
  "(see scripts/bench_fp32.lua for the training speed measured alone).",
  "The quantized models shipped beside them, and what PTQ and QAT give on",
  "them: [quantized.md](quantized.md).",
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
