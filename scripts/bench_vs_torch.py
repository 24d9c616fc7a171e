#!/usr/bin/python3
"""PyTorch side of the qlab-vs-PyTorch benchmark (a benchmark script only:
nothing in qlab's build or test suite needs Python).

Loads a qlab .qlm file (safetensors, PyTorch state_dict names and layouts) into
torchvision's ResNet-18 (1-channel conv1, 10 classes) or, with --arch mobilenet_v2,
torchvision's MobileNetV2 (1-channel stride-1 stem conv, 10 classes, no dropout:
qlab's topology) and measures, on the same machine and in the same shape as
scripts/bench_ptq.lua / scripts/bench_peers.lua:

  FP32  TorchScript traced, frozen, optimize_for_inference
  INT8  static PTQ, FX graph mode (prepare_fx / convert_fx), calibrated on
        100 batches of 32 shuffled training images (--calib-batches), TorchScript frozen

accuracy on the Fashion-MNIST test set, calibration time, model size,
batch-1 latency (median / p95) and batch-64 throughput at 1 and 2 threads;
with --train also a training step at batch 128 (SGD momentum 0.9, cross-entropy)
at the largest thread count, FP32 eager and QAT (FX prepare_qat_fx), images/s.

Run it with Debian's interpreter, which has python3-torch / python3-torchvision:

  /usr/bin/python3 scripts/bench_vs_torch.py [--model PATH] [--arch resnet18|mobilenet_v2]
                   [--quick] [--threads 1,2] [--train] [--calib-batches N]
                   [--json FILE] [--check]

--check runs ./qlab on the first 4 test images and verifies that PyTorch's FP32
logits match qlab's to 1e-4 (proof that the weights map correctly).
"""
import argparse
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST_DIR = "/usr/share/datasets/fashion-mnist"

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torchvision
except ImportError as e:  # pragma: no cover - environment problem, not a bug
    sys.exit("bench_vs_torch.py: %s\nPyTorch is not installed for %s; run this script with "
             "/usr/bin/python3, and on Debian: apt-get install python3-torch python3-torchvision"
             % (e, sys.executable))


# --------------------------------------------------------------------------- files

_ST_DTYPES = {
    "F32": np.float32, "F64": np.float64, "F16": np.float16,
    "I8": np.int8, "U8": np.uint8, "I16": np.int16, "I32": np.int32, "I64": np.int64,
    "BOOL": np.bool_,
}


def read_safetensors(path):
    """Minimal safetensors reader: {name: torch.Tensor}, metadata dict."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("%s: header length %d past end of file" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    body = memoryview(raw)[8 + n:]
    tensors = {}
    for name, info in header.items():
        dt = info["dtype"]
        if dt == "BF16":
            begin, end = info["data_offsets"]
            a = np.frombuffer(body[begin:end], dtype=np.uint16).astype(np.uint32) << 16
            arr = a.view(np.float32).reshape(info["shape"])
        else:
            if dt not in _ST_DTYPES:
                raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, dt))
            begin, end = info["data_offsets"]
            arr = np.frombuffer(body[begin:end], dtype=_ST_DTYPES[dt]).reshape(info["shape"])
        tensors[name] = torch.from_numpy(arr.copy())
    return tensors, meta


def read_idx_gz(path):
    """IDX file (gzip'd or not) -> numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(split):
    """(images float32 NCHW (N,1,28,28) in [0,1], labels int64) as torch tensors."""
    prefix = "train" if split == "train" else "t10k"
    for ext in (".gz", ""):
        ip = os.path.join(MNIST_DIR, "%s-images-idx3-ubyte%s" % (prefix, ext))
        lp = os.path.join(MNIST_DIR, "%s-labels-idx1-ubyte%s" % (prefix, ext))
        if os.path.exists(ip) and os.path.exists(lp):
            break
    else:
        sys.exit("Fashion-MNIST not found in %s (apt-get install dataset-fashion-mnist)" % MNIST_DIR)
    x = torch.from_numpy(read_idx_gz(ip).astype(np.float32) / 255.0).unsqueeze(1).contiguous()
    y = torch.from_numpy(read_idx_gz(lp).astype(np.int64))
    return x, y


# --------------------------------------------------------------------------- model

def build_resnet18(path):
    tensors, meta = read_safetensors(path)
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    sd = m.state_dict()
    # num_batches_tracked buffers are not in qlab's files; keep the model's own.
    for k, v in sd.items():
        if k.endswith("num_batches_tracked") and k not in tensors:
            tensors[k] = v.clone()
    m.load_state_dict(tensors, strict=True)
    m.eval()
    return m, meta


def build_mobilenet_v2(path):
    """torchvision's MobileNetV2 as lua/qlab/models/mobilenet_v2.lua builds it: 28x28x1 input
    with a stride-1 stem, 10 classes; the classifier's dropout is left out (qlab has none)."""
    tensors, meta = read_safetensors(path)
    m = torchvision.models.mobilenet_v2(num_classes=10)
    m.features[0][0] = nn.Conv2d(1, 32, 3, 1, 1, bias=False)
    m.classifier[0] = nn.Identity()
    sd = m.state_dict()
    for k, v in sd.items():
        if k.endswith("num_batches_tracked") and k not in tensors:
            tensors[k] = v.clone()
    m.load_state_dict(tensors, strict=True)
    m.eval()
    return m, meta


BUILDERS = {"resnet18": build_resnet18, "mobilenet_v2": build_mobilenet_v2}


def file_size_of(model):
    """Size of the serialized state_dict (the usual PyTorch 'model size')."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


# --------------------------------------------------------------------------- measurements

def evaluate(fn, x, y, batch=500):
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            out = fn(x[i:i + batch])
            correct += int((out.argmax(1) == y[i:i + batch]).sum())
    return 100.0 * correct / x.shape[0]


def time_forward(fn, x, runs, warmup):
    """Same statistics as qlab's ql_time_forward: median, p95 (nearest rank), mean."""
    ms = []
    with torch.no_grad():
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            fn(x)
            if i >= warmup:
                ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    n = len(ms)
    median = ms[n // 2] if n % 2 else 0.5 * (ms[n // 2 - 1] + ms[n // 2])
    p95 = ms[int(0.95 * (n - 1) + 0.5)]
    return {"median": median, "p95": p95, "mean": sum(ms) / n, "min": ms[0], "runs": n,
            "batch": x.shape[0], "images_per_s": x.shape[0] * 1e3 / median if median > 0 else 0.0}


def train_rate(model, x, y, steps):
    """images/s of model.train() steps (forward, cross-entropy, backward, SGD momentum 0.9)."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    step()   # warm-up: gradients, optimizer state, oneDNN primitives
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return x.shape[0] * steps / (time.perf_counter() - t0)


def measure_training(model, engine, x, y, steps, threads):
    """FP32 and QAT (prepare_qat_fx with the engine's default QAT qconfig) training steps; a crash
    inside PyTorch is recorded as the result."""
    import copy
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_qat_fx
    torch.set_num_threads(threads)
    res = {"threads": threads, "batch": x.shape[0], "steps": steps}
    for name in ("fp32", "qat"):
        try:
            if os.environ.get("QLAB_TORCH_FAIL") == "train_%s" % name:
                raise RuntimeError("simulated failure (QLAB_TORCH_FAIL=train_%s)" % name)
            m = copy.deepcopy(model).train()
            if name == "qat":
                torch.backends.quantized.engine = engine
                m = prepare_qat_fx(m, get_default_qat_qconfig_mapping(engine), (x[:1],))
            res[name + "_images_per_s"] = train_rate(m, x, y, steps)
            print("training step b%d, %d threads, %s: %.0f img/s" % (x.shape[0], threads, name.upper(),
                                                                    res[name + "_images_per_s"]), flush=True)
        except Exception as e:
            msg = "PyTorch crashed: %s" % (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            res[name + "_error"] = msg
            print("training step %s: %s" % (name.upper(), msg), flush=True)
    return res


def pick_engine():
    """First of x86 / fbgemm / onednn / qnnpack that this torch build supports."""
    supported = list(torch.backends.quantized.supported_engines)
    for e in ("x86", "fbgemm", "onednn", "qnnpack"):
        if e in supported:
            return e, supported
    sys.exit("no quantized engine in this torch build (supported: %s)" % supported)


def quantize_fx(model, engine, calib_x):
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = engine
    qmap = get_default_qconfig_mapping(engine)
    example = (calib_x[:1],)
    prepared = prepare_fx(model, qmap, example)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, calib_x.shape[0], 32):
            prepared(calib_x[i:i + 32])
    calib_s = time.perf_counter() - t0
    return convert_fx(prepared), calib_s


def script_frozen(model, example, optimize):
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
        frozen = torch.jit.freeze(traced.eval())
        if optimize:
            frozen = torch.jit.optimize_for_inference(frozen)
    return frozen


# --------------------------------------------------------------------------- check against qlab

CHECK_LUA = r"""
local q = require "qlab"
local m = q.load(os.getenv("QLAB_CHECK_MODEL"))
local x = q.data.fashion_mnist{split = "test"}:subset(1, 4):loader{batch = 4}:next()
local o = m:forward(x)
local function dump(tag, t) local s = {} for i = 1, #t do s[i] = string.format("%.9g", t[i]) end print(tag .. " " .. table.concat(s, " ")) end
dump("SHAPE", o:shape())
dump("LOGITS", o:table())
dump("INPUT", x:table())
"""


def check_against_qlab(model, frozen, path, x_test, qlab_bin):
    if not os.access(qlab_bin, os.X_OK):
        sys.exit("--check: %s is not an executable (build it with make)" % qlab_bin)
    env = dict(os.environ, QLAB_CHECK_MODEL=os.path.abspath(path))
    r = subprocess.run([qlab_bin, "-e", CHECK_LUA], cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("--check: qlab failed (exit %d):\n%s" % (r.returncode, r.stderr))
    got = {}
    for line in r.stdout.splitlines():
        tag, _, rest = line.partition(" ")
        if tag in ("SHAPE", "LOGITS", "INPUT"):
            got[tag] = [float(v) for v in rest.split()]
    q_logits = torch.tensor(got["LOGITS"], dtype=torch.float64).reshape([int(v) for v in got["SHAPE"]])
    q_input = torch.tensor(got["INPUT"], dtype=torch.float64).reshape(4, 1, 28, 28)  # NHWC with C=1
    x = x_test[:4]
    with torch.no_grad():
        eager = model(x).double()
        fz = frozen(x).double()
    res = {
        "images": 4,
        "input_max_abs_diff": float((q_input - x.double()).abs().max()),
        "logits_max_abs_diff_eager": float((q_logits - eager).abs().max()),
        "logits_max_abs_diff_frozen": float((q_logits - fz).abs().max()),
        "logits_max_abs": float(q_logits.abs().max()),
        "argmax_equal": bool((q_logits.argmax(1) == eager.argmax(1)).all()),
    }
    res["ok"] = (res["input_max_abs_diff"] < 1e-6 and res["logits_max_abs_diff_eager"] <= 1e-4
                 and res["logits_max_abs_diff_frozen"] <= 1e-4)
    return res


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None,
                    help="qlab .qlm file holding the --arch model (default: data/models/ARCH_fmnist.qlm)")
    ap.add_argument("--arch", default="resnet18", choices=sorted(BUILDERS),
                    help="torchvision topology the weights are loaded into (default: %(default)s)")
    ap.add_argument("--train", action="store_true",
                    help="also time a training step at batch 128 (FP32 and QAT) at the largest thread count")
    ap.add_argument("--calib-batches", type=int, default=None,
                    help="calibration batches of 32 images (default 100)")
    ap.add_argument("--quick", action="store_true",
                    help="2,000 test images, 50 batch-1 runs, 5 batch-64 runs")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default: 1,2)")
    ap.add_argument("--json", metavar="FILE", help="write all figures as JSON")
    ap.add_argument("--check", action="store_true",
                    help="compare FP32 logits with ./qlab's on 4 test images (to 1e-4); exit 1 if they differ")
    ap.add_argument("--qlab", default=os.path.join(ROOT, "qlab"), help="qlab binary for --check")
    args = ap.parse_args()
    if args.model is None:
        args.model = os.path.join(ROOT, "data/models/%s_fmnist.qlm" % args.arch)
    calib_batches = args.calib_batches or 100
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    if not threads or min(threads) < 1:
        ap.error("--threads wants positive integers, e.g. 1,2")
    if not os.path.exists(args.model):
        sys.exit("model file %s not found (train it: ./qlab --script scripts/train_baselines.lua %s)"
                 % (args.model, args.arch))

    torch.manual_seed(0)
    torch.set_num_interop_threads(1)
    work_threads = max(threads)
    torch.set_num_threads(work_threads)
    engine, supported = pick_engine()
    print("torch %s, torchvision %s; quantized engines %s -> using %s%s" % (
        torch.__version__, torchvision.__version__, supported, engine,
        "" if engine == "x86" else " (no 'x86' engine in this build)"), flush=True)

    model, _ = BUILDERS[args.arch](args.model)
    x_test, y_test = fashion_mnist("test")
    n_test = 2000 if args.quick else x_test.shape[0]
    x_eval, y_eval = x_test[:n_test], y_test[:n_test]
    x_train, _ = fashion_mnist("train")
    gen = torch.Generator().manual_seed(1)
    calib_x = x_train[torch.randperm(x_train.shape[0], generator=gen)[:calib_batches * 32]].contiguous()

    example = x_test[:1]
    fp32 = script_frozen(model, example, optimize=True)

    check = None
    if args.check:
        check = check_against_qlab(model, fp32, args.model, x_test, args.qlab)
        print("check vs qlab (4 test images): input diff %.2g, logits max |diff| eager %.3g, frozen %.3g "
              "(max |logit| %.3g) -> %s" % (check["input_max_abs_diff"], check["logits_max_abs_diff_eager"],
                                           check["logits_max_abs_diff_frozen"], check["logits_max_abs"],
                                           "OK" if check["ok"] else "MISMATCH"), flush=True)
        if not check["ok"]:
            sys.exit("check: PyTorch's FP32 logits differ from qlab's by more than 1e-4 "
                     "(or the inputs differ): the weights do not map as expected")

    import copy
    q_eager, calib_s = quantize_fx(copy.deepcopy(model), engine, calib_x)
    int8 = script_frozen(q_eager, example, optimize=False)

    # the frozen graphs must still agree with their eager modules at batch 64
    with torch.no_grad():
        xb = x_test[:64]
        d_fp32 = float((fp32(xb) - model(xb)).abs().max())
        d_int8 = float((int8(xb) - q_eager(xb)).abs().max())

    acc_fp32 = evaluate(fp32, x_eval, y_eval)
    acc_int8 = evaluate(int8, x_eval, y_eval)
    size_fp32, size_int8 = file_size_of(model), file_size_of(q_eager)
    print("%s: top-1 FP32 %.2f %%, INT8 %.2f %% (drop %.2f) on %s test images; "
          "calibration %dx32 in %.2f s" % (args.arch, acc_fp32, acc_int8, acc_fp32 - acc_int8,
                                           "{:,}".format(n_test), calib_batches, calib_s))
    print("size (serialized state_dict): FP32 %.2f MB, INT8 %.2f MB (%.2fx smaller); engine %s; "
          "frozen vs eager at batch 64: FP32 %.2g, INT8 %.2g" % (size_fp32 / 1e6, size_int8 / 1e6,
                                                                 size_fp32 / size_int8, engine, d_fp32, d_int8))

    runs1, runs64 = (50, 5) if args.quick else (200, 30)
    x1, x64 = x_test[:1].contiguous(), x_test[:64].contiguous()
    rows = []
    print("%-8s %-5s %12s %12s %14s" % ("threads", "model", "b1 median", "b1 p95", "b64 img/s"), flush=True)
    for th in threads:
        torch.set_num_threads(th)
        r = {"threads": th}
        for name, fn in (("fp32", fp32), ("int8", int8)):
            # a peer that crashes is a result, not the end of the benchmark: PyTorch 1.13's oneDNN
            # fails with two threads on some AVX-512 VNNI machines ("could not create a primitive
            # descriptor for a reorder primitive")
            try:
                if os.environ.get("QLAB_TORCH_FAIL") == "%s:%d" % (name, th):   # to check this path
                    raise RuntimeError("simulated failure (QLAB_TORCH_FAIL=%s:%d)" % (name, th))
                t1 = time_forward(fn, x1, runs1, 20)
                t64 = time_forward(fn, x64, runs64, 3)
            except Exception as e:  # RuntimeError from oneDNN / fbgemm, or anything else the peer raises
                msg = "PyTorch crashed: %s" % (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
                r[name] = {"error": msg}
                print("%-8d %-5s %s" % (th, name, msg), flush=True)
                continue
            r[name] = {"b1_median_ms": t1["median"], "b1_p95_ms": t1["p95"], "b1_mean_ms": t1["mean"],
                       "b64_images_per_s": t64["images_per_s"], "b64_median_ms": t64["median"]}
            print("%-8d %-5s %9.3f ms %9.3f ms %14.0f" % (th, name, t1["median"], t1["p95"],
                                                          t64["images_per_s"]), flush=True)
        if "error" not in r["fp32"] and "error" not in r["int8"]:
            r["speedup_b1"] = r["fp32"]["b1_median_ms"] / r["int8"]["b1_median_ms"]
            r["speedup_b64"] = r["int8"]["b64_images_per_s"] / r["fp32"]["b64_images_per_s"]
            print("%-8d INT8 speed-up: %.2fx at batch 1, %.2fx at batch 64" % (th, r["speedup_b1"], r["speedup_b64"]))
        rows.append(r)

    train = None
    if args.train:
        xt = x_train[:128].contiguous()
        yt = torch.arange(128) % 10
        train = measure_training(model, engine, xt, yt, 2 if args.quick else 8, max(threads))

    result = {
        "model": args.arch, "calibration_batches": calib_batches, "model_file": os.path.abspath(args.model),
        "torch_version": torch.__version__, "torchvision_version": torchvision.__version__,
        "quantized_engine": engine, "supported_engines": supported,
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "quick": args.quick, "n_test": n_test,
        "top1_fp32": acc_fp32, "top1_int8": acc_int8, "calibration_s": calib_s,
        "calibration_threads": work_threads,
        "size_fp32": size_fp32, "size_int8": size_int8,
        "runs_b1": runs1, "runs_b64": runs64, "warmup_b1": 20, "warmup_b64": 3,
        "frozen_vs_eager_max_abs_diff": {"fp32": d_fp32, "int8": d_int8},
        "timings": rows,
    }
    if check is not None:
        result["check"] = check
    if train is not None:
        result["train"] = train
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"bench_vs_torch": result}, f, indent=2)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
