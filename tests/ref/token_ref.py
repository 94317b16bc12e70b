"""token_ref - the Token model in PyTorch with the reference state_dict
names (backbone.block1..5, tr.*, classifier.weight), for the tests: written
from the paper's description and the reference's structure, with
torchvision's ResNet layout and the reference's initialisation.  Only
construction matters here (names, shapes, initial values); forward passes
live with the kernels' tests.

    model = token(depth=50, width=8, mid_dim=32, out_dim=32, heads=4,
                  classes=10)"""
import math

import torch
import torch.nn as nn


class Bottleneck(nn.Module):
    """torchvision's Bottleneck: stride in the 3x3 conv."""

    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        if downsample:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, planes * 4, 1, stride, bias=False),
                nn.BatchNorm2d(planes * 4))


class Backbone(nn.Module):
    """block1 = conv1, bn1, relu, maxpool; block2..5 = layer1..4."""

    def __init__(self, depth, width):
        super().__init__()
        blocks = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}[depth]
        self.block1 = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        cin = width
        for s, n in enumerate(blocks):
            planes = width << s
            layers = []
            for i in range(n):
                layers.append(Bottleneck(cin, planes, 2 if s and not i else 1,
                                         i == 0))
                cin = planes * 4
            setattr(self, "block%d" % (s + 2), nn.Sequential(*layers))
        # torchvision's ResNet initialisation (zero_init_residual False).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out",
                                        nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


class Attention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        for name in ("q", "k", "v", "proj"):
            lin = nn.Linear(dim, dim, bias=True)
            # The reference applies a truncated normal (std 0.02, cut at
            # +-2) to every linear with zero bias, then zeroes proj.
            nn.init.trunc_normal_(lin.weight, std=0.02, a=-2.0, b=2.0)
            nn.init.zeros_(lin.bias)
            setattr(self, name, lin)
        nn.init.zeros_(self.proj.weight)


class Encoder(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.attn = Attention(dim)
        self.bn = nn.BatchNorm1d(dim)
        self.mlp = nn.Linear(dim, dim)


class Mlp(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)


class Decoder(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.self_attn = Attention(dim)
        self.cross_attn = Attention(dim)
        self.bn1 = nn.LayerNorm(dim)
        self.bn2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim)


class Refine(nn.Module):
    def __init__(self, cin, mid_dim, tokens, enc_layers, dec_layers, out_dim):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, tokens, mid_dim))
        self.token_norm = nn.Sequential(nn.Linear(mid_dim, mid_dim),
                                        nn.LayerNorm(mid_dim))
        self.encoder = nn.ModuleList(Encoder(mid_dim) for _ in range(enc_layers))
        self.decoder = nn.ModuleList(Decoder(mid_dim) for _ in range(dec_layers))
        self.conv = nn.Sequential(nn.Conv2d(cin, mid_dim, 1),
                                  nn.BatchNorm2d(mid_dim))
        self.proj = nn.Sequential(nn.Linear(mid_dim * tokens, out_dim),
                                  nn.BatchNorm1d(out_dim))


class ArcFace(nn.Module):
    def __init__(self, dim, classes):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, dim))
        nn.init.xavier_uniform_(self.weight)


class Token(nn.Module):
    def __init__(self, depth=101, width=64, mid_dim=1024, tokens=4, heads=8,
                 enc_layers=1, dec_layers=2, out_dim=1024, classes=0):
        super().__init__()
        self.heads = heads
        self.backbone = Backbone(depth, width)
        self.tr = Refine(32 * width, mid_dim, tokens, enc_layers, dec_layers,
                         out_dim)
        if classes:
            self.classifier = ArcFace(out_dim, classes)


def token(**kw):
    return Token(**kw)


def arch_spec(depth=101, **kw):
    """The tk architecture spec of a Token(...) call."""
    spec = "r%d" % depth
    if kw:
        spec += ":" + ",".join("%s=%s" % (k, v) for k, v in sorted(kw.items()))
    return spec


def torchvision_to_tk(name):
    """A torchvision ResNet state_dict name as tk's backbone name; None for
    the fc layer, which tk drops."""
    first, _, rest = name.partition(".")
    if first == "conv1":
        return "backbone.block1.0." + rest
    if first == "bn1":
        return "backbone.block1.1." + rest
    if first.startswith("layer"):
        return "backbone.block%d.%s" % (int(first[5:]) + 1, rest)
    if first == "fc":
        return None
    raise ValueError(name)
