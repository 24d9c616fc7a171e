#!/usr/bin/python3
"""Same weights, same calibration images: qlab's static PTQ against PyTorch's.

Runs scripts/ptq_predictions.lua (qlab) and PyTorch 1.13's FX graph-mode PTQ
on one ResNet-18 .qlm file, calibrated on the same block of training images
(images I .. I+N-1 in file order, batches of 32), and compares every test
image's prediction (argmax):

  qlab default()    8-bit activations   vs  PyTorch 'onednn' default (8-bit)
  qlab fast_7bit()  7-bit (reduce_range) vs PyTorch 'x86' / 'fbgemm' default (7-bit), run on
                                          the 'x86' engine where the build has it, else on 'onednn'

Prints top-1 of both, the difference, and the share of images on which the
two INT8 models predict the same class; --json keeps everything.

    /usr/bin/python3 scripts/ptq_vs_torch.py [--model FILE.qlm] [--calib-start I] [--calib-n N]
                                             [--quick] [--json FILE] [--threads T]
A benchmark script: qlab's build and test suite never need Python.
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_vs_torch as bt  # noqa: E402  (file readers, the torchvision model, engine choice)

torch = bt.torch


def qlab_run(qlab_bin, model, qconfig, start, n, quick):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "q.json")
        cmd = [qlab_bin, "--json", out, "--script", "scripts/ptq_predictions.lua", "--model", model,
               "--qconfig", qconfig, "--calib-start", str(start), "--calib-n", str(n)] + (["--quick"] if quick else [])
        r = subprocess.run(cmd, cwd=bt.ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("qlab failed (exit %d): %s\n%s" % (r.returncode, " ".join(cmd), r.stderr))
        sys.stdout.write(r.stdout)
        with open(out) as f:
            return json.load(f)["qlab"]


def torch_ptq(model, mapping, engine, calib_x):
    """mapping: whose default qconfig mapping ('onednn' 8-bit, 'fbgemm' / 'x86' 7-bit); engine: the kernels."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = engine
    prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping(mapping), (calib_x[:1],))
    with torch.no_grad():
        for i in range(0, calib_x.shape[0], 32):
            prepared(calib_x[i:i + 32])
    return convert_fx(prepared)


def predictions(fn, x, batch=500):
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            out.append(fn(x[i:i + batch]).argmax(1))
    return torch.cat(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="data/models/resnet18_fmnist.qlm")
    ap.add_argument("--calib-start", type=int, default=1, help="first calibration image, 1-based (default 1)")
    ap.add_argument("--calib-n", type=int, default=3200, help="calibration images (default 3200 = 100 x 32)")
    ap.add_argument("--quick", action="store_true", help="the first 2,000 test images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--qlab", default=os.path.join(bt.ROOT, "qlab"))
    a = ap.parse_args()
    if a.calib_start < 1 or a.calib_n < 32:
        ap.error("--calib-start >= 1 and --calib-n >= 32")
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    supported = list(torch.backends.quantized.supported_engines)
    seven = "x86" if "x86" in supported else "onednn"
    pairs = [("default", "onednn", "onednn"), ("fast_7bit", "x86" if seven == "x86" else "fbgemm", seven)]

    model, _ = bt.build_resnet18(os.path.join(bt.ROOT, a.model))
    x_test, y_test = bt.fashion_mnist("test")
    if a.quick:
        x_test, y_test = x_test[:2000], y_test[:2000]
    x_train, _ = bt.fashion_mnist("train")
    calib = x_train[a.calib_start - 1:a.calib_start - 1 + a.calib_n].contiguous()
    n = x_test.shape[0]
    p_fp32 = predictions(model, x_test)
    top1_fp32 = 100.0 * float((p_fp32 == y_test).sum()) / n
    print("torch %s: FP32 top-1 %.2f %% on %d test images; engines %s" % (torch.__version__, top1_fp32, n, supported))

    rows = []
    for qc, mapping, engine in pairs:
        q = qlab_run(a.qlab, a.model, qc, a.calib_start, a.calib_n, a.quick)
        qi, qf = torch.tensor(q["pred_int8"]), torch.tensor(q["pred_fp32"])
        if len(qi) != n:
            sys.exit("qlab predicted %d images, PyTorch %d" % (len(qi), n))
        p = predictions(torch_ptq(model, mapping, engine, calib), x_test)
        top1_t = 100.0 * float((p == y_test).sum()) / n
        rows.append({"qlab_qconfig": qc, "torch_qconfig": mapping, "torch_engine": engine, "n": n, "isa": q["isa"],
                     "top1_fp32_qlab": q["top1_fp32"], "top1_fp32_torch": top1_fp32,
                     "fp32_pred_agree": 100.0 * float((qf == p_fp32).sum()) / n,
                     "top1_int8_qlab": q["top1_int8"], "top1_int8_torch": top1_t, "ties_qlab": q["ties"],
                     "int8_pred_agree": 100.0 * float((qi == p).sum()) / n,
                     "calib_start": a.calib_start, "calib_n": a.calib_n})

    print("\nsame weights (%s), same %d calibration images (%d..%d), %d test images, qlab kernels %s" % (
        a.model, a.calib_n, a.calib_start, a.calib_start + a.calib_n - 1, n, rows[0]["isa"]))
    print("%-22s %8s %8s %8s %8s %10s" % ("qlab vs PyTorch qconfig", "qlab", "torch", "diff", "agree %", "FP32 agree"))
    for r in rows:
        print("%-22s %8.2f %8.2f %+8.2f %8.2f %10.2f" % (
            "%s / %s" % (r["qlab_qconfig"], r["torch_qconfig"]), r["top1_int8_qlab"], r["top1_int8_torch"],
            r["top1_int8_qlab"] - r["top1_int8_torch"], r["int8_pred_agree"], r["fp32_pred_agree"]))
    print("FP32 top-1: qlab %.2f, PyTorch %.2f" % (rows[0]["top1_fp32_qlab"], top1_fp32))
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump({"ptq_vs_torch": rows}, f, indent=2)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
