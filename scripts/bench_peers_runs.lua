-- Several runs of the peer benchmark in one table (scripts/bench_peers.sh --repeat N):
--   ./qlab --script scripts/bench_peers_runs.lua OUT RUN1 RUN2 ...
-- reads RUNk/table.json (scripts/bench_peers_table.lua) and writes OUT/table.md and
-- OUT/table.json: per cell the median of the runs with the lowest and highest figure, and
-- qlab's ratio to the best peer of each run (median first). On a host whose speed wanders,
-- one run's ratio can flip sign; the spread says how far to trust a cell.
local qlab = require "qlab"

local out = arg[1]
local runs = {}
for i = 2, #arg do runs[#runs + 1] = arg[i] end
if not out or #runs == 0 then error("usage: bench_peers_runs.lua OUT RUN1 [RUN2 ...]", 0) end

local docs = {}
for _, dir in ipairs(runs) do
  local f = io.open(dir .. "/table.json", "rb")
  if not f then error(dir .. "/table.json not found: run scripts/bench_peers.sh --out " .. dir .. " first", 0) end
  local d = qlab.json_decode(f:read("a"))
  f:close()
  if d.schema ~= "qlab.bench_peers/1" then error(dir .. "/table.json is not a bench_peers table", 0) end
  docs[#docs + 1] = d
end

local function median(v)
  if #v == 0 then return nil end
  local s = {}
  for i, x in ipairs(v) do s[i] = x end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

local function fmt(v, label)
  if label:find("(ms)", 1, true) then return string.format("%.3f", v) end
  if label:find("(s)", 1, true) then return string.format("%.2f", v) end
  local s = string.format("%.0f", v):reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (s:gsub("^,", ""))
end

-- the figures of one cell over the runs that have it
local function values(mi, ri, key)
  local v = {}
  for _, d in ipairs(docs) do
    local m = d.models[mi]
    local r = m and m.rows[ri]
    if r and type(r[key]) == "number" then v[#v + 1] = r[key] end
  end
  return v
end

local first = docs[1]
local md = {}
local function emit(s) md[#md + 1] = s end
local doc = {schema = "qlab.bench_peers_runs/1", created = os.date("!%Y-%m-%dT%H:%M:%SZ"), runs = runs,
             machine = first.machine, basis = first.basis, peers = first.peers, models = {}}
emit(string.format("# qlab vs PyTorch vs ONNX Runtime, %d runs%s", #docs,
  first.quick and " (--quick: few runs, not for quoting)" or ""))
emit("")
emit(string.format("- CPU: %s, %d cores; qlab's INT8 kernels `%s`; OpenBLAS %s; OPENBLAS_CORETYPE %s",
  first.machine.cpu_model, first.machine.cores, first.machine.isa, tostring(first.machine.openblas_core),
  first.machine.openblas_coretype and ("`" .. tostring(first.machine.openblas_coretype) .. "`") or "unset"))
local stamps = {}
for _, d in ipairs(docs) do stamps[#stamps + 1] = d.created end
emit("- runs: " .. table.concat(stamps, ", "))
emit("- each cell: the median of the runs (lowest-highest); ratio: qlab's speed over the best peer's, "
  .. "the median of the runs' ratios, then each run's")
for mi, m in ipairs(first.models) do
  emit("")
  emit(string.format("## %s (%.2f M MACs per image%s)", m.name, m.macs / 1e6,
    m.macs_live and string.format(", %.2f M on taps that read the image", m.macs_live / 1e6) or ""))
  emit("")
  emit("| | qlab | PyTorch | ONNX Runtime | qlab / best peer | per run |")
  emit("|---|---:|---:|---:|---:|---:|")
  local rows = {}
  for ri, row in ipairs(m.rows) do
    local cells, rrow = {}, {label = row.label}
    for _, eng in ipairs{"qlab", "torch", "ort"} do
      local v = values(mi, ri, eng)
      local med = median(v)
      rrow[eng] = med and {median = med, low = math.min(table.unpack(v)), high = math.max(table.unpack(v)), n = #v}
      cells[#cells + 1] = med and (#v > 1 and string.format("%s (%s-%s)", fmt(med, row.label),
        fmt(rrow[eng].low, row.label), fmt(rrow[eng].high, row.label)) or fmt(med, row.label)) or "-"
    end
    local ratios = {}
    for _, d in ipairs(docs) do
      local r = d.models[mi] and d.models[mi].rows[ri]
      ratios[#ratios + 1] = r and type(r.ratio) == "number" and r.ratio or false
    end
    local present = {}
    for _, x in ipairs(ratios) do if x then present[#present + 1] = x end end
    local mr = median(present)
    local each = {}
    for i, x in ipairs(ratios) do each[i] = x and string.format("%.2f", x) or "-" end
    rrow.ratio = mr
    rrow.ratios = ratios
    emit(string.format("| %s | %s | %s | %s | %s | %s |", row.label, cells[1], cells[2], cells[3],
      mr and string.format("%.2fx", mr) or "-", table.concat(each, " / ")))
    rows[#rows + 1] = rrow
  end
  doc.models[#doc.models + 1] = {name = m.name, macs = m.macs, macs_live = m.macs_live, rows = rows}
end
emit("")
emit("The runs' own tables: " .. table.concat((function()
  local t = {}
  for i, r in ipairs(runs) do t[i] = r .. "/table.md" end
  return t
end)(), ", "))

local text = table.concat(md, "\n") .. "\n"
io.write(text)
local f = assert(io.open(out .. "/table.md", "wb"))
f:write(text)
f:close()
f = assert(io.open(out .. "/table.json", "wb"))
f:write(qlab.json_encode(doc))
f:close()
