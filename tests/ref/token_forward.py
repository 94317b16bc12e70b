"""token_forward - the forward pass of a PyTorch Token model with the
reference's tensor names, to judge tk-extract and tk-aggregate.

    token_forward.py make ARCH SEED OUT.safetensors [f16]
        random weights for ARCH ("r50:width=8,mid_dim=32,out_dim=32,
        heads=4", as tk's architecture strings), batch-norm statistics
        calibrated on random images and then perturbed, written with the
        architecture metadata tk reads (f16: as F16, to keep committed
        test models small; both sides then compute with the same values)
    token_forward.py run MODEL IMAGES.bin LOCAL.bin DESC.bin [SCALES]
        for each image frame (U8 [H,W,3] or F32 [3,H,W] normalised): the
        local features per scale and the descriptor, as the reference's
        test.py / extract_vectors compute them (eval mode, bilinear
        F.interpolate of the normalised tensor, per-scale forward_test,
        averaged, L2-normalised)

Written from the paper and the reference code's behaviour, not copied:
ResNet (torchvision layout), LFSA, tokenizer, refinement decoders.
"""
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import tkio

BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
FIELDS = ["depth", "width", "mid_dim", "tokens", "heads", "encoder_layers",
          "decoder_layers", "out_dim", "classes", "arcface_s", "arcface_m"]
SCALES = [1, 2**0.5, 0.5**0.5]


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


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride, down):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = nn.Sequential(
            nn.Conv2d(cin, planes * 4, 1, stride, bias=False),
            nn.BatchNorm2d(planes * 4)) if down else None

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.downsample(x) if self.downsample else x))


class Backbone(nn.Module):
    def __init__(self, depth, w):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, w, 7, 2, 3, bias=False),
                                    nn.BatchNorm2d(w), nn.ReLU(),
                                    nn.MaxPool2d(3, 2, 1))
        cin = w
        for s, n in enumerate(BLOCKS[depth]):
            planes = w << s
            blocks = []
            for i in range(n):
                blocks.append(Bottleneck(cin, planes, 2 if i == 0 and s else 1,
                                         i == 0))
                cin = planes * 4
            setattr(self, f"block{s + 2}", nn.Sequential(*blocks))

    def forward(self, x):
        for i in range(1, 6):
            x = getattr(self, f"block{i}")(x)
        return x


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, q, k, v):
        B, Nq, D = q.shape
        Nk, h = k.shape[1], self.heads
        q = self.q(q).reshape(B, Nq, h, -1).permute(0, 2, 1, 3)
        k = self.k(k).reshape(B, Nk, h, -1).permute(0, 2, 1, 3)
        v = self.v(v).reshape(B, Nk, h, -1).permute(0, 2, 1, 3)
        a = F.softmax((q @ k.transpose(-2, -1)) * (D // h)**-0.5, dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(B, Nq, D))


class Encoder(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = Attention(d, heads)
        self.bn = nn.BatchNorm1d(d)
        self.mlp = nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        x = x + self.attn(x, x, x)
        return x + self.mlp(self.bn(x.reshape(b * n, d)).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, 2 * d), nn.Linear(2 * d, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Decoder(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.self_attn, self.cross_attn = Attention(d, heads), Attention(d, heads)
        self.bn1, self.bn2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.mlp = Mlp(d)

    def forward(self, q, x):
        q = q + self.cross_attn(self.bn1(q), x, x)
        q = q + self.mlp(q)
        qb = self.bn2(q)
        return q + self.self_attn(qb, qb, qb)


class Refine(nn.Module):
    def __init__(self, a):
        super().__init__()
        d, c = a["mid_dim"], 32 * a["width"]
        self.d = d
        self.query = nn.Parameter(torch.randn(1, a["tokens"], d))
        self.token_norm = nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d))
        self.encoder = nn.ModuleList(Encoder(d, a["heads"])
                                     for _ in range(a["encoder_layers"]))
        self.decoder = nn.ModuleList(Decoder(d, a["heads"])
                                     for _ in range(a["decoder_layers"]))
        self.conv = nn.Sequential(nn.Conv2d(c, d, 1), nn.BatchNorm2d(d))
        self.proj = nn.Sequential(nn.Linear(d * a["tokens"], a["out_dim"]),
                                  nn.BatchNorm1d(a["out_dim"]))

    def local(self, x):
        """LFSA: backbone output [B, C, h, w] to tokens [B, h*w, D]."""
        B, _, H, W = x.shape
        x = self.conv(x).reshape(B, self.d, H * W).permute(0, 2, 1)
        for e in self.encoder:
            x = e(x)
        return x

    def head(self, x):
        """Local features [B, N, D] to the descriptor, unnormalised."""
        B = x.shape[0]
        q = self.query.repeat(B, 1, 1)
        att = F.softmax(torch.bmm(q, x.permute(0, 2, 1)), dim=1)
        t = self.token_norm(torch.bmm(att, x))
        for dec in self.decoder:
            t = dec(t, x)
        return self.proj(t.reshape(B, -1))


class Token(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.backbone = Backbone(a["depth"], a["width"])
        self.tr = Refine(a)
        if a["classes"]:
            self.classifier = nn.Module()
            self.classifier.weight = nn.Parameter(
                torch.randn(a["classes"], a["out_dim"]))


def calibration_images(g, n=4, h=160, w=128):
    """Images like photographs in the statistics that matter here: smooth
    colour blobs plus grain, ImageNet-normalised."""
    base = torch.rand(n, 3, h // 16 + 1, w // 16 + 1, generator=g)
    x = F.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)
    x = (0.8 * x + 0.2 * torch.rand(n, 3, h, w, generator=g)).clamp(0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def randomise(model, a, seed):
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        with torch.no_grad():
            if ".bn" in name or "downsample.1" in name or "block1.1" in name \
                    or "conv.1" in name or "proj.1" in name or "norm.1" in name:
                if name.endswith("bn3.weight"):
                    # Residual branches damped, as in trained ResNets:
                    # a deep random net otherwise amplifies rounding
                    # beyond what float32 can compare.
                    p.copy_(torch.rand(p.shape, generator=g) * 0.3 + 0.1)
                elif name.endswith("weight"):
                    p.copy_(torch.rand(p.shape, generator=g) + 0.5)
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif name == "tr.query":
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
            elif p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    # Running statistics: each batch norm gets those of its own input in
    # eval mode, set by a hook just before it runs (so activations stay
    # near unit scale through 100 layers), then perturbed so that none is
    # the identity of its batch.
    model.eval()

    def calibrate(m, inputs):
        x = inputs[0].transpose(0, 1).reshape(inputs[0].shape[1], -1)
        mean, var = x.mean(1), x.var(1)
        sd = var.sqrt()
        m.running_mean.copy_(mean + 0.1 * sd * torch.randn(sd.shape, generator=g))
        m.running_var.copy_(var * (0.8 + 0.45 * torch.rand(sd.shape, generator=g)))
        m.num_batches_tracked.fill_(1000)

    hooks = [m.register_forward_pre_hook(calibrate) for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        model.tr.head(model.tr.local(model.backbone(calibration_images(g))))
    for h in hooks:
        h.remove()


def save(model, a, path, dtype=np.float32):
    meta = {"format": "tk-model",
            "backbone": "resnet%d" % a["depth"]}
    for k in FIELDS:
        v = a[k]
        meta[k] = ("%.9g" % v) if k.startswith("arcface") else str(int(v))
    tensors = {}
    for k, v in model.state_dict().items():
        tensors[k] = v.numpy().astype(np.int64 if v.dtype == torch.int64
                                      else dtype)
    tkio.write_frames(path, [(meta, tensors)])


def load(path):
    meta, tensors = tkio.read_frames(path)[0]
    a = {k: (float(meta[k]) if k.startswith("arcface") else int(meta[k]))
         for k in FIELDS}
    model = Token(a)
    sd = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    model.load_state_dict(sd, strict=True)
    return model.eval(), a


def normalise(img):
    if img.dtype == np.uint8:
        import torchvision.transforms as T
        tf = T.Compose([T.ToTensor(), T.Normalize(mean=[0.485, 0.456, 0.406],
                                                  std=[0.229, 0.224, 0.225])])
        return tf(np.array(img))
    return torch.from_numpy(np.array(img))


@torch.no_grad()
def run(model_path, images, local_path, desc_path, scales=None):
    model, a = load(model_path)
    labels = scales.split(",") if scales else ["1", "1.41421356", "0.70710678"]
    values = [float(s) for s in labels] if scales else SCALES
    locals_, descs = [], []
    for meta, t in tkio.read_frames(images):
        x = normalise(t["image"])[None]
        vec = torch.zeros(a["out_dim"])
        for s, label in zip(values, labels):
            xs = x.clone() if s == 1 else F.interpolate(
                x, scale_factor=s, mode="bilinear", align_corners=False)
            f = model.backbone(xs)
            loc = model.tr.local(f)
            m = dict(meta, scale=label, grid="%d,%d" % f.shape[2:])
            locals_.append((m, {"local": loc[0].numpy()}))
            vec += F.normalize(model.tr.head(loc), dim=-1)[0]
        vec /= len(values)
        m = {k: v for k, v in meta.items() if k not in ("scale", "grid")}
        descs.append((m, {"desc": F.normalize(vec, p=2, dim=0).numpy()}))
    tkio.write_frames(local_path, locals_)
    tkio.write_frames(desc_path, descs)


def main():
    torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "2")))
    cmd = sys.argv[1]
    if cmd == "make":
        spec, seed, out = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        a = parse_arch(spec)
        torch.manual_seed(seed)
        model = Token(a)
        randomise(model, a, seed)
        f16 = sys.argv[5:] == ["f16"]
        save(model, a, out, np.float16 if f16 else np.float32)
    elif cmd == "run":
        run(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
