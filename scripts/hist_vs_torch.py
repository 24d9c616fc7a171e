#!/usr/bin/python3
"""qlab's histogram observer against PyTorch's HistogramObserver on random
multi-batch sequences (a cross-check for src/quant/observer_hist.c, beyond the
committed fixtures): every histogram count, min and max bit for bit, and the
scale / zero point, after every batch.

    /usr/bin/python3 scripts/hist_vs_torch.py [--seqs 150] [--qlab ./qlab]

Batches mix normal, ReLU-like, ReLU6-like (runs of one value), shifted and
outlier-laden data, 50 to 200,000 values (past qlab's parallel threshold), so
ranges grow at one end, both or neither. torch 1.13 counts over
histc(min=int(min_val), max=int(max_val)); the int() is removed here, as in the
fixtures, to give the counting qlab does by default (torch >= 2.0's). Needs
Debian's python3-torch; exits 1 on any difference.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile

import torch
from torch.ao.quantization.observer import HistogramObserver

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("fx", os.path.join(HERE, "fixtures", "make_observer_fixtures.py"))
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)

LUA = r'''
local qlab = require "qlab"
local t, meta = qlab.read_tensors(arg[1])
local nseq = tonumber(meta.seqs)
local bad_hist, bad_q, checks = 0, 0, 0
for s = 1, nseq do
  local o = qlab.observer.histogram{bins = 2048}
  local k = 1
  while t[string.format("s%d.b%d.x", s, k)] do
    local p = string.format("s%d.b%d.", s, k)
    o:observe(t[p .. "x"])
    local counts, lo, hi = o:histogram()
    local ref, d = t[p .. "hist"], 0
    for j = 1, #ref do if counts[j] ~= ref[j] then d = d + 1 end end
    local mn, mx = lo, hi     -- the histogram's range: torch's min_val / max_val
    if d > 0 or mn ~= t[p .. "min"][1] or mx ~= t[p .. "max"][1] then
      bad_hist = bad_hist + 1
      print(string.format("seq %d batch %d: %d bins differ; min %.9g vs %.9g, max %.9g vs %.9g",
        s, k, d, mn, t[p .. "min"][1], mx, t[p .. "max"][1]))
    end
    local sc, zp = o:qparams()
    if sc ~= t[p .. "scale"][1] or zp ~= t[p .. "zp"][1] then
      bad_q = bad_q + 1
      print(string.format("seq %d batch %d: scale %.9g vs %.9g, zero point %d vs %d",
        s, k, sc, t[p .. "scale"][1], zp, t[p .. "zp"][1]))
    end
    checks = checks + 1
    k = k + 1
  end
end
print(string.format("%d sequences, %d observations: histogram / range differ in %d, scale / zero point in %d",
  nseq, checks, bad_hist, bad_q))
os.exit(bad_hist + bad_q == 0 and 0 or 1)
'''


def batch(g):
    n = int(torch.randint(50, 200001, (1,), generator=g))
    kind = int(torch.randint(0, 5, (1,), generator=g))
    s = float(torch.rand(1, generator=g)) * 4 + 0.05
    o = float(torch.randn(1, generator=g)) * 2
    x = torch.randn(n, generator=g) * s + o
    if kind == 1:
        x = torch.relu(x)
    elif kind == 2:
        x = torch.clamp(x, 0, 6 * s)
    elif kind == 3:
        x[:: max(1, n // 7)] *= 8
    elif kind == 4:
        x = -torch.log(torch.rand(n, generator=g)) * s + o
    return x.float().contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqs", type=int, default=150)
    ap.add_argument("--qlab", default=os.path.join(HERE, "..", "qlab"))
    a = ap.parse_args()
    g = torch.Generator().manual_seed(20261204)
    tensors = []
    with fx.histc_without_int_cast():
        for s in range(1, a.seqs + 1):
            obs = HistogramObserver(bins=2048, dtype=torch.quint8, qscheme=torch.per_tensor_affine)
            for k in range(1, int(torch.randint(2, 9, (1,), generator=g)) + 1):
                x = batch(g)
                obs(x)
                sc, zp = obs.calculate_qparams()
                p = "s%d.b%d." % (s, k)
                tensors += [(p + "x", x), (p + "hist", obs.histogram.float().clone()),
                            (p + "min", obs.min_val.clone().reshape(1)), (p + "max", obs.max_val.clone().reshape(1)),
                            (p + "scale", sc.float().reshape(1)), (p + "zp", zp.int().reshape(1))]
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "seqs.safetensors")
        fx.write_safetensors(f, tensors, {"seqs": str(a.seqs)})
        lua = os.path.join(d, "check.lua")
        with open(lua, "w") as fh:
            fh.write(LUA)
        r = subprocess.run([a.qlab, "--script", lua, f])
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
