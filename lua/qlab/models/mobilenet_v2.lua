-- MobileNetV2 with torchvision's topology and names (features.N.conv.M,
-- classifier.1), width 1.0, ReLU6, inverted residuals with depthwise 3x3
-- convs; adapted to 28x28x1 inputs with a stride-1 stem. 52 convolutions +
-- 1 linear layer.
local nn = require "qlab.nn"

local settings = {  -- expansion t, channels c, repeats n, first stride s
  {1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
}

local function cbr(b, prefix, x, o)   -- torchvision ConvBNReLU: prefix.0 conv, .1 bn, .2 relu6
  return b:conv_bn(prefix .. ".0", prefix .. ".1", x, o, "relu6", prefix .. ".2")
end

local function inverted_residual(b, x, idx, inp, oup, stride, t)
  local p = "features." .. idx .. ".conv"
  local hidden = inp * t
  local y, k = x, 0
  if t ~= 1 then
    y = cbr(b, p .. ".0", y, {out = hidden, kernel = 1})
    k = 1
  end
  y = cbr(b, p .. "." .. k, y, {out = hidden, kernel = 3, stride = stride, padding = 1, groups = hidden})
  y = b:conv_bn(p .. "." .. (k + 1), p .. "." .. (k + 2), y, {out = oup, kernel = 1}, false)
  if stride == 1 and inp == oup then
    y = b:add("features." .. idx .. ".add", x, y)
  end
  return y
end

return function(opts)
  opts = opts or {}
  local b = nn.graph{input = opts.input or {28, 28, 1}}
  local x = cbr(b, "features.0", b:input(), {out = 32, kernel = 3, stride = opts.stem_stride or 1, padding = 1})
  local inp, idx = 32, 1
  for _, s in ipairs(settings) do
    local t, c, n, st = s[1], s[2], s[3], s[4]
    for i = 1, n do
      x = inverted_residual(b, x, idx, inp, c, i == 1 and st or 1, t)
      inp, idx = c, idx + 1
    end
  end
  x = cbr(b, "features." .. idx, x, {out = 1280, kernel = 1})
  x = b:global_avgpool("avgpool", x)
  x = b:linear("classifier.1", x, {out = opts.classes or 10})
  return b:build(x)
end
