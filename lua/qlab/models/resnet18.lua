-- ResNet-18 with torchvision's topology and parameter names: 7x7/2 stem,
-- 3x3/2 max pool, four stages of two BasicBlocks (64, 128, 256, 512
-- channels), global average pool, fc. Input {H,W,C} (default 28x28x1).
local nn = require "qlab.nn"

local function basic_block(b, x, prefix, planes, stride, inplanes)
  local idn = x
  local y = b:conv_bn(prefix .. ".conv1", prefix .. ".bn1", x,
                      {out = planes, kernel = 3, stride = stride, padding = 1}, "relu", prefix .. ".relu")
  y = b:conv_bn(prefix .. ".conv2", prefix .. ".bn2", y,
                {out = planes, kernel = 3, padding = 1}, false)
  if stride ~= 1 or inplanes ~= planes then
    idn = b:conv_bn(prefix .. ".downsample.0", prefix .. ".downsample.1", x,
                    {out = planes, kernel = 1, stride = stride}, false)
  end
  return b:relu(prefix .. ".relu2", b:add(prefix .. ".add", y, idn))
end

return function(opts)
  opts = opts or {}
  local input = opts.input or {28, 28, 1}
  local classes = opts.classes or 10
  local b = nn.graph{input = input}
  local x = b:conv_bn("conv1", "bn1", b:input(), {out = 64, kernel = 7, stride = 2, padding = 3}, "relu", "relu")
  x = b:maxpool2d("maxpool", x, {kernel = 3, stride = 2, padding = 1})
  local inplanes = 64
  for stage, planes in ipairs{64, 128, 256, 512} do
    for blk = 0, 1 do
      local stride = (stage > 1 and blk == 0) and 2 or 1
      x = basic_block(b, x, string.format("layer%d.%d", stage, blk), planes, stride, inplanes)
      inplanes = planes
    end
  end
  x = b:global_avgpool("avgpool", x)
  x = b:linear("fc", x, {out = classes})
  return b:build(x)
end
