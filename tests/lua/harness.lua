-- Lua test harness: test(name, fn) runs fn in pcall and counts; done()
-- prints "N passed, N failed" and exits non-zero on any failure.
local H = {passed = 0, failed = 0}

function H.test(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    H.passed = H.passed + 1
    print("ok   " .. name)
  else
    H.failed = H.failed + 1
    print("FAIL " .. name .. "\n  " .. tostring(err):gsub("\n", "\n  "))
  end
end

-- Asserts that fn raises an error whose message contains `pattern` (plain text).
function H.raises(fn, pattern)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error containing '" .. pattern .. "'")
  assert(tostring(err):find(pattern, 1, true),
         "error '" .. tostring(err) .. "' does not contain '" .. pattern .. "'")
  return err
end

function H.near(a, b, tol, what)
  tol = tol or 1e-5
  assert(math.abs(a - b) <= tol * math.max(1, math.abs(b)),
         string.format("%s: %.8g vs %.8g (tol %g)", what or "value", a, b, tol))
end

-- largest |a[i] - b[i]| over two tensors of the same size
function H.maxdiff(a, b)
  local ta, tb, m = a:table(), b:table(), 0
  assert(#ta == #tb, "sizes differ")
  for i = 1, #ta do m = math.max(m, math.abs(ta[i] - tb[i])) end
  return m
end

function H.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. d))
  return d
end

function H.done()
  print(string.format("%d passed, %d failed", H.passed, H.failed))
  os.exit(H.failed == 0 and 0 or 1)
end

-- tests/lua on the path so test files can `require "harness"`
return H
