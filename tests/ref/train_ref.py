"""train_ref - a PyTorch reference for tk's training: the Token model as
the reference repository defines it (RetrievalNet.py: ResNet backbone,
Token_Refine, ArcFace), written for these tests with the reference's
state_dict names and configurable sizes, and the reference's training loop
(train.py: SGD with Nesterov momentum, weight decay on weights only,
WarmupCos_Scheduler stepped before optimizer.step, gradient accumulation,
gradient-norm clipping).  Dropout draws tk's keep flags (tkrand) so that a
run with dropout on can be compared too.

    train_ref.py model ARCH OUT.safetensors [--seed S] [--init random|default]
    train_ref.py frames OUT.bin N SIZE CLASSES [--seed S] [--pattern]
    train_ref.py grads MODEL FRAMES OUT.bin [--dropout P] [--seed S]
    train_ref.py train MODEL FRAMES OUT.safetensors LOG.jsonl [options]
    train_ref.py loss MODEL FRAMES [--batch B]

ARCH is tk's: "r50:width=8,mid_dim=32,out_dim=32,heads=4,classes=10"."""
import argparse
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import tkio
import tkrand

# ---------------------------------------------------------------- dropout

MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


class Ctx:
    """The dropout probability and the seed of the current forward pass
    (tk's per-micro-batch seed); sites derive theirs as tk's
    net_site_seed does.  native: torch's own dropout and random numbers
    instead (the reference's code path, for timing)."""
    p = 0.0
    seed = 0
    native = False


def site_seed(seed, site):
    with np.errstate(over="ignore"):
        return int(tkrand.mix64(np.uint64(seed) ^ tkrand.mix64(
            np.uint64(0x5eed0000 + site))))


def micro_seed(run_seed, micro):
    """tk-train's seed of micro-batch number 'micro' (counted from 0 over
    the whole run)."""
    with np.errstate(over="ignore"):
        return int(tkrand.mix64(np.uint64(run_seed) ^ tkrand.mix64(
            np.uint64(0x7261696e00000000) + np.uint64(micro))))


class Drop(nn.Module):
    """nn.Dropout (elementwise) or the reference's DropPath (per sample)
    with tk's keep flags for site 'site'."""

    def __init__(self, site, path=False):
        super().__init__()
        self.site, self.path = site, path

    def forward(self, x):
        p = Ctx.p
        if not self.training or p == 0:
            return x
        if Ctx.native:
            if not self.path:
                return F.dropout(x, p, True)
            shape = (x.shape[0],) + (1,) * (x.dim() - 1)
            r = (1 - p + torch.rand(shape, dtype=x.dtype)).floor_()
            return x.div(1 - p) * r
        s = site_seed(Ctx.seed, self.site)
        if self.path:
            keep = tkrand.keep(s, x.shape[0], p).astype(np.float32)
            r = torch.from_numpy(keep).reshape((x.shape[0],) + (1,) * (x.dim() - 1))
            return x.div(1 - p) * r
        keep = tkrand.keep(s, x.numel(), p).astype(np.float32)
        noise = torch.from_numpy(keep).reshape(x.shape).div_(1 - p)
        return x * noise

# ---------------------------------------------------------------- model


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride, down):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = nn.Sequential(
            nn.Conv2d(cin, planes * 4, 1, stride, bias=False),
            nn.BatchNorm2d(planes * 4)) if down else None

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (self.downsample(x) if self.downsample is not None else x))


class Backbone(nn.Module):
    def __init__(self, depth, width):
        super().__init__()
        blocks = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}[depth]
        self.block1 = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False),
                                    nn.BatchNorm2d(width), nn.ReLU(),
                                    nn.MaxPool2d(3, 2, 1))
        cin = width
        for s, n in enumerate(blocks):
            planes = width << s
            layers = []
            for i in range(n):
                layers.append(Bottleneck(cin, planes, 2 if s and i == 0 else 1, i == 0))
                cin = planes * 4
            setattr(self, "block%d" % (s + 2), nn.Sequential(*layers))

    def forward(self, x):
        for i in range(1, 6):
            x = getattr(self, "block%d" % i)(x)
        return x


class Attention(nn.Module):
    def __init__(self, dim, heads, site):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = Drop(site)
        self.proj_drop = Drop(site + 1)

    def forward(self, q, k, v):
        B, Nq, _ = q.shape
        Nk = k.shape[1]
        q = self.q(q).reshape(B, Nq, self.heads, -1).permute(0, 2, 1, 3)
        k = self.k(k).reshape(B, Nk, self.heads, -1).permute(0, 2, 1, 3)
        v = self.v(v).reshape(B, Nk, self.heads, -1).permute(0, 2, 1, 3)
        attn = self.attn_drop(F.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1))
        q = (attn @ v).transpose(1, 2).reshape(B, Nq, -1)
        return self.proj_drop(self.proj(q))


class Encoder(nn.Module):
    def __init__(self, dim, heads, site):
        super().__init__()
        self.attn = Attention(dim, heads, site)
        self.dp1 = Drop(site + 2, path=True)
        self.dp2 = Drop(site + 3, path=True)
        self.bn = nn.BatchNorm1d(dim)
        self.mlp = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        x = x + self.dp1(self.attn(x, x, x))
        xb = self.bn(x.reshape(b * n, d)).reshape(b, n, d)
        return x + self.dp2(self.mlp(xb))


class Mlp(nn.Module):
    def __init__(self, dim, site):
        super().__init__()
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)
        self.drop1 = Drop(site)
        self.drop2 = Drop(site + 1)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(F.gelu(self.fc1(x)))))


class Decoder(nn.Module):
    def __init__(self, dim, heads, site):
        super().__init__()
        self.self_attn = Attention(dim, heads, site + 6)
        self.cross_attn = Attention(dim, heads, site)
        self.dp_cross = Drop(site + 2, path=True)
        self.dp_mlp = Drop(site + 5, path=True)
        self.dp_self = Drop(site + 8, path=True)
        self.bn1 = nn.LayerNorm(dim)
        self.bn2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, site + 3)

    def forward(self, q, x):
        q = q + self.dp_cross(self.cross_attn(self.bn1(q), x, x))
        q = q + self.dp_mlp(self.mlp(q))
        qb = self.bn2(q)
        return q + self.dp_self(self.self_attn(qb, qb, qb))


class TokenRefine(nn.Module):
    def __init__(self, a):
        super().__init__()
        D = a["mid_dim"]
        self.query = nn.Parameter(torch.randn(1, a["tokens"], D))
        self.token_norm = nn.Sequential(nn.Linear(D, D), nn.LayerNorm(D))
        self.encoder = nn.ModuleList([Encoder(D, a["heads"], 16 * l)
                                      for l in range(a["encoder_layers"])])
        self.decoder = nn.ModuleList([Decoder(D, a["heads"], 1000 + 16 * l)
                                      for l in range(a["decoder_layers"])])
        self.conv = nn.Sequential(nn.Conv2d(32 * a["width"], D, 1), nn.BatchNorm2d(D))
        self.proj = nn.Sequential(nn.Linear(D * a["tokens"], a["out_dim"]),
                                  nn.BatchNorm1d(a["out_dim"]))
        self.D = D

    def forward(self, x):
        B, _, H, W = x.shape
        x = self.conv(x).reshape(B, self.D, H * W).permute(0, 2, 1)
        for e in self.encoder:
            x = e(x)
        q = self.query.repeat(B, 1, 1)
        attns = F.softmax(torch.bmm(q, x.permute(0, 2, 1)), dim=1)
        token = self.token_norm(torch.bmm(attns, x))
        for d in self.decoder:
            token = d(token, x)
        return self.proj(token.reshape(B, -1))


class ArcFace(nn.Module):
    def __init__(self, inf, outf, s, m, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(outf, inf))
        self.s, self.m, self.eps = s, m, eps
        self.threshold = math.pi - m

    def forward(self, x, label):
        cos = F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=-1))
        theta = torch.acos(torch.clamp(cos, -1.0 + self.eps, 1.0 - self.eps))
        one_hot = torch.zeros(cos.size())
        one_hot.scatter_(1, label.view(-1, 1), 1)
        sel = torch.where(theta > self.threshold, torch.zeros_like(one_hot), one_hot).bool()
        out = torch.cos(torch.where(sel, theta + self.m, theta))
        out *= self.s
        return out


class Token(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.backbone = Backbone(a["depth"], a["width"])
        self.tr = TokenRefine(a)
        self.classifier = ArcFace(a["out_dim"], a["classes"], a["arcface_s"], a["arcface_m"])

    def forward(self, x, label):
        logits = self.classifier(self.tr(self.backbone(x)), label)
        return F.cross_entropy(logits, label), logits

# ---------------------------------------------------------------- files

KEYS = ["depth", "width", "mid_dim", "tokens", "heads", "encoder_layers",
        "decoder_layers", "out_dim", "classes", "arcface_s", "arcface_m"]


def parse_arch(spec):
    name, _, rest = spec.partition(":")
    a = dict(depth={"r50": 50, "r101": 101}[name], width=64, mid_dim=1024,
             tokens=4, heads=8, encoder_layers=1, decoder_layers=2,
             out_dim=1024, classes=0, arcface_m=0.2)
    for kv in filter(None, rest.split(",")):
        k, v = kv.split("=")
        a[k] = float(v) if k.startswith("arcface") else int(v)
    a.setdefault("arcface_s", math.sqrt(a["out_dim"]))
    return a


def arch_meta(a):
    m = {"format": "tk-model", "backbone": "resnet%d" % a["depth"]}
    for k in KEYS:
        v = a[k]
        m[k] = "%.9g" % np.float32(v) if k.startswith("arcface") else str(int(v))
    return m


def save_model(model, a, path, extra=None):
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().numpy()
        tensors[k] = v.astype(np.int64) if k.endswith("num_batches_tracked") else \
            np.ascontiguousarray(v.astype(np.float32))
    if extra:
        tensors.update(extra)
    with open(path, "wb") as f:
        tkio.write_doc(f, arch_meta(a), tensors)


def load_model(path):
    with open(path, "rb") as f:
        meta, tensors = tkio.read_doc(f)
    a = {k: (float(meta[k]) if k.startswith("arcface") else int(meta[k])) for k in KEYS}
    model = Token(a)
    sd = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()
          if not k.startswith(("optim.", "state."))}
    model.load_state_dict(sd)
    return model, a, meta, tensors


def init_random(model, seed):
    """Every tensor random (no zero projections, norms away from 1), so
    that every gradient is exercised; convolutions Kaiming-normal and the
    last norm of each residual branch small, as in a trained ResNet, so
    that the network is well conditioned and float32 rounding stays
    small."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 4:
                fan = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2.0 / fan))
            elif p.dim() > 1:
                fan = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(1.0 / fan))
            elif name.endswith("bn3.weight"):
                p.copy_(0.2 + 0.05 * torch.randn(p.shape, generator=g))
            elif name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(1 + 0.2 * torch.rand(b.shape, generator=g))


def read_batches(path, batch):
    """Image frames -> (uint8 [N, H, W, 3], labels [N])."""
    frames = tkio.read_frames(path)
    imgs = np.stack([t["image"] for _, t in frames])
    labels = np.array([int(m["label"]) for m, _ in frames], dtype=np.int64)
    return imgs, labels


def normalise(u8):
    """torchvision's ToTensor then Normalize, as tk-train does."""
    x = torch.from_numpy(np.ascontiguousarray(u8)).permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def add_weight_decay(model, wd):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if len(p.shape) == 1 or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": wd}]


def schedule(warmup_epochs, warmup_lr, epochs, base_lr, final_lr, iters):
    """WarmupCos_Scheduler.lr_schedule."""
    w = iters * warmup_epochs
    warm = np.linspace(warmup_lr, base_lr, w)
    d = iters * (epochs - warmup_epochs)
    cos = final_lr + 0.5 * (base_lr - final_lr) * (1 + np.cos(math.pi * np.arange(d) / d))
    return np.concatenate((warm, cos))

# ---------------------------------------------------------------- commands


def cmd_model(args):
    a = parse_arch(args.arch)
    torch.manual_seed(args.seed)
    model = Token(a)
    if args.init == "random":
        init_random(model, args.seed)
    save_model(model, a, args.out)


def cmd_frames(args):
    """N images SIZE x SIZE with labels; --pattern: each class a colour
    and a stripe direction, so that a short run can learn them."""
    rs = np.random.RandomState(args.seed)
    frames = []
    for i in range(args.n):
        label = i % args.classes if args.pattern else rs.randint(args.classes)
        if args.pattern:
            c = np.array([(label * 67) % 256, (label * 131) % 256, (label * 199) % 256])
            yy, xx = np.mgrid[0:args.size, 0:args.size]
            stripe = ((xx if label % 2 else yy) // 4) % 2
            img = c[None, None, :] * (0.5 + 0.5 * stripe[..., None])
            img = img + rs.randint(-40, 41, img.shape)
            img = np.clip(img, 0, 255).astype(np.uint8)
        else:
            img = rs.randint(0, 256, (args.size, args.size, 3)).astype(np.uint8)
        frames.append(({"key": "img%05d" % i, "label": str(label)}, {"image": img}))
    tkio.write_frames(args.out, frames)


def cmd_grads(args):
    """One training forward and backward pass of all the frames as one
    batch: the loss, logits, every gradient and the updated buffers; in
    float64 with --f64 (the yardstick for float32 rounding)."""
    torch.set_num_threads(args.threads)
    model, a, _, _ = load_model(args.model)
    imgs, labels = read_batches(args.frames, 0)
    x = normalise(imgs)
    if args.f64:
        model = model.double()
        x = x.double()
    model.train()
    Ctx.p, Ctx.seed = args.dropout, args.seed
    seen = {}

    def keep(name):
        def hook(mod, inp, out):
            out.retain_grad()
            seen[name] = out
        return hook
    model.tr.proj[0].register_forward_hook(keep("pj"))
    model.tr.proj[0].register_forward_pre_hook(
        lambda mod, inp: seen.__setitem__("pin", inp[0]))
    model.tr.proj[1].register_forward_hook(keep("e"))
    loss, logits = model(x, torch.from_numpy(labels))
    loss.backward()
    out = {"loss": np.array([loss.item()], np.float64),
           "logits": logits.detach().numpy().astype(np.float64),
           "net.e": seen["e"].detach().numpy().astype(np.float64),
           "net.de": seen["e"].grad.numpy().astype(np.float64),
           "net.pj": seen["pj"].detach().numpy().astype(np.float64),
           "net.pin": seen["pin"].detach().numpy().astype(np.float64)}
    for name, p in model.named_parameters():
        out["grad." + name] = p.grad.numpy().astype(np.float64)
    for name, b in model.named_buffers():
        out["state." + name] = b.numpy().astype(np.float64)
    if not args.f64:
        out = {k: v.astype(np.float32) for k, v in out.items()}
    with open(args.out, "wb") as f:
        tkio.write_doc(f, {}, out)


def cmd_train(args):
    """The reference loop over the frames in order, batch after batch,
    epoch after epoch (each epoch the next epoch_size frames)."""
    torch.set_num_threads(args.threads)
    model, a, _, _ = load_model(args.model)
    if args.f64:
        model = model.double()
    imgs, labels = read_batches(args.frames, 0)
    B, ue = args.batch, args.update_every
    scale = B * ue / 256
    nbatches = math.ceil(args.epoch_size / B)
    iters = int(nbatches / ue)
    lrs = schedule(args.warmup_epochs, args.warmup_lr * B * ue / 256, args.epochs,
                   args.base_lr * B * ue / 256, args.final_lr * B * ue / 256, iters)
    opt = torch.optim.SGD(add_weight_decay(model, args.wd), lr=args.base_lr * B / 256,
                          weight_decay=args.wd, momentum=0.9, nesterov=True,
                          dampening=0.0)
    step, micro, pos = 0, 0, 0
    log = open(args.log, "w")
    for epoch in range(args.stop_after or args.epochs):
        opt.zero_grad()
        for idx in range(nbatches):
            lo = epoch * args.epoch_size + idx * B
            hi = min(lo + B, (epoch + 1) * args.epoch_size)
            model.train()
            Ctx.p, Ctx.seed = args.dropout, micro_seed(args.seed, micro)
            x = normalise(imgs[lo:hi])
            if args.f64:
                x = x.double()
            y = torch.from_numpy(labels[lo:hi])
            loss, logits = model(x, y)
            # The step's gradient is the mean of its batches', as tk's:
            # the reference's train.py sums them (loss.backward() each
            # batch) while it scales the rates by batch * update_every,
            # which only the mean honours; experiment.sh's update_every
            # is 1, where the two agree.
            (loss / ue).backward()
            micro += 1
            rec = {"epoch": epoch, "batch": idx, "loss": loss.item()}
            if (idx + 1) % ue == 0:
                if args.clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
                lr = lrs[min(step, len(lrs) - 1)]
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.step()
                opt.zero_grad()
                step += 1
                rec.update(step=step, lr=float(lr))
            log.write(json.dumps(rec) + "\n")
    log.close()
    extra = {}
    for name, p in model.named_parameters():
        st = opt.state.get(p, {})
        if "momentum_buffer" in st:
            extra["optim.momentum." + name] = st["momentum_buffer"].numpy().astype(np.float32)
    save_model(model, a, args.out, extra)


def cmd_loss(args):
    """The first batch's training-mode loss in fp32, and with the backbone
    under CPU autocast bf16 and channels_last (the head in float, as
    tk's bf16 training keeps it): how far bf16 activations alone move a
    model's loss, to set beside tk-train --precision bf16's."""
    torch.set_num_threads(args.threads)
    model, a, _, _ = load_model(args.model)
    imgs, labels = read_batches(args.frames, 0)
    x = normalise(imgs[:args.batch])
    lab = torch.from_numpy(labels[:args.batch])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = []
    for bf in (False, True):
        model.load_state_dict(state)
        model.train()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16,
                                             enabled=bf):
            f = model.backbone(
                x.contiguous(memory_format=torch.channels_last) if bf else x)
        with torch.no_grad():
            logits = model.classifier(model.tr(f.float()), lab)
            out.append(F.cross_entropy(logits, lab).item())
    print("loss fp32 %.6f bf16-backbone %.6f" % tuple(out))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("model")
    p.add_argument("arch")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default="random", choices=["random", "default"])
    p = sub.add_parser("frames")
    p.add_argument("out")
    p.add_argument("n", type=int)
    p.add_argument("size", type=int)
    p.add_argument("classes", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pattern", action="store_true")
    p = sub.add_parser("grads")
    p.add_argument("model")
    p.add_argument("frames")
    p.add_argument("out")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--f64", action="store_true")
    p = sub.add_parser("train")
    p.add_argument("model")
    p.add_argument("frames")
    p.add_argument("out")
    p.add_argument("log")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--update-every", type=int, default=1)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--epoch-size", type=int, required=True)
    p.add_argument("--warmup-epochs", type=int, default=0)
    p.add_argument("--warmup-lr", type=float, default=1e-4)
    p.add_argument("--base-lr", type=float, default=0.01)
    p.add_argument("--final-lr", type=float, default=0.0)
    p.add_argument("--wd", type=float, default=1e-4)
    p.add_argument("--clip", type=float, default=-1.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--f64", action="store_true")
    p.add_argument("--stop-after", type=int, default=0,
                   help="stop after this many epochs (the schedule is --epochs')")
    p = sub.add_parser("loss")
    p.add_argument("model")
    p.add_argument("frames")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    {"model": cmd_model, "frames": cmd_frames, "grads": cmd_grads,
     "train": cmd_train, "loss": cmd_loss}[args.cmd](args)


if __name__ == "__main__":
    main()
