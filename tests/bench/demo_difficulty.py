"""demo_difficulty.py BENCH [NAME] [--cnn EPOCHS] - how hard the benchmark
pipelines/mkbench.py made is, before tk's own tools exist to say so.

Scores, by the revisitop protocol (mAP Easy/Medium/Hard; AP by the
trapezoid rule; junk removed), descriptors that need no training: a
512-bin colour histogram and a 16x16 grey thumbnail.  With --cnn E it also
trains a small CNN (four conv stages 16-128 wide, GeM, ArcFace s=30 m=0.2)
on BENCH's train_clean.csv for E epochs with torchvision's augmentations
and prints its mAP before training and every 3 epochs: a proxy for what
make demo can show, the demo's model being a reduced Token.

    /usr/bin/python3 tests/bench/demo_difficulty.py demo/bench [demo] [--cnn 9]

Needs /usr/bin/python3 with numpy and PIL (and torch, torchvision for
--cnn).  Not a test: it prints numbers for README."""
import argparse
import csv
import math
import os
import pickle
import time

import numpy as np
from PIL import Image


def average_precision(ranks, npos):
    """ranks: 0-based positions of the positives in the junk-free ranking."""
    ap = 0.0
    for j, r in enumerate(ranks):
        p0 = j / r if r > 0 else 1.0
        p1 = (j + 1) / (r + 1)
        ap += (p0 + p1) / 2 / npos
    return ap


def mean_ap(sim, gnd):
    out = {}
    for mode, pos_of, junk_of in (("E", ("easy",), ("junk", "hard")),
                                  ("M", ("easy", "hard"), ("junk",)),
                                  ("H", ("hard",), ("junk", "easy"))):
        aps = []
        for s, g in zip(sim, gnd):
            pos = {j for k in pos_of for j in g[k]}
            junk = {j for k in junk_of for j in g[k]}
            if not pos:
                continue
            order = [o for o in np.argsort(-s, kind="stable") if o not in junk]
            aps.append(average_precision([r for r, o in enumerate(order) if o in pos], len(pos)))
        out[mode] = 100 * np.mean(aps)
    return "E: {E:.2f}, M: {M:.2f}, H: {H:.2f}".format(**out)


def load(root, name, n, bbx=None):
    im = Image.open(os.path.join(root, name, "jpg", n + ".jpg")).convert("RGB")
    return im.crop([round(v) for v in bbx]) if bbx else im


def score(root, name, g, f):
    db = np.stack([f(load(root, name, n)) for n in g["imlist"]])
    q = np.stack([f(load(root, name, n, x["bbx"])) for n, x in zip(g["qimlist"], g["gnd"])])
    return mean_ap(q @ db.T, g["gnd"])


def histogram(im):
    a = np.asarray(im.resize((128, 96))) // 32
    h = np.sqrt(np.bincount((a[..., 0] * 64 + a[..., 1] * 8 + a[..., 2]).ravel(), minlength=512))
    return h / np.linalg.norm(h)


def thumbnail(im):
    a = np.asarray(im.convert("L").resize((16, 16)), np.float64).ravel()
    a -= a.mean()
    return a / max(np.linalg.norm(a), 1e-9)


def cnn(root, name, g, epochs):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision.transforms as T
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    rows = list(csv.reader(open(os.path.join(root, "train_clean.csv"))))[1:]
    items = [(os.path.join(root, "train", i[0], i[1], i[2], i + ".jpg"), c)
             for c, (_, ims) in enumerate(rows) for i in ims.split()]

    def stage(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, 2, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(True),
                             nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(True))

    body = nn.Sequential(stage(3, 16), nn.MaxPool2d(2), stage(16, 32), stage(32, 64), stage(64, 128))
    fc = nn.Linear(128, 128)
    w = nn.Parameter(torch.randn(len(rows), 128) * 0.01)

    def desc(x):
        f = body(x).clamp(min=1e-6).pow(3).mean((2, 3)).pow(1 / 3)
        return F.normalize(fc(f), dim=-1)

    norm = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])

    def evaluate():
        body.eval()
        with torch.no_grad():
            return score(root, name, g, lambda im: desc(norm(T.functional.to_tensor(im))[None])[0].numpy())

    print(f"cnn, untrained: {evaluate()}", flush=True)
    aug = T.Compose([T.RandomResizedCrop(224, scale=(0.2, 1)), T.RandomHorizontalFlip(),
                     T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), T.ToTensor(), norm])
    params = list(body.parameters()) + list(fc.parameters()) + [w]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4)
    images = [(Image.open(p).convert("RGB"), c) for p, c in items]
    for ep in range(epochs):
        body.train()
        t, total, perm = time.time(), 0.0, rng.permutation(len(images))
        for b in range(0, len(perm), 32):
            x = torch.stack([aug(images[i][0]) for i in perm[b:b + 32]])
            y = torch.tensor([images[i][1] for i in perm[b:b + 32]])
            cos = desc(x) @ F.normalize(w, dim=-1).T
            theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
            logits = 30 * torch.where(F.one_hot(y, len(rows)).bool(), torch.cos(theta + 0.2), cos)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        line = f"cnn, epoch {ep + 1}: loss {total / math.ceil(len(perm) / 32):.3f} ({time.time() - t:.0f} s)"
        if (ep + 1) % 3 == 0 or ep + 1 == epochs:
            line += f"; {evaluate()}"
        print(line, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bench")
    p.add_argument("name", nargs="?", default="demo")
    p.add_argument("--cnn", type=int, default=0, metavar="EPOCHS")
    a = p.parse_args()
    g = pickle.load(open(os.path.join(a.bench, a.name, f"gnd_{a.name}.pkl"), "rb"))
    print(f"colour histogram: {score(a.bench, a.name, g, histogram)}")
    print(f"16x16 grey thumbnail: {score(a.bench, a.name, g, thumbnail)}")
    if a.cnn:
        cnn(a.bench, a.name, g, a.cnn)


if __name__ == "__main__":
    main()
