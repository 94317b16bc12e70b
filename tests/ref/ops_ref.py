"""ops_ref - cases for the CPU kernels, computed by torch: one frame per
case, metadata "op" and its sizes, tensors the inputs and "want".

    ops_ref.py OUT.bin            the full set (several shapes per op,
                                  odd sizes), for kernels-torch.test
    ops_ref.py --small OUT.bin    a few small cases: tests/data/kernels.bin,
                                  which test_kernels checks without torch
"""
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

import tkio

torch.manual_seed(1)


def t(*shape, scale=1.0):
    return torch.randn(*shape) * scale


def f32(x):
    return np.ascontiguousarray(x.detach().numpy().astype(np.float32))


def conv(cases, B, C, H, W, OC, K, s, p, bias=True, res="none", relu=True,
         algo="auto"):
    x = t(B, C, H, W)
    w = t(OC, C, K, K, scale=1 / math.sqrt(C * K * K))
    b = t(OC) if bias else None
    y = F.conv2d(x, w, b, stride=s, padding=p)
    tensors = {"in": x, "weight": w}
    if b is not None:
        tensors["bias"] = b
    if res != "none":
        r = t(*y.shape)
        y = y + r
        tensors["residual"] = r
    if relu:
        y = F.relu(y)
    tensors["want"] = y
    cases.append(("conv", dict(B=B, C=C, H=H, W=W, OC=OC, K=K, stride=s,
                               pad=p, relu=int(relu), res=res, algo=algo),
                  tensors))


def bnfold(cases, C, H, W, OC, K, s, p, conv_bias):
    x = t(1, C, H, W)
    conv = torch.nn.Conv2d(C, OC, K, s, p, bias=conv_bias)
    bn = torch.nn.BatchNorm2d(OC)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(OC) + 0.5)
        bn.bias.copy_(t(OC))
        bn.running_mean.copy_(t(OC, scale=0.5))
        bn.running_var.copy_(torch.rand(OC) * 2 + 0.1)
    bn.eval()
    y = bn(conv(x))
    tensors = {"in": x, "weight": conv.weight, "gamma": bn.weight,
               "beta": bn.bias, "mean": bn.running_mean,
               "var": bn.running_var, "want": y}
    if conv_bias:
        tensors["bias"] = conv.bias
    cases.append(("bnfold", dict(B=1, C=C, H=H, W=W, OC=OC, K=K, stride=s,
                                 pad=p, eps=bn.eps), tensors))


def maxpool(cases, P, H, W, K=3, s=2, p=1):
    x = t(1, P, H, W)
    cases.append(("maxpool", dict(P=P, H=H, W=W, K=K, stride=s, pad=p),
                  {"in": x, "want": F.max_pool2d(x, K, s, p)}))


def linear(cases, N, IN, OUT, bias=True):
    x, w = t(N, IN), t(OUT, IN, scale=1 / math.sqrt(IN))
    b = t(OUT) if bias else None
    tensors = {"in": x, "weight": w, "want": F.linear(x, w, b)}
    if bias:
        tensors["bias"] = b
    cases.append(("linear", dict(N=N, IN=IN, OUT=OUT), tensors))


def attention(cases, B, Nq, Nk, D, heads):
    q, k, v = t(B, Nq, D), t(B, Nk, D), t(B, Nk, D)
    dh = D // heads
    qh = q.reshape(B, Nq, heads, dh).permute(0, 2, 1, 3)
    kh = k.reshape(B, Nk, heads, dh).permute(0, 2, 1, 3)
    vh = v.reshape(B, Nk, heads, dh).permute(0, 2, 1, 3)
    a = F.softmax((qh @ kh.transpose(-2, -1)) * dh**-0.5, dim=-1)
    y = (a @ vh).transpose(1, 2).reshape(B, Nq, D)
    cases.append(("attention", dict(B=B, Nq=Nq, Nk=Nk, D=D, heads=heads),
                  {"q": q, "k": k, "v": v, "want": y}))


def rows(cases, op, N, C, fn, scale=3.0, **kw):
    x = t(N, C, scale=scale)
    cases.append((op, dict(N=N, C=C, **kw), {"in": x, "want": fn(x)}))


def layernorm(cases, N, C):
    x = t(N, C, scale=2.0) + 1.0
    w, b = t(C), t(C)
    cases.append(("layernorm", dict(N=N, C=C, eps=1e-5),
                  {"in": x, "weight": w, "bias": b,
                   "want": F.layer_norm(x, (C,), w, b, 1e-5)}))


def bn1d(cases, N, C):
    x = t(N, C, scale=2.0)
    g, b, m = torch.rand(C) + 0.5, t(C), t(C)
    v = torch.rand(C) * 2 + 0.05
    cases.append(("bn1d", dict(N=N, C=C, eps=1e-5),
                  {"in": x, "gamma": g, "beta": b, "mean": m, "var": v,
                   "want": F.batch_norm(x, m, v, g, b, False, 0.1, 1e-5)}))


def resize(cases, P, H, W, scale=None, size=None):
    x = t(1, P, H, W)
    if scale is not None:
        y = F.interpolate(x, scale_factor=scale, mode="bilinear",
                          align_corners=False)
        meta = dict(scale=repr(float(scale)))
    else:
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        meta = dict(scale="0")
    meta.update(P=P, H=H, W=W, OH=y.shape[2], OW=y.shape[3])
    cases.append(("resize", meta, {"in": x, "want": y}))


def normalize(cases, H, W):
    import torchvision.transforms as T
    img = np.random.RandomState(H * 1000 + W).randint(0, 256, (H, W, 3)).astype(np.uint8)
    tf = T.Compose([T.ToTensor(), T.Normalize(mean=[0.485, 0.456, 0.406],
                                              std=[0.229, 0.224, 0.225])])
    # Floats first: tkio lays tensors out in the order given, and the
    # stream's rule is that every tensor is aligned to its element size.
    cases.append(("normalize", dict(H=H, W=W),
                  {"want": tf(img), "in": img}))


def small_cases():
    c = []
    conv(c, 1, 3, 13, 11, 5, 7, 2, 3, bias=False)            # stem-like
    conv(c, 2, 4, 9, 7, 6, 3, 1, 1, res="separate")
    conv(c, 1, 5, 8, 9, 7, 1, 1, 0, res="inplace")
    conv(c, 1, 6, 9, 11, 8, 1, 2, 0, relu=False)              # downsample
    conv(c, 1, 4, 10, 7, 3, 3, 2, 1)
    conv(c, 1, 16, 9, 13, 16, 3, 1, 1, res="inplace", algo="winograd")
    conv(c, 1, 5, 7, 6, 3, 3, 1, 1, algo="winograd")
    conv(c, 1, 5, 7, 6, 3, 3, 1, 1, algo="gemm")
    bnfold(c, 4, 7, 6, 5, 3, 1, 1, conv_bias=False)
    bnfold(c, 6, 5, 5, 4, 1, 1, 0, conv_bias=True)
    maxpool(c, 3, 9, 7)
    maxpool(c, 2, 8, 8)
    maxpool(c, 2, 7, 9, K=2, s=2, p=0)                        # generic path
    linear(c, 5, 7, 3)
    attention(c, 1, 4, 9, 8, 2)
    rows(c, "softmax", 3, 5, lambda x: F.softmax(x, dim=-1))
    rows(c, "gelu", 4, 9, F.gelu)
    rows(c, "relu", 2, 7, F.relu)
    rows(c, "l2norm", 3, 6, lambda x: F.normalize(x, dim=-1), eps=1e-12)
    layernorm(c, 3, 8)
    bn1d(c, 5, 6)
    resize(c, 2, 7, 9, scale=2**0.5)
    resize(c, 2, 9, 7, scale=0.5**0.5)
    resize(c, 1, 5, 6, size=(8, 3))
    resize(c, 1, 2, 3, scale=2**0.5)                         # 2 rows stay 2
    normalize(c, 5, 4)
    return c


def full_cases():
    c = []
    conv(c, 1, 3, 67, 45, 16, 7, 2, 3, bias=False)
    conv(c, 1, 64, 33, 47, 64, 3, 1, 1)                        # Winograd
    conv(c, 2, 32, 17, 23, 48, 3, 1, 1, res="separate")
    conv(c, 1, 17, 6, 5, 19, 3, 1, 1, relu=False)              # ragged tiles
    conv(c, 1, 256, 5, 7, 256, 3, 1, 1, res="inplace")
    conv(c, 1, 24, 31, 29, 40, 3, 1, 1, algo="gemm")
    conv(c, 1, 24, 31, 29, 40, 3, 1, 1, algo="winograd")
    conv(c, 1, 128, 12, 16, 256, 1, 1, 0, res="inplace")
    conv(c, 1, 64, 25, 31, 128, 1, 2, 0, relu=False)
    conv(c, 1, 64, 21, 19, 64, 3, 2, 1)
    conv(c, 3, 8, 11, 13, 8, 1, 1, 0, res="separate")
    bnfold(c, 32, 15, 13, 48, 3, 1, 1, conv_bias=False)
    bnfold(c, 64, 9, 11, 32, 1, 1, 0, conv_bias=True)
    maxpool(c, 16, 67, 45)
    maxpool(c, 8, 64, 48)
    maxpool(c, 4, 5, 4)
    maxpool(c, 3, 11, 10, K=3, s=1, p=1)
    maxpool(c, 3, 12, 13, K=5, s=3, p=2)
    linear(c, 333, 96, 128)
    linear(c, 4, 1024, 1024)
    linear(c, 1, 256, 64, bias=False)
    attention(c, 1, 187, 187, 64, 8)
    attention(c, 2, 4, 77, 96, 4)
    attention(c, 1, 4, 4, 32, 1)
    rows(c, "softmax", 187, 4, lambda x: F.softmax(x, dim=-1))
    rows(c, "softmax", 3, 1531, lambda x: F.softmax(x, dim=-1), scale=30.0)
    rows(c, "gelu", 17, 333, F.gelu)
    rows(c, "relu", 9, 99, F.relu)
    rows(c, "l2norm", 7, 1024, lambda x: F.normalize(x, dim=-1), eps=1e-12)
    layernorm(c, 4, 1024)
    layernorm(c, 33, 65)
    bn1d(c, 187, 64)
    bn1d(c, 1, 1024)
    for s in (2**0.5, 0.5**0.5):
        resize(c, 3, 333, 517, scale=s)
        resize(c, 3, 768, 1024, scale=s)
        resize(c, 3, 1, 7, scale=s * 2)
        resize(c, 2, 3, 2, scale=s)
    resize(c, 2, 31, 17, size=(64, 9))
    normalize(c, 333, 517)
    return c


def main():
    args = sys.argv[1:]
    small = args and args[0] == "--small"
    if small:
        args = args[1:]
    cases = small_cases() if small else full_cases()
    frames = []
    for i, (op, meta, tensors) in enumerate(cases):
        m = {"key": f"{i}-{op}", "op": op}
        m.update({k: str(v) for k, v in meta.items()})
        frames.append((m, {k: (v if isinstance(v, np.ndarray) else f32(v))
                           for k, v in tensors.items()}))
    tkio.write_frames(args[0], frames)


if __name__ == "__main__":
    main()
