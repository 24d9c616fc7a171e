-- The QAT pane (key Q, and by itself while wb.qat trains): the training
-- loss of every batch as a curve (a column per batch, or the mean of a
-- group of batches when there are more than columns; half-cell resolution),
-- redrawn as qlab.train's on_batch reports, with each epoch's numbers.
local M = {}

function M:draw(app, r)
  local tui, g, S = app.tui, app.g, app.S
  local q = S.qat
  local x = tui.text(r.y, r.x, " quantization-aware training ", "title_focus")
  local info = q and string.format("%s, %d/%d batches%s", q.level, #q.losses, q.total, q.running and " (running)" or "")
               or ""
  tui.text(r.y, r.x + x, " " .. info .. "  " .. g.dot .. " a trains (1 epoch of 100 batches)  e evaluates  Q back", "dim",
           r.w - x)
  if not q or #q.losses == 0 then
    tui.text(r.y + 2, r.x + 2, q and "the first batches ..." or
             "no training yet: a trains the FP32 model with fake quantization (the map's default level), then converts",
             "warn", r.w - 4)
    return
  end
  local tw = 34
  local lw = 8
  local cw = r.w - tw - lw - 2
  local ch = r.h - 3
  -- columns: the mean loss of the batches each one covers
  local n = #q.losses
  local cols = math.min(cw, math.max(n, 1))
  local vals, lo, hi = {}, math.huge, -math.huge
  for i = 1, cols do
    local a = math.floor((i - 1) * n / cols) + 1
    local b = math.max(a, math.floor(i * n / cols))
    local sum = 0
    for k = a, b do sum = sum + q.losses[k] end
    vals[i] = sum / (b - a + 1)
    lo, hi = math.min(lo, vals[i]), math.max(hi, vals[i])
  end
  if hi - lo < 1e-9 then hi = lo + 1e-9 end
  tui.text(r.y + 1, r.x, string.format("%7.4f", hi), "dim", lw)
  tui.text(r.y + ch, r.x, string.format("%7.4f", lo), "dim", lw)
  for k = 1, ch do tui.text(r.y + k, r.x + lw - 1, g.v, "frame") end
  local u = g.bar == "█"
  for i, v in ipairs(vals) do
    local h2 = math.floor((v - lo) / (hi - lo) * (2 * ch - 1) + 0.5)   -- half rows from the bottom
    local row = ch - 1 - h2 // 2
    local c = u and (h2 % 2 == 1 and "▀" or "▄") or "*"
    tui.text(r.y + 1 + row, r.x + lw + i - 1, c, "ok", 1)
  end
  local per = n / cols
  tui.text(r.y + ch + 1, r.x + lw, string.format("loss per batch%s; batch 1 .. %d", per > 1.01 and
           string.format(" (mean of %.1f per column)", per) or "", n), "dim", cw)
  -- the epochs
  local tx = r.x + r.w - tw
  for k = 1, r.h - 1 do tui.text(r.y + k, tx - 1, g.v, "frame") end
  tui.text(r.y + 1, tx, string.format("%-5s %8s %7s %9s", "epoch", "loss", "train%", "s"), "header", tw)
  for i, e in ipairs(q.epochs) do
    if r.y + 1 + i >= r.y + r.h then break end
    tui.text(r.y + 1 + i, tx, string.format("%-5d %8.4f %7.2f %9.1f", e.epoch, e.loss, e.acc, e.seconds), "normal", tw)
  end
  local y = r.y + 2 + #q.epochs
  tui.text(y, tx, string.format("first %.4f, last %.4f", q.losses[1], q.losses[n]), "normal", tw)
  if q.last_lr then tui.text(y + 1, tx, string.format("lr %.3g (cosine)", q.last_lr), "dim", tw) end
  if not q.running then tui.text(y + 2, tx, "m is the converted QAT model", "ok", tw) end
end

return M
