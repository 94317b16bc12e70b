"""bench_torch - the PyTorch side of the GPU benchmarks (tests/gpu/check.sh
runs it with the GPU machine's python3 and torch): the same work the tk
benchmarks (bench_*.c) do, on the same GPU, timed with CUDA events, median
of repeated runs after warm-up.  Prints one 'RESULT torch ...' line each;
train then profiles one more step ('torch profile ...' lines: each aten
op's time on the device).

    python3 bench_torch.py [gemm] [extract] [train] [rank]   (default: all)

The model is the reference's Token (networks/RetrievalNet.py) rebuilt from
its description in DESIGN.md: torchvision ResNet-101 to stage 4, the LFSA
1x1 conv + BN, one encoder layer, 4 tokens, two decoder layers, projection
+ BN1d, L2 normalisation; ArcFace over 81313 classes for training.
"""
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

dev = torch.device("cuda")


def median_ms(fn, warmup=3, reps=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


# ---- the model ----

class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.h = heads
        self.scale = (dim // heads) ** -0.5
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(0.1)

    def forward(self, q, k, v):
        B, Nq, D = q.shape
        Nk = k.shape[1]
        q = self.q(q).reshape(B, Nq, self.h, -1).permute(0, 2, 1, 3)
        k = self.k(k).reshape(B, Nk, self.h, -1).permute(0, 2, 1, 3)
        v = self.v(v).reshape(B, Nk, self.h, -1).permute(0, 2, 1, 3)
        a = self.drop(F.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1))
        x = (a @ v).transpose(1, 2).reshape(B, Nq, D)
        return self.drop(self.proj(x))


class Encoder(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.attn = Attention(dim, heads)
        self.bn = nn.BatchNorm1d(dim)
        self.mlp = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        x = x + self.attn(x, x, x)
        return x + self.mlp(self.bn(x.reshape(b * n, d)).reshape(b, n, d))


class Decoder(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.cross_attn = Attention(dim, heads)
        self.bn1, self.bn2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(2 * dim, dim), nn.Dropout(0.1))

    def forward(self, q, x):
        qb = self.bn1(q)
        q = q + self.cross_attn(qb, x, x)
        q = q + self.mlp(q)
        qb = self.bn2(q)
        return q + self.self_attn(qb, qb, qb)


class Token(nn.Module):
    def __init__(self, classes=0, dim=1024, tokens=4, heads=8):
        super().__init__()
        r = torchvision.models.resnet101()
        self.backbone = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool,
                                      r.layer1, r.layer2, r.layer3, r.layer4)
        self.conv = nn.Sequential(nn.Conv2d(2048, dim, 1), nn.BatchNorm2d(dim))
        self.encoder = nn.ModuleList([Encoder(dim, heads)])
        self.query = nn.Parameter(torch.randn(1, tokens, dim))
        self.token_norm = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.decoder = nn.ModuleList([Decoder(dim, heads) for _ in range(2)])
        self.proj = nn.Sequential(nn.Linear(dim * tokens, 1024), nn.BatchNorm1d(1024))
        self.dim = dim
        if classes:
            self.weight = nn.Parameter(torch.randn(classes, 1024) * 0.01)
            self.s, self.m = math.sqrt(1024), 0.2

    def features(self, x):
        x = self.backbone(x)
        B, _, H, W = x.shape
        x = self.conv(x).reshape(B, self.dim, H * W).permute(0, 2, 1)
        for e in self.encoder:
            x = e(x)
        q = self.query.repeat(B, 1, 1)
        att = F.softmax(torch.bmm(q, x.permute(0, 2, 1)), dim=1)
        t = self.token_norm(torch.bmm(att, x))
        for d in self.decoder:
            t = d(t, x)
        return self.proj(t.reshape(B, -1))

    def forward(self, x, label):
        f = self.features(x)
        cos = F.linear(F.normalize(f, dim=-1), F.normalize(self.weight, dim=-1))
        th = torch.acos(torch.clamp(cos, -1 + 1e-6, 1 - 1e-6))
        one = torch.zeros_like(cos).scatter_(1, label.view(-1, 1), 1)
        sel = torch.where(th > math.pi - self.m, torch.zeros_like(one), one).bool()
        logits = torch.cos(torch.where(sel, th + self.m, th)) * self.s
        return F.cross_entropy(logits, label)


def multiscale(model, img, dtype=None):
    """Descriptor of one image at scales 1, sqrt2, 1/sqrt2 (DESIGN.md)."""
    acc = None
    for s in (1.0, math.sqrt(2), 1 / math.sqrt(2)):
        x = img if s == 1.0 else F.interpolate(img, scale_factor=s, mode="bilinear",
                                               align_corners=False)
        if dtype is not None:
            x = x.contiguous(memory_format=torch.channels_last)
        d = model.features(x).float()
        acc = d if acc is None else acc + d
    return F.normalize(acc, dim=-1)


def profile_step(step, top=14):
    """One more step under torch.profiler, untimed: each aten op's self
    time on the device (on the CPU without one), most first, to set
    beside bench_train's profile of tk's step."""
    from torch.profiler import ProfilerActivity, profile
    cuda = torch.cuda.is_available()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        step()
        if cuda:
            torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        if cuda:
            t = getattr(e, "self_device_time_total", None)
            if t is None:
                t = getattr(e, "self_cuda_time_total", 0)
        else:
            t = e.self_cpu_time_total
        if t > 0:
            rows.append((t, e.key, e.count))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"torch profile ({'device' if cuda else 'cpu'}): {total / 1e3:.1f} ms in all")
    for t, k, c in rows[:top]:
        print(f"torch profile {k:<44} {t / 1e3:9.2f} ms {c:6d} x {100 * t / total:5.1f}%")


def bench_gemm():
    n = 8192
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)
    for name, dt, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                           ("bf16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        x, y = a.to(dt), b.to(dt)
        ms = median_ms(lambda: x @ y)
        print(f"RESULT torch gemm {name} {n}^3: {2 * n**3 / ms / 1e9:.1f} TFLOP/s ({ms:.2f} ms)")
    torch.backends.cuda.matmul.allow_tf32 = False


def bench_extract():
    torch.backends.cudnn.benchmark = True
    model = Token().to(dev).eval()
    img = torch.randn(1, 3, 768, 1024, device=dev)
    n = 10
    with torch.no_grad():
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        ms = median_ms(lambda: multiscale(model, img), warmup=3, reps=n)
        print(f"RESULT torch extract fp32 eager 1024x768 3 scales: {1000 / ms:.2f} images/s ({ms:.1f} ms)")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        ms = median_ms(lambda: multiscale(model, img), warmup=3, reps=n)
        print(f"RESULT torch extract tf32 eager 1024x768 3 scales: {1000 / ms:.2f} images/s ({ms:.1f} ms)")
        mcl = model.to(memory_format=torch.channels_last)

        def run():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return multiscale(mcl, img, torch.bfloat16)
        ms = median_ms(run, warmup=3, reps=n)
        print(f"RESULT torch extract bf16 autocast channels_last 1024x768 3 scales: {1000 / ms:.2f} images/s ({ms:.1f} ms)")
    torch.backends.cudnn.allow_tf32 = False


def bench_train():
    torch.backends.cudnn.benchmark = True
    B = 32
    model = Token(classes=81313).to(dev).train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(B, 3, 512, 512, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 81313, (B,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x, y)
        loss.backward()
        opt.step()
    ms = median_ms(step, warmup=3, reps=8)
    print(f"RESULT torch train bf16 autocast channels_last R101 512^2 batch {B}: {B * 1000 / ms:.1f} images/s ({ms:.1f} ms/step)")
    sys.stdout.flush()
    try:
        profile_step(step)
    except Exception as e:  # the profile is extra: never lose the RESULT
        print(f"torch profile: failed: {type(e).__name__}: {e}")
    del model, opt
    torch.cuda.empty_cache()


def bench_rank():
    n, D, nq = 1_000_000, 1024, 70
    g = torch.Generator(device=dev).manual_seed(0)
    db = F.normalize(torch.randn(n, D, device=dev, generator=g), dim=-1)
    q = F.normalize(torch.randn(nq, D, device=dev, generator=g), dim=-1)
    torch.backends.cuda.matmul.allow_tf32 = False

    def full():
        s = q @ db.T
        return torch.sort(s, dim=1, descending=True, stable=True)
    ms = median_ms(full, warmup=2, reps=5)
    print(f"RESULT torch rank full 1Mx1024 70 queries fp32 matmul+sort: {ms:.1f} ms")

    def top():
        return torch.topk(q @ db.T, 100, dim=1)
    ms = median_ms(top, warmup=2, reps=5)
    print(f"RESULT torch rank top100 1Mx1024 70 queries fp32 matmul+topk: {ms:.1f} ms")
    del db
    torch.cuda.empty_cache()


if __name__ == "__main__":
    what = sys.argv[1:] or ["gemm", "rank", "extract", "train"]
    print("torch", torch.__version__, torch.cuda.get_device_name(0))
    for w in what:
        t = time.time()
        try:
            globals()["bench_" + w]()
        except Exception as e:  # one failing benchmark must not hide the rest
            print(f"RESULT torch {w}: failed: {type(e).__name__}: {e}")
        print(f"({w}: {time.time() - t:.0f}s)")
