-- The benchmark suite and the report: qlab.peak / qlab.machine / qlab.macs, qlab.bench on
-- small_cnn with few runs, failed variants, cancel; qlab.report's files, the JSON schema,
-- the SVG charts (xmllint when installed) and the recommendations on synthetic results.
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require "harness"
local qlab = require "qlab"
qlab.seed(0)

local test = qlab.data.fashion_mnist{split = "test"}
local val = test:subset(1, 200):loader{batch = 100}
local calib = test:subset(201, 264):loader{batch = 32}
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
  local want = ({scalar = 1, avx2 = 2, avx512 = 3})[qlab.machine().isa_best]
  assert(#p.levels == want, "levels " .. #p.levels)
  for i, l in ipairs(p.levels) do
    assert(l.isa == ({"scalar", "avx2", "avx512"})[i])
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

local suite
H.test("bench on small_cnn: every field, sane values", function()
  local seen = 0
  suite = qlab.bench{name = "small_cnn", data = val, quick = true, batch_sizes = {1, 4}, threads = {1, 2},
                     models = {{"fp32", fp32}, {"ptq", ptq(qlab.qconfig.default())},
                               {"broken", function() error("cannot build this one") end},
                               {"per_tensor", ptq(qlab.qconfig.per_tensor())}},
                     progress = function(done, total, label) seen = seen + 1; assert(done <= total) end}
  assert(seen > 0, "no progress reported")
  assert(suite.schema == "qlab.bench/1" and suite.gpu == "no GPU backend in this build")
  assert(#suite.variants == 4 and suite.variants[1].name == "fp32")
  local broken = suite.variants[3]
  assert(broken.status == "failed" and broken.error:find("cannot build this one", 1, true))
  local path = tmp .. "/v.qlm"
  for _, v in ipairs(suite.variants) do
    if v.status == "ok" then
      assert(#v.latency == 4, v.name .. ": " .. #v.latency .. " configurations")
      for _, l in ipairs(v.latency) do
        assert(l.median > 0 and l.min > 0 and l.min <= l.median, v.name)
        assert(l.p95 >= l.median and l.p99 >= l.p95 and l.max >= l.p99, v.name)
        assert(l.runs == suite.config.runs and l.images_per_s > 0 and l.gmacs > 0)
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

H.done()
