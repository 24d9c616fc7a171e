-- Writes the seed corpora in tests/fuzz/corpus/<reader>/: small real files
-- and some of their truncations. Rerun after a format change:
--   ./qlab --script tests/fuzz/make_corpus.lua
local qlab = require "qlab"
qlab.seed(0)
local dir = "tests/fuzz/corpus/"

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end
local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function with_cuts(path, bytes, cuts)
  write(path, bytes)
  for _, c in ipairs(cuts) do
    local n = c < 1 and math.floor(#bytes * c) or c
    if n < #bytes then write(string.format("%s.cut%d", path, n), bytes:sub(1, n)) end
  end
end

-- qlm: a tiny FP32 model with a conv, a residual add and a linear, and its INT8 conversion
local b = qlab.nn.graph{input = {28, 28, 1}}
local x = b:conv2d("conv", b:input(), {out = 4, kernel = 3, stride = 4, padding = 1})
x = b:relu("relu", b:add("add", b:relu("r0", x), x))
x = b:maxpool2d("pool", x, {kernel = 2, stride = 2})
x = b:linear("fc", b:flatten("flat", x), {out = 3})
local m = b:build(x)
local tmp = os.tmpname()
m:save(tmp)
local fp32 = read(tmp)
local q = qlab.ptq(m, qlab.qconfig.default(), qlab.data.fashion_mnist{split = "test"}:subset(1, 8):loader{batch = 8})
q:save(tmp)
local int8 = read(tmp)
os.remove(tmp)
with_cuts(dir .. "qlm/tiny_fp32.qlm", fp32, {8, 0.5})
with_cuts(dir .. "qlm/tiny_int8.qlm", int8, {0.3, 0.9})

-- graph_json: the graphs inside those files
local function graph_of(bytes)
  local n = string.unpack("<I8", bytes)
  local header = bytes:sub(9, 8 + n)
  local s = header:match('"qlab.graph":"(.-[^\\])"')
  return (s:gsub('\\"', '"'):gsub("\\\\", "\\"))
end
write(dir .. "graph_json/tiny_fp32.json", graph_of(fp32))
write(dir .. "graph_json/tiny_int8.json", graph_of(int8))

-- idx: first byte 0 = the input is the images file, 1 = the labels file
local images = string.pack(">I4I4I4I4", 0x803, 3, 2, 2) .. "\1\2\3\4\5\6\7\8\9\10\11\12"
local labels = string.pack(">I4I4", 0x801, 2) .. "\3\9"
with_cuts(dir .. "idx/images", "\0" .. images, {10})
with_cuts(dir .. "idx/labels", "\1" .. labels, {6})
local gz = io.popen("gzip -9 -n -c > " .. dir .. "idx/images_gz.tmp", "w")
gz:write(images)
gz:close()
write(dir .. "idx/images_gz", "\0" .. read(dir .. "idx/images_gz.tmp"))
os.remove(dir .. "idx/images_gz.tmp")

-- cifar: two records (label byte + 3x32x32 channel-planar pixels)
local rec = {}
for r = 1, 2 do
  local px = {}
  for i = 1, 3072 do px[i] = string.char((i * r) % 256) end
  rec[r] = string.char(r) .. table.concat(px)
end
with_cuts(dir .. "cifar/two_records.bin", table.concat(rec), {3073, 4000})
print("seed corpora written under " .. dir)
