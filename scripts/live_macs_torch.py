#!/usr/bin/python3
"""MACs per image of ResNet-18 and MobileNetV2 as qlab builds them for 28x28x1
Fashion-MNIST (the architectures of scripts/bench_vs_torch.py), counted by
PyTorch forward hooks on every Conv2d and Linear, independently of qlab's own
counting (src/bench/graphstats.c): all taps, and the live ones only (taps
that read the image, not its padding). tests/lua/test_bench.lua holds the
figures this prints.

  /usr/bin/python3 scripts/live_macs_torch.py      (needs python3-torch, python3-torchvision)
"""
import torch
import torch.nn as nn
import torchvision


def taps(n_in, n_out, k, s, p, d):
    return sum(1 for o in range(n_out) for t in range(k) if 0 <= o * s - p + t * d < n_in)


def count(model):
    total, live = [0], [0]

    def hook(mod, inp, out):
        x = inp[0]
        if isinstance(mod, nn.Conv2d):
            _, c, h, w = x.shape
            _, oc, oh, ow = out.shape
            per = (c // mod.groups) * oc
            total[0] += oh * ow * mod.kernel_size[0] * mod.kernel_size[1] * per
            live[0] += (taps(h, oh, mod.kernel_size[0], mod.stride[0], mod.padding[0], mod.dilation[0]) *
                        taps(w, ow, mod.kernel_size[1], mod.stride[1], mod.padding[1], mod.dilation[1]) * per)
        elif isinstance(mod, nn.Linear):
            total[0] += mod.in_features * mod.out_features
            live[0] += mod.in_features * mod.out_features

    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            mod.register_forward_hook(hook)
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    return total[0], live[0]


def resnet18():
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    return m


def mobilenet_v2():
    m = torchvision.models.mobilenet_v2(num_classes=10)
    m.features[0][0] = nn.Conv2d(1, 32, 3, 1, 1, bias=False)
    return m


for name, build in (("resnet18", resnet18), ("mobilenet_v2", mobilenet_v2)):
    t, l = count(build())
    print(f"{name}: {t} MACs per image, {l} live")
