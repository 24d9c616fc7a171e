-- `qlab --lab N`: the workbench opened on part N of lab 2, its map set as the
-- part's solution sets it and the part's next step typed in the console
-- (Enter runs it; every step is a Lua call, saved with the session).
local M = {}

local parts = {
  {name = "part 1, static PTQ", model = "resnet18",
   map = {{"set_precision", "default", "int8"}},
   say = {"every layer INT8 (histogram activations, per-channel weights): prepare inserts observers,",
          "calibrate runs training images through them, convert quantizes; o / w change a layer's observer"},
   run = "wb.prepare(); wb.calibrate(); wb.convert(); wb.evaluate()"},
  {name = "part 2, dynamic quantization", model = "lstm",
   map = {{"set_precision", "default", "dynamic"}},
   say = {"dynamic INT8 on the LSTM and its Linear: weights quantized now, activations per call"},
   run = "wb.prepare(); wb.convert(); wb.evaluate(); wb.profile()"},
  {name = "part 3, QAT", model = "resnet18", map = {},
   say = {"QAT: fake-quantized training, BN frozen after 2 epochs, observers after 3, then convert"},
   run = "q = fp32:clone(); q:prepare_qat(qlab.qconfig.default_qat()); qlab.train(q, data.train:loader{batch = 128, "
         .. "shuffle = true, batches = 60}, {epochs = 4, lr = 1e-3, momentum = 0.9, freeze_bn_after = 2, "
         .. "freeze_observers_after = 3}); q:convert(); print(qlab.evaluate(q, data.val, {reference = fp32}))"},
  {name = "part 4, per-channel vs per-tensor", model = "mobilenet_v2",
   map = {{"set_precision", "default", "int8"}, {"set_granularity", "default", "per_tensor"}},
   say = {"per-tensor weights on every layer; run it, then w on a layer (or * w) for per-channel and run again"},
   run = "wb.prepare(); wb.calibrate(); wb.convert(); wb.evaluate(); wb.compare()"},
  {name = "part 5, sensitivity and mixed precision", model = "resnet18",
   map = {{"set_precision", "default", "w4a8"}},
   say = {"4-bit weights everywhere; the sensitivity ranking fills the drop column; keep the worst layers",
          "higher (select, 4 or 1) and run the workflow again"},
   run = "wb.sensitivity()"},
  {name = "part 6, benchmark and report", model = "resnet18", map = {},
   say = {"every variant measured the same way, then report.md / report.html under out/lab02/report"},
   run = 'require("labs.lab02.part6_bench")(require("labs.lab02.common").context{"--quick"})'},
  {name = "bonus, ONNX", model = "resnet18", map = {{"set_precision", "default", "int8"}},
   say = {"convert, then save as ONNX (QDQ for the INT8 model); ONNX Runtime: scripts/ort_compare FILE.onnx"},
   run = 'wb.prepare(); wb.calibrate(); wb.convert(); m:save("out/lab02/model_int8.onnx")'},
}

-- Sets WORKBENCH.setup for part n and returns the model file to open.
function M.prepare(n)
  local p = parts[tonumber(n) or 0]
  if not p then error(string.format("--lab: parts are 1 to %d (7 is the ONNX bonus), not %s", #parts, tostring(n)), 0) end
  local opts = rawget(_G, "WORKBENCH") or {}
  local user = opts.setup
  opts.setup = function(app)
    local wb = app.wb or require "qlab.workbench.actions"
    for _, c in ipairs(p.map) do wb[c[1]](c[2], c[3]) end
    app.console:push(string.format("-- lab 2, %s (solution: lua/labs/lab02/)", p.name), "comment")
    for _, line in ipairs(p.say) do app.console:push("-- " .. line, "comment") end
    app.console:push("-- Enter runs the line below; edit it first if you like", "comment")
    app.console:prefill(p.run, app)
    if user then user(app) end
  end
  _G.WORKBENCH = opts
  return "data/models/" .. p.model .. "_fmnist.qlm"
end

return M
