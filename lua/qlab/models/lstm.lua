-- LSTM classifier: reads a 28x28 image as 28 rows of 28 features (batch
-- first), hidden 128, then a Linear on the last step. PyTorch names:
-- lstm.weight_ih_l0 ..., fc.weight. The dynamic quantization model.
local nn = require "qlab.nn"

return function(opts)
  opts = opts or {}
  local b = nn.graph{input = opts.input or {28, 28}}
  local x = b:lstm("lstm", b:input(), {hidden = opts.hidden or 128, layers = opts.layers or 1})
  x = b:seq_last("last", x)
  x = b:linear("fc", x, {out = opts.classes or 10})
  return b:build(x)
end
