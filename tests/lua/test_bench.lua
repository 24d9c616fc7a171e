-- The benchmark suite and the report: qlab.peak / qlab.machine / qlab.macs, qlab.bench on
-- small_cnn with few runs, failed variants, cancel; qlab.report's files, the JSON schema,
-- the SVG charts (xmllint when installed) and the recommendations on synthetic results.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"
qlab.seed(0)

local test = qlab.data.fashion_mnist{split = "test"}
local val = test:subset(1, 200):loader{batch = 100}
local calib = test:subset(201, 64):loader{batch = 32}
local fp32 = qlab.load("data/models/small_cnn_fmnist.qlm")
local tmp = H.tmpdir()

local function file_size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

local function ptq(qc)
  return function()
    local m = fp32:clone()
    m:fuse()
    m:prepare(qc)
    qlab.calibrate(m, calib)
    m:convert()
    return m
  end
end

H.test("peak: a positive rate for every ISA level the CPU has, scalar first", function()
  local p = qlab.peak{target_ms = 2}
  local want = ({scalar = 1, avx2 = 2, avx512 = 3, amx = 4})[qlab.machine().isa_best]
  assert(#p.levels == want, "levels " .. #p.levels)
  for i, l in ipairs(p.levels) do
    assert(l.isa == ({"scalar", "avx2", "avx512", "amx"})[i])
    assert(l.fp32_gmacs > 0 and l.int8_gmacs > 0, l.isa)
  end
  assert(p.seconds < 1, "peak took " .. p.seconds .. " s")
  H.raises(function() qlab.peak{isa = "sse9"} end, "isa must be")
end)

H.test("machine record: CPU, ISA, threads, OpenBLAS and its environment", function()
  local m = qlab.machine()
  assert(#m.cpu_model > 0 and m.cores >= 1 and m.threads >= 1)
  assert(m.isa == qlab.cpu().isa)
  assert(m.openblas.config:find("OpenBLAS", 1, true) and #m.openblas.core > 0)
  assert(m.env.OPENBLAS_CORETYPE == (os.getenv("OPENBLAS_CORETYPE") or false))
  assert(m.lua_version:find("5.4", 1, true))
end)

H.test("macs: the same per image in FP32 and INT8, split by kind", function()
  local a, q = qlab.macs(fp32), qlab.macs(ptq(qlab.qconfig.default())())
  assert(a.total > 1e6 and a.total == q.total, a.total .. " vs " .. q.total)
  assert(a.f32 == a.total and q.int8 == q.total)
  assert(qlab.plan_bytes(fp32, 8) == 8 * qlab.plan_bytes(fp32, 1))
end)

H.test("macs: live taps only, as PyTorch's hooks count them (scripts/live_macs_torch.py)", function()
  -- counted by forward hooks on torchvision's models, apart from qlab's graph code
  local expect = {resnet18 = {33010944, 17864704}, mobilenet_v2 = {21750608, 21470496}}
  for name, e in pairs(expect) do
    local m = qlab.load("data/models/" .. name .. "_fmnist.qlm")
    local c = qlab.macs(m)
    assert(c.total == e[1] and c.live.total == e[2], name .. ": " .. c.total .. " / " .. c.live.total)
    assert(c.live.f32 == c.live.total and c.live.int8 == 0)
    local sum = 0
    for _, nd in ipairs(c.nodes) do
      assert(nd.live <= nd.macs, nd.name)
      sum = sum + nd.live
    end
    assert(sum == c.live.total)
    m:free()
  end
  local q = qlab.macs(ptq(qlab.qconfig.default())())
  assert(q.live.int8 == q.live.total and q.live.total == qlab.macs(fp32).live.total)
end)

local suite
H.test("bench on small_cnn: every field, sane values", function()
  local seen = 0
  suite = qlab.bench{name = "small_cnn", data = val, quick = true, batch_sizes = {1, 4}, threads = {1, 2},
                     models = {{"fp32", fp32}, {"ptq", ptq(qlab.qconfig.default())},
                               {"broken", function() error("cannot build this one") end},
                               {"per_tensor", ptq(qlab.qconfig.per_tensor())}},
                     skipped = {qat = "no QAT model for small_cnn"}, runs = {[1] = 6, [4] = 4},
                     progress = function(done, total, label) seen = seen + 1; assert(done <= total) end}
  assert(seen > 0, "no progress reported")
  assert(suite.schema == "qlab.bench/1" and suite.gpu == "no GPU backend in this build")
  assert(#suite.variants == 5 and suite.variants[1].name == "fp32")
  assert(suite.variants[5].status == "skipped" and suite.variants[5].reason:find("no QAT", 1, true))
  assert(suite.config.runs[1] == 6 and suite.config.runs[2] == 4)
  local broken = suite.variants[3]
  assert(broken.status == "failed" and broken.error:find("cannot build this one", 1, true))
  local path = tmp .. "/v.qlm"
  for _, v in ipairs(suite.variants) do
    if v.status == "ok" then
      assert(#v.latency == 4, v.name .. ": " .. #v.latency .. " configurations")
      for _, l in ipairs(v.latency) do
        local bi = l.batch == 1 and 1 or 2
        assert(l.median > 0 and l.min > 0 and l.min <= l.median, v.name)
        assert(l.p95 >= l.median and l.p99 >= l.p95 and l.max >= l.p99, v.name)
        assert(l.runs == suite.config.runs[bi] and l.images_per_s > 0 and l.gmacs > 0)
        assert(l.peak_fraction > 0 and l.peak_fraction < 1.5, v.name .. " fraction " .. l.peak_fraction)
        assert(l.speedup > 0 and l.spread_pct >= 0)
      end
      -- sizes equal to the files'
      local m = v.name == "fp32" and fp32 or ptq(v.name == "ptq" and qlab.qconfig.default() or qlab.qconfig.per_tensor())()
      m:save(path)
      assert(v.size.file_bytes == file_size(path), v.name .. " file size")
      assert(v.size.bytes == m:size_bytes())
      assert(v.macs.per_image == qlab.macs(m).total)
      for _, mem in ipairs(v.memory) do
        assert(mem.weights_bytes == v.size.bytes and mem.plan_bytes > 0, v.name)
        assert(mem.alloc_peak_bytes >= mem.plan_bytes, v.name .. " allocator peak below the plan")
        assert(mem.resident_bytes > 0 and mem.rss_growth_bytes >= 0)
      end
      assert(#v.breakdown == 2 and #v.breakdown[1].nodes > 0 and #v.breakdown[1].ops > 0)
      local share = 0
      for _, o in ipairs(v.breakdown[1].ops) do share = share + o.share end
      H.near(share, 1, 1e-6, "op shares")
      local a = v.accuracy
      assert(a.n == 200 and a.top1 > 50 and a.agree > 80 and a.ties >= 0, v.name)
    end
  end
  assert(suite.variants[1].accuracy.agree == 100 and suite.variants[1].latency[1].speedup == 1)
  assert(suite.variants[2].size.reduction > 3)
end)

H.test("bench: cancel through the progress callback", function()
  H.raises(function()
    qlab.bench{models = {fp32 = fp32}, quick = true, progress = function(done) return done >= 2 end}
  end, "cancelled")
end)

H.test("bench: a variant that fails to run is reported, not fatal", function()
  local r = qlab.bench{models = {fp32 = fp32, gone = function() local m = fp32:clone(); m:free(); return m end},
                       quick = true, quiet = true, batch_sizes = {1}}
  local gone = r.variants[2]
  assert(gone.name == "gone" and gone.status == "failed" and gone.error:find("freed", 1, true), tostring(gone.error))
  assert(r.variants[1].status == "ok" and #r.variants[1].latency == 1)
end)


-- report --------------------------------------------------------------------------------------
local report = require "qlab.report"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local have_xmllint = os.execute("command -v xmllint >/dev/null 2>&1")
local function xml_ok(path)
  return os.execute("xmllint --noout '" .. path .. "' 2>/dev/null")
end

local rep
H.test("report: report.md, results.json, report.html and the charts", function()
  assert(suite, "needs the bench test")
  rep = qlab.report(suite, {dir = tmp .. "/report", title = "small_cnn test",
                            sensitivity = {{name = "conv1", drop = 0.9}, {name = "fc2", drop = 0.1}}})
  for _, f in ipairs(rep.files) do assert(#read(f) > 100, f) end
  local md, html = read(tmp .. "/report/report.md"), read(tmp .. "/report/report.html")
  for _, text in ipairs{md, html} do
    assert(text:find("cannot build this one", 1, true), "the failed variant and its error")
    assert(text:find("skipped: no QAT model for small_cnn", 1, true), "the skipped variant and its reason")
    assert(text:find("no GPU backend in this build", 1, true))
    assert(text:find("Recommendations", 1, true))
  end
  -- self-contained: no scripts, no external resources (the SVG namespace is a name, not a fetch)
  assert(not html:find("<script", 1, true) and not html:find("src=", 1, true) and not html:find("href=", 1, true))
  local _, nsvg = html:gsub("<svg ", "")
  assert(nsvg == 5, nsvg .. " charts inline")
end)

H.test("report: results.json validates against its documented schema", function()
  local doc = assert(qlab.json_decode(read(tmp .. "/report/results.json")))
  assert(doc.schema == "qlab.report/1")
  assert(report.validate(doc, report.schema))
  assert(#doc.suites == 1 and #doc.suites[1].variants == 5 and #doc.recommendations >= 3)
  -- the validator is not vacuous
  local v = doc.suites[1].variants[1]
  local saved = v.latency
  v.latency = nil
  local ok, err = report.validate(doc, report.schema)
  assert(not ok and err:find("latency", 1, true), tostring(err))
  v.latency, v.status = saved, "maybe"
  ok, err = report.validate(doc, report.schema)
  assert(not ok and err:find("status", 1, true), tostring(err))
  v.status = "ok"
  v.latency[1].p99 = "slow"
  assert(not report.validate(doc, report.schema))
  -- every field of the schema is documented in docs/report.md
  local text = read("docs/report.md")
  local missing = {}
  local function walk(s)
    for k, sub in pairs(s.properties or {}) do
      if not text:find("`" .. k .. "`", 1, true) then missing[#missing + 1] = k end
      walk(sub)
    end
    if s.items then walk(s.items) end
  end
  walk(report.schema)
  assert(#missing == 0, "not in docs/report.md: " .. table.concat(missing, ", "))
end)

H.test("report: the SVGs parse as XML and hold the expected series", function()
  local dir = tmp .. "/report/"
  local want = {pareto = {"fp32", "ptq", "per_tensor", "pareto front"}, size = {"fp32", "ptq", "per_tensor"},
                breakdown = {"fp32", "ptq", 'data-key="conv"', 'data-key="pool"'},
                memory = {"fp32", "ptq", 'data-key="weights"', 'data-key="allocator peak"', 'data-key="planned activations"'},
                sensitivity = {"conv1", "fc2"}}
  for id, series in pairs(want) do
    local path = dir .. "small_cnn_" .. id .. ".svg"
    local s = read(path)
    for _, name in ipairs(series) do
      local pat = name:find("=", 1, true) and name or ('data-series="' .. name .. '"')
      assert(s:find(pat, 1, true), id .. ": no series " .. name)
    end
    assert(not s:find('data-series="broken"', 1, true) and not s:find('data-series="qat"', 1, true),
           id .. ": a failed or skipped variant is charted")
    if have_xmllint then assert(xml_ok(path), path .. " is not well-formed XML") end
  end
  if have_xmllint then   -- the charts inline in the HTML too
    local html = read(dir .. "report.html")
    local i = 0
    for s in html:gmatch("<svg .-</svg>") do
      i = i + 1
      local p = dir .. "inline" .. i .. ".svg"
      local f = assert(io.open(p, "w")); f:write(s); f:close()
      assert(xml_ok(p), "inline chart " .. i)
    end
    assert(i == 5)
  else
    print("skip xmllint: not installed (scripts/setup.sh installs libxml2-utils)")
  end
end)

-- synthetic suites: the recommendations follow the numbers
local function synthetic(p)
  local function variant(name, kind, median, top1, bytes, tput)
    return {name = name, kind = kind, status = "ok", gpu = "-",
            accuracy = {top1 = top1, n = 1000, ties = 0, drop = 90 - top1, agree = 99},
            size = {bytes = bytes, file_bytes = bytes + 100, params = 1000, reduction = 400 / bytes},
            macs = {per_image = 1000, f32 = 0, int8 = 1000}, memory = {}, breakdown = {},
            latency = {{batch = 1, threads = 1, runs = 10, median = median, p95 = median, p99 = median, min = median,
                        max = median, mean = median, stddev = 0, spread_pct = 0, images_per_s = 1e3 / median,
                        gmacs = 1, peak_fraction = 0.5, speedup = p.fp32 / median},
                       {batch = 64, threads = 2, runs = 10, median = 64e3 / tput, p95 = 1, p99 = 1, min = 1, max = 1,
                        mean = 1, stddev = 0, spread_pct = 0, images_per_s = tput, gmacs = 1, peak_fraction = 0.5,
                        speedup = tput / p.fp32_tput}}}
  end
  return {schema = "qlab.bench/1", name = "synthetic", reference = "fp32", gpu = "-", machine = qlab.machine(),
          peak = {levels = {{isa = "scalar", fp32_gmacs = 1, int8_gmacs = 1, seconds = 0}},
                  basis = {int8 = {isa = "scalar", gmacs = 1}, f32 = {isa = "scalar", gmacs = 1}}},
          config = {batch_sizes = {1, 64}, threads = {1, 2}, runs = {10, 10}, rounds = 2, warmup = 1, quick = true},
          variants = {variant("fp32", "fp32", p.fp32, 90, 400, p.fp32_tput),
                      variant("ptq", "static", p.ptq, p.ptq_top1, 100, p.ptq_tput),
                      variant("per_tensor", "static_per_tensor", p.pt, p.pt_top1, 100, p.ptq_tput),
                      variant("dyn", "dynamic", p.dyn, p.dyn_top1, 300, p.dyn_tput),
                      variant("w4a8", "w4a8", p.w4, p.w4_top1, 60, p.ptq_tput)}}
end

local function rec(recs, id)
  for _, r in ipairs(recs) do if r.id == id then return r end end
end

H.test("report: recommendations change when the numbers change", function()
  local base = {fp32 = 2.0, fp32_tput = 1000, ptq = 1.0, ptq_top1 = 89.8, ptq_tput = 3000, pt = 1.0, pt_top1 = 89.7,
                dyn = 1.8, dyn_top1 = 89.9, dyn_tput = 1100, w4 = 0.9, w4_top1 = 85, w4_tput = 3000}
  local function with(changes)
    local p = {}
    for k, v in pairs(base) do p[k] = v end
    for k, v in pairs(changes) do p[k] = v end
    return report.recommend({synthetic(p)}, {})
  end
  local r = with{}
  -- w4a8 is fastest and smallest but loses 5 points: not recommended within 1 point
  assert(rec(r, "latency").variant == "ptq", rec(r, "latency").text)
  assert(rec(r, "latency").text:find("1.000 ms", 1, true) and rec(r, "latency").text:find("2.00x", 1, true))
  assert(rec(r, "size").variant == "ptq" and rec(r, "throughput").variant == "ptq")
  assert(rec(r, "dynamic_vs_static").variant == "ptq" and rec(r, "dynamic_vs_static").text:find("static beats dynamic", 1, true))
  assert(rec(r, "per_tensor").variant == "per_tensor" and rec(r, "per_tensor").text:find("enough", 1, true))
  assert(rec(r, "keep_higher") == nil, "no sensitivity given")
  -- w4a8 accurate enough now: it wins latency and size
  r = with{w4_top1 = 89.5}
  assert(rec(r, "latency").variant == "w4a8" and rec(r, "size").variant == "w4a8")
  -- dynamic faster at batch 1 and as accurate: dynamic beats static
  r = with{dyn = 0.5}
  assert(rec(r, "latency").variant == "dyn")
  assert(rec(r, "dynamic_vs_static").variant == "dyn" and rec(r, "dynamic_vs_static").text:find("dynamic beats static", 1, true))
  -- per-tensor loses accuracy: keep per-channel
  r = with{pt_top1 = 88.0}
  assert(rec(r, "per_tensor").variant == "ptq" and rec(r, "per_tensor").text:find("Keep per-channel", 1, true))
  -- throughput follows images/s
  r = with{dyn_tput = 5000}
  assert(rec(r, "throughput").variant == "dyn")
  -- sensitivity names the layers to keep
  r = report.recommend({synthetic(base)}, {sensitivity = {synthetic = {{name = "layer4.1.conv2", drop = 1.2},
                                                                       {name = "fc", drop = 0.4}}}})
  assert(rec(r, "keep_higher").text:find("layer4.1.conv2 (1.20 points)", 1, true))
  -- and the synthetic suite makes a valid report
  local out = qlab.report(synthetic(base), {dir = tmp .. "/synthetic"})
  assert(report.validate(qlab.json_decode(read(tmp .. "/synthetic/results.json")), report.schema))
  assert(#out.recommendations == 5)
end)

H.test("report: the lab's expectations judged against our figures", function()
  assert(report.verdict("< 1", 0.4) == " ok" and report.verdict("< 1", 1.2) == " MISSED")
  assert(report.verdict(">= 1.5x", 1.5) == " ok" and report.verdict("> 1x at batch 1", 0.93) == " MISSED")
  assert(report.verdict("not stated", 3) == "" and report.verdict("< 0.5", nil) == "")
  assert(report.op_family("qconv2d") == "conv" and report.op_family("dlstm") == "lstm" and report.op_family("x") == "other")
end)

H.test("report: a suite where everything failed still reports", function()
  local s = synthetic{fp32 = 1, fp32_tput = 1, ptq = 1, ptq_top1 = 1, ptq_tput = 1, pt = 1, pt_top1 = 1, dyn = 1,
                      dyn_top1 = 1, dyn_tput = 1, w4 = 1, w4_top1 = 1}
  s.variants = {{name = "fp32", kind = "fp32", status = "failed", error = "out of memory", gpu = "-"}}
  local out = qlab.report(s, {dir = tmp .. "/failed"})
  assert(read(tmp .. "/failed/report.html"):find("out of memory", 1, true))
  assert(#out.recommendations == 0)
  H.raises(function() qlab.report({schema = "nope"}, {dir = tmp .. "/x"}) end, "not a qlab.bench result")
end)

H.done()
