"""grads_ref - cases for the backward kernels, computed by torch autograd:
one frame per case, metadata "op" and its sizes, tensors the inputs, the
upstream gradient "dout", the forward output "want_out" and the wanted
gradients "want_d<input>".

    grads_ref.py OUT.bin            several shapes per op, odd sizes
    grads_ref.py --small OUT.bin    a few small cases: tests/data/grads.bin,
                                    which test_backward checks without torch
"""
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

import tkio
import tkrand

torch.manual_seed(7)


def t(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).requires_grad_()


def f32(x):
    return np.ascontiguousarray(x.detach().numpy().astype(np.float32))


def case(cases, op, meta, inputs, out, extra=None):
    """Back-propagate a random upstream gradient through out; record the
    inputs, the output and every input's gradient."""
    dout = torch.randn(*out.shape)
    out.backward(dout)
    tensors = {k: v for k, v in inputs.items()}
    tensors["dout"] = dout
    tensors["want_out"] = out
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor) and v.grad is not None:
            tensors["want_d" + k] = v.grad
    if extra:
        tensors.update(extra)
    cases.append((op, meta, tensors))


def conv(cases, B, C, H, W, OC, K, s, p, bias=True):
    x = t(B, C, H, W)
    w = t(OC, C, K, K, scale=1 / math.sqrt(C * K * K))
    inputs = {"in": x, "weight": w}
    b = None
    if bias:
        b = t(OC)
        inputs["bias"] = b
    y = F.conv2d(x, w, b, stride=s, padding=p)
    case(cases, "conv", dict(B=B, C=C, H=H, W=W, OC=OC, K=K, stride=s, pad=p),
         inputs, y)


def linear(cases, N, IN, OUT, bias=True):
    x, w = t(N, IN), t(OUT, IN, scale=1 / math.sqrt(IN))
    inputs = {"in": x, "weight": w}
    b = None
    if bias:
        b = t(OUT)
        inputs["bias"] = b
    case(cases, "linear", dict(N=N, IN=IN, OUT=OUT), inputs, F.linear(x, w, b))


def batchnorm(cases, B, C, S):
    """Training mode: [B, C, S] as BatchNorm2d (S > 1, shape [B, C, S, 1])
    or BatchNorm1d over rows (S = 1, shape [B, C])."""
    x = t(B, C, S, scale=2.0)
    with torch.no_grad():
        x += torch.randn(1, C, 1)
    g = (torch.rand(C) + 0.5).requires_grad_()
    b = t(C)
    rm, rv = torch.randn(C) * 0.3, torch.rand(C) + 0.5
    rm0, rv0 = rm.clone(), rv.clone()
    xin = x if S > 1 else x.reshape(B, C)
    y = F.batch_norm(xin.reshape(B, C, S, 1) if S > 1 else xin, rm, rv, g, b,
                     training=True, momentum=0.1, eps=1e-5)
    case(cases, "batchnorm", dict(B=B, C=C, S=S, eps=1e-5, momentum=0.1),
         {"in": x, "gamma": g, "beta": b, "running_mean": rm0,
          "running_var": rv0}, y.reshape(B, C, S),
         {"want_running_mean": rm, "want_running_var": rv})


def rows(cases, op, N, C, fn, scale=1.0, **meta):
    x = t(N, C, scale=scale)
    if op == "relu":  # away from the kink, for the finite differences too
        with torch.no_grad():
            x += torch.sign(x) * 0.05
    meta.update(N=N, C=C)
    case(cases, op, meta, {"in": x}, fn(x))


def maxpool(cases, P, H, W):
    # Distinct values, so that the winner is never a tie.
    x = (torch.randperm(P * H * W).float().reshape(1, P, H, W) * 0.01
         ).requires_grad_()
    case(cases, "maxpool", dict(P=P, H=H, W=W, K=3, stride=2, pad=1),
         {"in": x}, F.max_pool2d(x, 3, 2, 1))


def layernorm(cases, N, C):
    x = t(N, C, scale=2.0)
    w, b = t(C), t(C)
    case(cases, "layernorm", dict(N=N, C=C, eps=1e-5),
         {"in": x, "weight": w, "bias": b}, F.layer_norm(x, (C,), w, b, 1e-5))


def attention(cases, B, Nq, Nk, D, heads, p=0.0, seed=0):
    q, k, v = t(B, Nq, D), t(B, Nk, D), t(B, Nk, D)
    dh = D // heads
    qh = q.reshape(B, Nq, heads, dh).permute(0, 2, 1, 3)
    kh = k.reshape(B, Nk, heads, dh).permute(0, 2, 1, 3)
    vh = v.reshape(B, Nk, heads, dh).permute(0, 2, 1, 3)
    att = F.softmax((qh @ kh.transpose(-2, -1)) * dh ** -0.5, dim=-1)
    extra = {}
    if p > 0:
        keep = tkrand.keep(seed, B * heads * Nq * Nk, p).reshape(att.shape)
        noise = torch.from_numpy(keep.astype(np.float32)).div_(1 - p)
        att = att * noise
        extra["want_mask"] = keep.astype(np.uint8)
    out = (att @ vh).transpose(1, 2).reshape(B, Nq, D)
    case(cases, "attention", dict(B=B, Nq=Nq, Nk=Nk, D=D, heads=heads, p=p,
                                  seed=seed),
         {"q": q, "k": k, "v": v}, out, extra)


def dropout(cases, n, p, seed):
    x = t(n)
    keep = tkrand.keep(seed, n, p)
    noise = torch.from_numpy(keep.astype(np.float32)).div_(1 - p)
    case(cases, "dropout", dict(n=n, p=p, seed=seed), {"in": x}, x * noise,
         {"want_mask": keep.astype(np.uint8)})


def droppath(cases, B, per, p, seed):
    x = t(B, per)
    keep = tkrand.keep(seed, B, p)
    r = torch.from_numpy(keep.astype(np.float32)).reshape(B, 1)
    case(cases, "droppath", dict(B=B, per=per, p=p, seed=seed), {"in": x},
         x.div(1 - p) * r, {"want_mask": keep.astype(np.uint8)})


def arcface(cases, N, D, K, s, m, eps=1e-6):
    """The reference's ArcFace and cross-entropy, from the descriptors and
    the class weights to the mean loss."""
    x, w = t(N, D), t(K, D)
    label = torch.randint(0, K, (N,))
    if N > 1:  # one sample on its class centre, past the clamp
        with torch.no_grad():
            w[label[0]] = x[0] * 3.0
    cos = F.linear(F.normalize(x, dim=-1), F.normalize(w, dim=-1))
    theta = torch.acos(torch.clamp(cos, -1.0 + eps, 1.0 - eps))
    one_hot = torch.zeros(cos.size())
    one_hot.scatter_(1, label.view(-1, 1), 1)
    sel = torch.where(theta > math.pi - m, torch.zeros_like(one_hot),
                      one_hot).bool()
    logits = torch.cos(torch.where(sel, theta + m, theta))
    logits *= s
    loss = F.cross_entropy(logits, label)
    dout = torch.ones(())
    loss.backward(dout)
    cases.append(("arcface", dict(N=N, D=D, K=K, s=s, m=m, eps=eps),
                  {"in": x, "weight": w,
                   "label": label.numpy().astype(np.int32),
                   "want_logits": logits, "want_out": loss.reshape(1),
                   "want_din": x.grad, "want_dweight": w.grad}))


def resize(cases, P, H, W, scale=None, size=None):
    x = t(1, P, H, W)
    if scale is not None:
        y = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        meta = dict(scale=repr(float(scale)))
    else:
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        meta = dict(scale="0")
    meta.update(P=P, H=H, W=W, OH=y.shape[2], OW=y.shape[3])
    case(cases, "resize", meta, {"in": x}, y)


def sgd(cases, n, steps, lr, wd, nesterov=True):
    p = torch.randn(n)
    p0 = p.clone()
    grads = torch.randn(steps, n)
    lrs = [lr * (i + 1) for i in range(steps)]
    par = torch.nn.Parameter(p)
    opt = torch.optim.SGD([{"params": [par], "weight_decay": wd}], lr=lr,
                          momentum=0.9, nesterov=nesterov, dampening=0.0)
    for i in range(steps):
        par.grad = grads[i].clone()
        opt.param_groups[0]["lr"] = lrs[i]
        opt.step()
    cases.append(("sgd", dict(n=n, steps=steps, wd=wd, nesterov=int(nesterov),
                              lrs=",".join(repr(x) for x in lrs)),
                  {"param": p0, "grads": grads, "want_out": par.detach(),
                   "want_buf": opt.state[par]["momentum_buffer"]}))


def small_cases():
    c = []
    conv(c, 2, 3, 9, 7, 4, 7, 2, 3, bias=False)
    conv(c, 1, 5, 6, 5, 6, 3, 1, 1)
    conv(c, 2, 4, 7, 9, 5, 1, 2, 0, bias=False)
    conv(c, 1, 6, 5, 4, 3, 1, 1, 0)
    linear(c, 5, 7, 3)
    batchnorm(c, 2, 3, 10)
    batchnorm(c, 6, 5, 1)
    rows(c, "relu", 3, 7, F.relu)
    rows(c, "gelu", 4, 9, F.gelu)
    rows(c, "softmax", 3, 5, lambda x: F.softmax(x, dim=-1))
    rows(c, "l2norm", 3, 6, lambda x: F.normalize(x, dim=-1), eps=1e-12)
    maxpool(c, 2, 7, 6)
    layernorm(c, 3, 8)
    attention(c, 2, 3, 5, 8, 2)
    attention(c, 1, 4, 4, 6, 3, p=0.25, seed=99)
    dropout(c, 50, 0.1, 5)
    droppath(c, 6, 4, 0.3, 11)
    arcface(c, 4, 6, 9, math.sqrt(6), 0.2)
    resize(c, 2, 5, 7, scale=2 ** 0.5)
    sgd(c, 37, 3, 0.05, 1e-4)
    return c


def full_cases():
    c = []
    conv(c, 2, 3, 33, 29, 16, 7, 2, 3, bias=False)           # stem
    conv(c, 2, 32, 15, 13, 32, 3, 1, 1, bias=False)
    conv(c, 2, 16, 14, 15, 24, 3, 2, 1, bias=False)
    conv(c, 3, 64, 9, 7, 128, 1, 1, 0, bias=False)
    conv(c, 2, 32, 11, 12, 64, 1, 2, 0, bias=False)          # downsample
    conv(c, 2, 64, 4, 5, 48, 1, 1, 0)                        # tr.conv
    linear(c, 64, 96, 128)
    linear(c, 3, 256, 1024, bias=False)
    batchnorm(c, 4, 16, 63)
    batchnorm(c, 2, 64, 1)
    batchnorm(c, 187, 32, 1)
    rows(c, "relu", 9, 99, F.relu)
    rows(c, "gelu", 17, 333, F.gelu)
    rows(c, "softmax", 187, 4, lambda x: F.softmax(x, dim=-1))
    rows(c, "softmax", 3, 1531, lambda x: F.softmax(x, dim=-1), scale=10.0)
    rows(c, "l2norm", 7, 1024, lambda x: F.normalize(x, dim=-1), eps=1e-12)
    maxpool(c, 8, 33, 29)
    maxpool(c, 4, 16, 16)
    layernorm(c, 8, 1024)
    layernorm(c, 33, 65)
    attention(c, 2, 49, 49, 64, 8)
    attention(c, 3, 4, 77, 96, 4)
    attention(c, 2, 4, 4, 64, 8, p=0.1, seed=12345)
    attention(c, 2, 49, 49, 32, 4, p=0.1, seed=3)
    dropout(c, 10000, 0.1, 1 << 40)
    droppath(c, 16, 99, 0.1, 77)
    arcface(c, 8, 64, 1000, 8.0, 0.2)
    arcface(c, 3, 1024, 300, 32.0, 0.2)
    resize(c, 3, 33, 51, scale=2 ** 0.5)
    resize(c, 3, 33, 51, scale=0.5 ** 0.5)
    resize(c, 2, 2, 9, scale=2 ** 0.5)
    resize(c, 2, 31, 17, size=(64, 9))
    sgd(c, 1001, 5, 0.01, 1e-4)
    sgd(c, 64, 4, 0.1, 0.0, nesterov=False)
    # 2,048 output pixels or more: training's groups of one image (last,
    # so that the cases before keep their random numbers)
    conv(c, 2, 8, 46, 45, 12, 1, 1, 0)
    conv(c, 2, 4, 46, 46, 6, 3, 1, 1, bias=False)
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
