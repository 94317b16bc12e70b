"""augment_ref - checks tk-augment against torchvision 0.14 on PIL images.

  python3 augment_ref.py ops IN OUT SIZE [val]
      OUT is tk-augment --params (--val) of IN: every frame must equal
      torchvision's functional ops applied with the recorded parameters
      (resized_crop bilinear, hflip, adjust_brightness/contrast/saturation/
      hue in the recorded order), or Resize(int(SIZE*8/7), BICUBIC) +
      CenterCrop(SIZE); metadata must pass through.
  python3 augment_ref.py dist OUT W H
      OUT is tk-augment --params of many W x H frames: the crop area
      fraction and log aspect ratio must follow the distribution of
      torchvision's RandomResizedCrop.get_params for the same image size
      (two-sample Kolmogorov-Smirnov), the jitter factors be uniform on
      torchvision's ranges, the flip and jitter rates be 1/2 and 0.8, and
      every order of the four colour ops appear about equally often.
  python3 augment_ref.py fallback IN OUT
      IN holds images too long or too tall for any of RandomResizedCrop's
      ten attempts to fit, OUT tk-augment --params of them: every crop
      must be torchvision's fallback, the centred crop at the nearest
      allowed aspect ratio."""
import math
import sys

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

import tkio


def parse_aug(s):
    out = {}
    for item in s.split():
        if "=" in item:
            k, v = item.split("=", 1)
            out[k] = v
    return out


def ops(inp, outp, size, val):
    fin, fout = tkio.read_frames(inp), tkio.read_frames(outp)
    assert len(fin) == len(fout), (len(fin), len(fout))
    worst = 0
    for i, ((mi, ti), (mo, to)) in enumerate(zip(fin, fout)):
        for k, v in mi.items():
            assert mo.get(k) == v, f"frame {i}: metadata {k} not passed on"
        img = Image.fromarray(ti["image"])
        p = parse_aug(mo["aug"])
        if val:
            ref = T.CenterCrop(size)(
                T.Resize(int(size * (8 / 7)), interpolation=T.InterpolationMode.BICUBIC)(img))
        else:
            x0, y0, x1, y1 = map(int, p["crop"].split(","))
            ref = F.resized_crop(img, y0, x0, y1 - y0, x1 - x0, [size, size],
                                 T.InterpolationMode.BILINEAR)
            if p["flip"] == "1":
                ref = F.hflip(ref)
            if p["jitter"] != "none":
                for op in p["jitter"]:
                    f = float(p[op])
                    ref = {"b": F.adjust_brightness, "c": F.adjust_contrast,
                           "s": F.adjust_saturation, "h": F.adjust_hue}[op](ref, f)
        ref = np.asarray(ref)
        got = to["image"]
        assert ref.shape == got.shape, (i, ref.shape, got.shape)
        d = int(np.abs(ref.astype(np.int16) - got.astype(np.int16)).max())
        if d:
            print(f"frame {i}: max |diff| {d} ({mo['aug']})")
        worst = max(worst, d)
    print(f"{len(fout)} frames ({'val' if val else 'train'}), "
          f"max |diff| against torchvision {worst}")
    return worst == 0


def ks(a, b):
    """Two-sample Kolmogorov-Smirnov statistic and its 0.1% critical
    value."""
    a, b = np.sort(a), np.sort(b)
    x = np.concatenate([a, b])
    d = np.max(np.abs(np.searchsorted(a, x, "right") / len(a) -
                      np.searchsorted(b, x, "right") / len(b)))
    n = len(a) * len(b) / (len(a) + len(b))
    return d, 1.95 / math.sqrt(n)


def dist(outp, W, H):
    frames = tkio.read_frames(outp)
    ps = [parse_aug(m["aug"]) for m, _ in frames]
    n = len(ps)
    ok = True
    boxes = np.array([list(map(int, p["crop"].split(","))) for p in ps])
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= W).all()
    assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= H).all()
    torch.manual_seed(0)
    img = Image.new("RGB", (W, H))
    ref = np.array([T.RandomResizedCrop.get_params(img, [0.2, 1.0], [3 / 4, 4 / 3])
                    for _ in range(4 * n)])
    rw, rh = ref[:, 3], ref[:, 2]
    for name, got, want in [
            ("area fraction", w * h / (W * H), rw * rh / (W * H)),
            ("log aspect ratio", np.log(w / h), np.log(rw / rh))]:
        d, crit = ks(got, want)
        print(f"{name}: range [{got.min():.4f}, {got.max():.4f}] "
              f"(torchvision [{want.min():.4f}, {want.max():.4f}]), "
              f"KS {d:.4f} (critical {crit:.4f})")
        ok &= d < crit
    flips = np.mean([p["flip"] == "1" for p in ps])
    jit = [p for p in ps if p["jitter"] != "none"]
    rate = len(jit) / n
    print(f"flip rate {flips:.4f} (0.5), jitter rate {rate:.4f} (0.8)")
    # 4.5 standard deviations of a binomial proportion.
    ok &= abs(flips - 0.5) < 4.5 * math.sqrt(0.25 / n)
    ok &= abs(rate - 0.8) < 4.5 * math.sqrt(0.16 / n)
    rng = np.random.default_rng(0)
    for k, lo, hi in [("b", 0.6, 1.4), ("c", 0.6, 1.4), ("s", 0.8, 1.2),
                      ("h", -0.1, 0.1)]:
        v = np.array([float(p[k]) for p in jit])
        d, crit = ks(v, rng.uniform(lo, hi, 4 * len(v)))
        print(f"jitter {k}: range [{v.min():.4f}, {v.max():.4f}] of "
              f"[{lo}, {hi}], KS against uniform {d:.4f} (critical {crit:.4f})")
        ok &= lo <= v.min() and v.max() <= hi and d < crit
    orders = {}
    for p in jit:
        orders[p["jitter"]] = orders.get(p["jitter"], 0) + 1
    e = len(jit) / 24
    chi2 = sum((orders.get(o, 0) - e) ** 2 / e for o in perms("bcsh"))
    # 23 degrees of freedom: P(chi2 > 49.7) = 0.001
    print(f"{len(orders)} of 24 orders seen, chi2 {chi2:.1f} (critical 49.7)")
    ok &= len(orders) == 24 and chi2 < 49.7
    return ok


def fallback(inp, outp):
    fin, fout = tkio.read_frames(inp), tkio.read_frames(outp)
    assert len(fin) == len(fout), (len(fin), len(fout))
    bad = 0
    for (_, tin), (m, _) in zip(fin, fout):
        H, W = tin["image"].shape[:2]
        img = Image.new("RGB", (W, H))
        want = set()
        for seed in range(3):  # no attempt fits: the same box whatever the draws
            torch.manual_seed(seed)
            want.add(T.RandomResizedCrop.get_params(img, [0.2, 1.0], [3 / 4, 4 / 3]))
        assert len(want) == 1, f"{W}x{H} is no fallback case: {want}"
        i, j, h, w = want.pop()
        x0, y0, x1, y1 = map(int, parse_aug(m["aug"])["crop"].split(","))
        if (x0, y0, x1, y1) != (j, i, j + w, i + h):
            print(f"{W}x{H}: crop {x0},{y0},{x1},{y1}, torchvision {j},{i},{j + w},{i + h}")
            bad += 1
    print(f"{len(fin)} crops of images no attempt fits: {bad} differ from torchvision's fallback")
    return bad == 0


def perms(s):
    if len(s) <= 1:
        return [s]
    return [c + p for i, c in enumerate(s) for p in perms(s[:i] + s[i + 1:])]


def main():
    if sys.argv[1] == "ops":
        ok = ops(sys.argv[2], sys.argv[3], int(sys.argv[4]),
                 len(sys.argv) > 5 and sys.argv[5] == "val")
    elif sys.argv[1] == "fallback":
        ok = fallback(sys.argv[2], sys.argv[3])
    else:
        ok = dist(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
