-- A small conv net (about 60k parameters) that trains in a minute: for fast
-- tests and first experiments. Input 28x28x1.
local nn = require "qlab.nn"

return function(opts)
  opts = opts or {}
  local b = nn.graph{input = opts.input or {28, 28, 1}}
  local x = b:conv_bn("conv1", "bn1", b:input(), {out = 16, kernel = 3, padding = 1}, "relu", "relu1")
  x = b:maxpool2d("pool1", x, {kernel = 2})                                  -- 14x14
  x = b:conv_bn("conv2", "bn2", x, {out = 32, kernel = 3, padding = 1}, "relu", "relu2")
  x = b:maxpool2d("pool2", x, {kernel = 2})                                  -- 7x7
  x = b:conv_bn("conv3", "bn3", x, {out = 64, kernel = 3, padding = 1}, "relu", "relu3")
  x = b:global_avgpool("avgpool", x)
  x = b:relu("fc1.relu", b:linear("fc1", x, {out = 64}))
  x = b:linear("fc2", x, {out = opts.classes or 10})
  return b:build(x)
end
