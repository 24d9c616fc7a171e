-- The qlab half of scripts/ort_compare (run by it; prints one JSON line on stdout).
--   measure MODEL N RUNS THREADS   top-1 (argmax) on the first N test images, batch-1 latency and
--                                  batch-64 throughput per thread count (THREADS "1,2")
--   parity MODEL.qlm B DIR [fusable]  exports the INT8 model to DIR/model.onnx (every value an
--                                  output) and writes each uint8 value of the first B test images
--                                  as qlab's INT8 kernels and as the QDQ simulation
--                                  (qlab.load{simulate = true}) compute it: DIR/<k>.kern, DIR/<k>.sim
local qlab = require "qlab"
local mode, path = arg[1], arg[2]
local test = qlab.data.fashion_mnist{split = "test"}

local function json(v)
  if type(v) == "table" then
    local parts, n = {}, #v
    if n > 0 then
      for i = 1, n do parts[i] = json(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    for k, x in pairs(v) do parts[#parts + 1] = string.format("%q:%s", k, json(x)) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(v) == "string" then return string.format("%q", v)
  else return tostring(v) end
end

local function write_codes(file, t)
  local v, f = t:table(), assert(io.open(file, "wb"))
  for i = 1, #v, 4096 do f:write(string.char(table.unpack(v, i, math.min(i + 4095, #v)))) end
  f:close()
end

if mode == "measure" then
  local n, runs = tonumber(arg[3]), tonumber(arg[4])
  local m = qlab.load(path)
  local out = {threads = {}}
  qlab.threads(2)
  local hits, seen = 0, 0   -- argmax (first maximum), as ort_compare counts ORT's: ties are misses
  for x, y in test:subset(1, n):loader{batch = 250}:iter() do
    local am, lab = m:forward(x):argmax(), y:table()
    for i = 1, #lab do hits = hits + (am[i] - 1 == lab[i] and 1 or 0) end
    seen = seen + #lab
  end
  out.top1 = 100 * hits / seen
  for t in arg[5]:gmatch("%d+") do
    qlab.threads(tonumber(t))
    local b1 = qlab.time_forward(m, {batch = 1, runs = runs, warmup = 10})
    local b64 = qlab.time_forward(m, {batch = 64, runs = math.max(5, runs // 5), warmup = 3})
    out.threads[#out.threads + 1] = {t = tonumber(t), b1_ms = b1.median, b64_ips = b64.images_per_s}
  end
  print(json(out))
elseif mode == "parity" then
  local b, dir = tonumber(arg[3]), arg[4]
  local kern = qlab.load(path)
  kern:save(dir .. "/model.onnx", {all_outputs = true, keep_fusable = arg[5] == "fusable"})
  local sim = qlab.load(dir .. "/model.onnx", {simulate = true})
  local simnames = {}
  for _, n in ipairs(sim:nodes()) do simnames[n.name] = true end
  local x = test:loader{batch = b}:next()
  kern:keep_activations(true); sim:keep_activations(true)
  kern:forward(x); sim:forward(x)
  local man = {}
  for k, n in ipairs(kern:nodes()) do
    if n.op == "quantize" or (n.op:sub(1, 1) == "q" and n.op ~= "quantize") then
      local sname = simnames[n.name .. ".quantize"] and n.name .. ".quantize" or n.name
      local a, s = kern:activation(n.name), simnames[sname] and sim:activation(sname)
      -- uint8 values only: a q-op that ends in f32 (the last linear, say) has no codes
      if a and s and a:dtype() == "u8" and s:dtype() == "u8" then
        write_codes(string.format("%s/%d.kern", dir, k), a)
        write_codes(string.format("%s/%d.sim", dir, k), s)
        man[#man + 1] = {k = k, name = n.name, op = n.op, shape = a:shape()}
      end
    end
  end
  print(json({batch = b, values = man}))
else
  io.stderr:write("usage: ort_compare_qlab.lua measure|parity ...\n")
  os.exit(2)
end
