-- What `qlab` (and `make run`) does until the workbench TUI lands: a short
-- headless tour on the embedded defaults, saying what it does.
local qlab = require "qlab"

return function()
  local say = function(...) print(string.format(...)) end
  say("qlab %s — headless demo (the terminal workbench is not built yet; scripts: qlab --script FILE.lua)", qlab.version)
  local cpu = qlab.cpu()
  say("cpu: %d cores, kernels: %s; threads: %d", cpu.cores, cpu.isa, qlab.threads())
  local test = qlab.data.fashion_mnist{split = "test"}
  say("dataset: %s", tostring(test))
  local model, name
  for _, n in ipairs{"resnet18", "small_cnn", "mobilenet_v2", "lstm"} do
    local path = "data/models/" .. n .. "_fmnist.qlm"
    local f = io.open(path, "rb")
    if f then f:close(); model, name = qlab.load(path), path; break end
  end
  if not model then
    say("no shipped model in data/models yet: using an untrained small_cnn (accuracy will be chance)")
    qlab.seed(0)
    model, name = qlab.models.small_cnn(), "small_cnn (untrained)"
  end
  say("model: %s — %s", name, tostring(model))
  local r = qlab.evaluate(model, test:subset(1, 2000):loader{batch = 250})
  say("FP32 accuracy on the first 2,000 test images: top-1 %.2f %%, top-5 %.2f %%, loss %.4f", r.top1, r.top5, r.loss)
  local t1 = qlab.time_forward(model, {batch = 1, runs = 50, warmup = 5})
  local t64 = qlab.time_forward(model, {batch = 64, runs = 5, warmup = 1})
  say("speed: batch 1 median %.3f ms (p95 %.3f ms); batch 64 %.0f images/s", t1.median, t1.p95, t64.images_per_s)
  local mem = qlab.memory()
  say("memory: engine peak %.1f MB, process peak RSS %.1f MB", mem.peak / 1e6, mem.rss_peak / 1e6)
  say("next: see lua/labs/ and scripts/ for lab solutions and benchmarks")
end
