#!/usr/bin/python3
"""mkbench.py - make the demo's mini landmark benchmark from real photographs.

    pipelines/mkbench.py --out DIR [--seed N] [size options]

Run it with Debian's Python (/usr/bin/python3 with python3-pil and
python3-numpy; pipelines/deps.sh installs them and the two wallpaper
packages the photographs come from, listed in pipelines/demo-photos.txt).
It writes, laid out like the real datasets so that the real pipelines read
it unchanged:

  DIR/NAME/jpg/*.jpg, DIR/NAME/gnd_NAME.pkl   evaluation set (revisitop)
  DIR/train/a/b/c/ID.jpg, DIR/train.csv,
  DIR/train_clean.csv                          training set (GLDv2)
  DIR/views.csv                                how every image was made

Each image is a view of a photograph through a random camera: a window
(zoom, crop, rotation, perspective), occluders pasted over it (patches of
other photographs), a photometric change (brightness, contrast,
saturation, gamma, colour cast) and a worse camera (blur, noise, JPEG
quality).  Every image is a pure function of (seed, kind, landmark, grade,
index): the same seed gives byte-identical files whatever --jobs, and
changing one count leaves the other images as they were.  See README, "The
demo benchmark".
"""
import argparse
import bisect
import hashlib
import io
import math
import multiprocessing
import os
import pickle
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

# Parallelism is mkbench's processes; OpenBLAS threads would only contend.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

PROG = "mkbench"
HERE = os.path.dirname(os.path.abspath(__file__))
KIND = {"query": 1, "db": 2, "distractor": 3, "train": 4, "noisy": 5}
GRADE = {"query": 0, "-": 0, "easy": 1, "hard": 2, "junk": 3}
ASPECTS = ((4, 3), (3, 2), (16, 10), (1, 1), (3, 4), (2, 3))
ASPECT_CDF = (0.3, 0.5, 0.65, 0.75, 0.9, 1.0)
TINY = (64, 96)  # long side of a tiny junk view


class Fail(Exception):
    """An error for the one-line message; status 1 usage, 2 data, 3 I/O."""

    def __init__(self, msg, status):
        super().__init__(msg, status)  # both in args: it crosses processes
        self.status = status

    def __str__(self):
        return self.args[0]


# ---- geometry: windows are quadrilaterals in base-image pixels ----

# The geometry is plain Python arithmetic, not NumPy's linear algebra:
# OpenBLAS's and LAPACK's results depend on the kernels they pick by CPU,
# and a last bit there decided a view now and then, so that the
# benchmark's bytes were not the same on every machine.

def area(poly):
    if len(poly) < 3:
        return 0.0
    s = 0.0
    for (x0, y0), (x1, y1) in zip(poly, list(poly[1:]) + [poly[0]]):
        s += float(x0) * float(y1) - float(y0) * float(x1)
    return 0.5 * abs(s)


def clip(poly, box):
    """Sutherland-Hodgman: the convex polygon poly cut to box x0,y0,x1,y1."""
    x0, y0, x1, y1 = box
    edges = ((0, x0, 1), (0, x1, -1), (1, y0, 1), (1, y1, -1))
    out = [tuple(p) for p in poly]
    for axis, lim, sign in edges:
        if not out:
            break
        pts, out = out, []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            cin = sign * (cur[axis] - lim) >= 0
            pin = sign * (prev[axis] - lim) >= 0
            if cin != pin:
                t = (lim - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]),
                            prev[1] + t * (cur[1] - prev[1])))
            if cin:
                out.append(cur)
    return out


def homography(src, dst):
    """3x3 H with H @ (x, y, 1) ~ (X, Y, 1) for the four point pairs."""
    a, b = [], []
    for (x, y), (X, Y) in zip(src, dst):
        a.append((x, y, 1, 0, 0, 0, -x * X, -y * X))
        a.append((0, 0, 0, x, y, 1, -x * Y, -y * Y))
        b += (X, Y)
    h = solve([[float(v) for v in r] for r in a], [float(v) for v in b])
    return np.array(h + [1.0], np.float64).reshape(3, 3)


def solve(a, b):
    """x with a x = b: Gaussian elimination with partial pivoting."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for k in range(n):
        piv = max(range(k, n), key=lambda i: abs(m[i][k]))
        if m[piv][k] == 0:
            raise np.linalg.LinAlgError("singular matrix")
        m[k], m[piv] = m[piv], m[k]
        for i in range(k + 1, n):
            f = m[i][k] / m[k][k]
            for j in range(k, n + 1):
                m[i][j] -= f * m[k][j]
    x = [0.0] * n
    for i in reversed(range(n)):
        t = m[i][n]
        for j in range(i + 1, n):
            t -= m[i][j] * x[j]
        x[i] = t / m[i][i]
    return x


def inverse3(h):
    """The inverse of a 3x3 matrix, by its adjugate."""
    (a, b, c), (d, e, f), (g, k, l) = [[float(v) for v in r] for r in h]
    adj = [[e * l - f * k, c * k - b * l, b * f - c * e],
           [f * g - d * l, a * l - c * g, c * d - a * f],
           [d * k - e * g, b * g - a * k, a * e - b * d]]
    det = a * adj[0][0] + b * adj[1][0] + c * adj[2][0]
    return np.array([[v / det for v in r] for r in adj], np.float64)


def project(h, pts):
    h = [[float(v) for v in r] for r in h]
    p = [[r[0] * x + r[1] * y + r[2] for r in h]
         for x, y in ((float(x), float(y)) for x, y in pts)]
    p = np.array(p, np.float64).reshape(-1, 3)
    return p[:, :2] / p[:, 2:], p[:, 2]


def corners(box):
    x0, y0, x1, y1 = box
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


# ---- the photographs ----

class Photo:
    def __init__(self, role, name, box, path):
        self.role, self.name, self.box, self.path = role, name, box, path
        self.levels = None  # base image, then halved until small

    def load(self, base):
        try:
            im = Image.open(self.path)
            w, h = im.size
            s = base / max(w, h)
            if s < 1:  # let the JPEG decoder scale by 1/2, 1/4, 1/8 first
                im.draft("RGB", (math.ceil(w * s), math.ceil(h * s)))
            im = im.convert("RGB")
            if max(im.size) > base:
                im = im.resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS)
        except FileNotFoundError:
            raise Fail(f"{self.path}: no such photograph (pipelines/deps.sh "
                       "installs mate-backgrounds and "
                       "plasma-workspace-wallpapers)", 3)
        except OSError as e:
            raise Fail(f"{self.path}: cannot read: {e}", 2)
        self.levels = [im]
        while min(self.levels[-1].size) >= 128:
            self.levels.append(self.levels[-1].reduce(2))
        return self

    @property
    def size(self):
        return self.levels[0].size

    def region(self):
        """The landmark's box in base pixels."""
        w, h = self.size
        f = self.box or (0, 0, 1, 1)
        return (f[0] * w, f[1] * h, f[2] * w, f[3] * h)

    def palette(self):
        """Mean and deviation of the landmark region's Y, Cb, Cr."""
        lv = self.levels[-1]
        k = lv.size[0] / self.size[0]
        x = np.asarray(lv.crop([round(v * k) for v in self.region()]).convert("YCbCr"), np.float32)
        return x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0)

    def tiles(self, n):
        w, h = self.size
        return [(i * w / n, j * h / n, (i + 1) * w / n, (j + 1) * h / n)
                for j in range(n) for i in range(n)]


def read_photos(path):
    photos = []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise Fail(f"{path}: {e.strerror}", 3)
    with f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].split()
            if not line:
                continue
            bad = f"{path}:{n}: "
            if len(line) != 4 or line[0] not in ("eval", "train", "distractor"):
                raise Fail(bad + "expected: eval|train|distractor NAME BOX FILE", 2)
            role, name, box, file = line
            if not re.fullmatch(r"[a-z0-9_]+", name) or name in [p.name for p in photos]:
                raise Fail(bad + f"name '{name}' is not [a-z0-9_]+ or not unique", 2)
            if box == "-":
                box = None
            else:
                try:
                    box = tuple(float(v) for v in box.split(","))
                except ValueError:
                    box = ()
                if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
                    raise Fail(bad + "box is not x0,y0,x1,y1 fractions with x0<x1, y0<y1", 2)
                if (box[2] - box[0]) * (box[3] - box[1]) > 0.6:
                    raise Fail(bad + "box covers more than 60% of the photograph: no room for context", 2)
            photos.append(Photo(role, name, box, file))
    return photos


# ---- one view ----

def sample_pose(rng, strong, rot_max, persp_max):
    if strong:
        return (rng.choice((-1, 1)) * rng.uniform(8, 15), rng.uniform(0.08, 0.15))
    return rng.uniform(-rot_max, rot_max), rng.uniform(0, persp_max)


# Window classes: area relative to the landmark region, how far its centre
# may stray from the region's (fraction of the region's size; None:
# anywhere in the photograph; "contain": anywhere the window contains the
# region), the mild pose, and what the visible fraction of the landmark
# (vis) and the landmark's share of the image must be.
WINDOWS = {
    "query":   dict(a=(1.3, 2.4), d="contain", rot=4, persp=0.03, vis=(0.98, 1), share=(0.25, 0.8)),
    "easy":    dict(a=(0.75, 1.5), d=0.12, rot=5, persp=0.04, vis=(0.7, 1), share=(0.55, 1)),
    "zoomin":  dict(a=(0.25, 0.5), d=0.3, rot=5, persp=0.04, vis=(0.2, 0.55), share=(0.9, 1)),
    "zoomout": dict(a=(2.5, 4.5), d="contain", rot=5, persp=0.04, vis=(0.9, 1), share=(0.18, 0.45)),
    "partial": dict(a=(0.4, 1.2), d=None, rot=5, persp=0.04, vis=(0.03, 0.18), share=(0, 1)),
    "scene":   dict(a=(0.15, 0.9), d=None, rot=5, persp=0.04, vis=(0, 1), share=(0, 1)),
    "tile":    dict(a=(0.5, 1.0), d=0.15, rot=5, persp=0.04, vis=(0.5, 1), share=(0.75, 1)),
}


def sample_window(rng, photo, region, size, kind, strong_pose, what):
    """Rejection-sample an output size and a window of class kind: (size,
    homography output->base, landmark polygon in the output, visible
    fraction, share, rot, persp)."""
    win = WINDOWS[kind]
    w, h = photo.size
    rx0, ry0, rx1, ry1 = region
    rw, rh = rx1 - rx0, ry1 - ry0
    # No window larger than the photograph: a is capped by the room there is.
    amax = min(win["a"][1], 0.95 * w * h / (rw * rh))
    for _ in range(20000):
        ow, oh = out = out_size(rng, size)
        a = rng.uniform(win["a"][0], max(win["a"][0], amax)) * rw * rh
        ww = math.sqrt(a * ow / oh)
        wh = a / ww
        if win["d"] is None:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        elif win["d"] == "contain":
            lo = (max(rx1 - ww / 2, ww / 2), max(ry1 - wh / 2, wh / 2))
            hi = (min(rx0 + ww / 2, w - ww / 2), min(ry0 + wh / 2, h - wh / 2))
            if lo[0] > hi[0] or lo[1] > hi[1]:
                continue
            cx, cy = rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1])
        else:
            cx = (rx0 + rx1) / 2 + rng.uniform(-win["d"], win["d"]) * rw
            cy = (ry0 + ry1) / 2 + rng.uniform(-win["d"], win["d"]) * rh
        rot, persp = sample_pose(rng, strong_pose, win["rot"], win["persp"])
        c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
        quad = []
        for ux, uy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            x = ux * ww / 2 + rng.uniform(-persp, persp) * ww
            y = uy * wh / 2 + rng.uniform(-persp, persp) * wh
            quad.append((cx + c * x - s * y, cy + s * x + c * y))
        if not all(0 <= x <= w and 0 <= y <= h for x, y in quad):
            continue
        vis = area(clip(quad, region)) / (rw * rh)
        if not win["vis"][0] <= vis <= win["vis"][1]:
            continue
        hm = homography(corners((0, 0, ow, oh)), quad)
        lm, z = project(inverse3(hm), corners(region))
        if (z <= 0).any():  # the region crosses the horizon: not a camera
            continue
        lm = clip(lm, (0, 0, ow, oh))
        share = area(lm) / (ow * oh)
        if not win["share"][0] <= share <= win["share"][1]:
            continue
        return out, hm, lm, vis, share, rot, persp
    raise Fail(f"{what}: no {kind} view fits in the photograph "
               "(landmark box too large or too close to an edge?)", 2)


def warp(photo, hm, out):
    """The window seen by the camera, from the pyramid level whose pixels are
    closest above the output's, so that bicubic sampling never shrinks by 2x
    or more."""
    ow, oh = out
    quad, _ = project(hm, corners((0, 0, ow, oh)))
    scale = math.sqrt(area(quad) / (ow * oh))
    lv = min(max(0, int(math.floor(math.log2(max(scale, 1))))), len(photo.levels) - 1)
    h = hm * np.array((0.5 ** lv, 0.5 ** lv, 1.0))[:, None]
    h = h / h[2, 2]
    return photo.levels[lv].transform(out, Image.Transform.PERSPECTIVE, tuple(h.ravel()[:8]),
                                      Image.Resampling.BICUBIC)


def occlude(rng, img, lm, target, pool):
    """Paste 1-3 patches of photographs from pool over the landmark until the
    occluded fraction of its visible part lies in target; returns it."""
    ow, oh = img.size
    m = Image.new("L", (ow, oh))
    ImageDraw.Draw(m).polygon([tuple(p) for p in lm], fill=255)
    lmask = np.asarray(m) > 0
    total = lmask.sum()
    xs, ys = zip(*lm)
    bx0, by0, bx1, by1 = min(xs), min(ys), max(xs), max(ys)
    heavy = target[0] >= 0.5
    for _ in range(500):
        occ = Image.new("L", (ow, oh))
        draw = ImageDraw.Draw(occ)
        shapes = []
        for _ in range(rng.integers(1, 4) if heavy else 1):
            f = math.sqrt(rng.uniform(*target)) * (1.3 if heavy else 1.0)
            r = math.exp(rng.uniform(-0.7, 0.7))
            sw = max(4, f * (bx1 - bx0) * math.sqrt(r))
            sh = max(4, f * (by1 - by0) / math.sqrt(r))
            cx, cy = rng.uniform(bx0, bx1), rng.uniform(by0, by1)
            box = [round(cx - sw / 2), round(cy - sh / 2), round(cx + sw / 2), round(cy + sh / 2)]
            ellipse = rng.random() < 0.5
            (draw.ellipse if ellipse else draw.rectangle)(box, fill=255)
            shapes.append((box, ellipse))
        frac = (lmask & (np.asarray(occ) > 0)).sum() / total
        if target[0] <= frac <= target[1]:
            break
    else:
        return None
    for box, ellipse in shapes:
        src = pool[rng.integers(len(pool))]
        lvl = src.levels[min(1, len(src.levels) - 1)]
        bw, bh = box[2] - box[0], box[3] - box[1]
        k = min(lvl.size[0] / bw, lvl.size[1] / bh, rng.uniform(1, 2.5))
        cw, ch = bw * k, bh * k
        x0 = rng.uniform(0, max(0.0, lvl.size[0] - cw))
        y0 = rng.uniform(0, max(0.0, lvl.size[1] - ch))
        patch = lvl.resize((bw, bh), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
        mask = Image.new("L", (bw, bh))
        d = ImageDraw.Draw(mask)
        (d.ellipse if ellipse else d.rectangle)([0, 0, bw - 1, bh - 1], fill=255)
        img.paste(patch, (box[0], box[1]), mask)
    return frac


def recolour(img, palette):
    """Give img the colour statistics of another landmark (Reinhard's
    transfer, in YCbCr): a distractor of the same stone as the landmarks."""
    mean, std = palette
    x = np.asarray(img.convert("YCbCr"), np.float32).reshape(-1, 3)
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1) * std + mean
    x = np.rint(np.clip(x, 0, 255)).astype(np.uint8).reshape(img.size[1], img.size[0], 3)
    return Image.fromarray(x, "YCbCr").convert("RGB")


def photometric(rng, strong):
    if strong:
        return dict(bright=rng.choice((rng.uniform(0.4, 0.65), rng.uniform(1.35, 1.7))),
                    contrast=rng.choice((rng.uniform(0.5, 0.7), rng.uniform(1.3, 1.6))),
                    sat=rng.uniform(0.3, 1.7), gamma=rng.uniform(0.65, 1.5),
                    cast=rng.uniform(-0.15, 0.15, 3))
    return dict(bright=rng.uniform(0.85, 1.15), contrast=rng.uniform(0.85, 1.15),
                sat=rng.uniform(0.8, 1.2), gamma=rng.uniform(0.9, 1.1),
                cast=rng.uniform(-0.04, 0.04, 3))


def camera(rng, strong):
    if strong:
        mode = rng.integers(3)  # blur, noise, or both
        return dict(blur=rng.uniform(1.2, 2.5) if mode != 1 else 0.0,
                    noise=rng.uniform(8, 16) if mode != 0 else 0.0,
                    quality=int(rng.integers(15, 41)))
    return dict(blur=rng.uniform(0.3, 0.7) if rng.random() < 0.3 else 0.0,
                noise=rng.uniform(0, 3), quality=int(rng.integers(80, 96)))


def luma(x):
    """Rec. 601 luma of x [..., 3], one multiply and add at a time: the
    same floats on every CPU (a matrix product's depend on OpenBLAS's
    kernels)."""
    w = np.float32((0.299, 0.587, 0.114))
    return x[..., 0] * w[0] + x[..., 1] * w[1] + x[..., 2] * w[2]


def develop(rng, img, p, c):
    # The gamma curve as a table of the 256 levels, each from libm's pow:
    # NumPy's float32 power takes other code with AVX-512 than without,
    # which rounded some pixels otherwise.
    gamma = np.float32([math.pow(v / 255, p["gamma"]) for v in range(256)])
    x = gamma[np.asarray(img)]
    x = x * (np.float32(p["bright"]) * (1 + p["cast"].astype(np.float32)))
    y = luma(x)
    m = y.mean()
    x = (x - m) * np.float32(p["contrast"]) + m
    y = luma(x)[..., None]
    x = y + (x - y) * np.float32(p["sat"])
    img = Image.fromarray(np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8))
    if c["blur"] > 0:
        img = img.filter(ImageFilter.GaussianBlur(c["blur"]))
    if c["noise"] > 0:
        x = np.asarray(img, np.float32)
        x = x + np.float32(c["noise"]) * rng.standard_normal(x.shape, np.float32)
        img = Image.fromarray(np.rint(np.clip(x, 0, 255)).astype(np.uint8))
    return img


def out_size(rng, size):
    aw, ah = ASPECTS[bisect.bisect(ASPECT_CDF, rng.random())]
    if aw >= ah:
        return size, round(size * ah / aw)
    return round(size * aw / ah), size


# Hard views make one or two of these factors strong, the rest mild, so a
# hard view is never an easy one by chance.
FACTORS = ("zoom", "pose", "light", "camera", "occlusion")


def plan(rng, job):
    """What the view is: window class, strong factors, junk mode, occlusion."""
    grade = job["grade"]
    strong, mode, occ = (), "", None
    if grade == "hard":
        strong = tuple(sorted(rng.choice(FACTORS, rng.integers(1, 3), replace=False)))
    if grade == "junk":  # a part of a whole photograph is not junk of it
        modes = ("tiny", "occluded") if job["whole"] else ("tiny", "occluded", "partial")
        mode = modes[rng.integers(len(modes))]
    if job["kind"] in ("query",):
        win = "query"
    elif job["kind"] == "distractor":
        win = "scene"
        strong = tuple(f for f in ("pose", "light", "camera") if rng.random() < 0.3)
        if rng.random() < 0.2:
            occ = (0.05, 0.3)
    elif mode == "partial":
        win = "partial"
    elif "zoom" in strong:
        out = job["kind"] == "db" and job["room"] >= 3 and rng.random() < 0.4
        win = "zoomout" if out else "zoomin"
    else:
        win = "tile" if job["kind"] in ("train", "noisy") else "easy"
    if "occlusion" in strong:
        occ = (0.2, 0.45)
    elif mode == "occluded":
        occ = (0.6, 0.9)
    elif grade in ("easy", "hard") and rng.random() < 0.25:
        occ = (0.02, 0.1)
    return win, strong, mode, occ


def make_view(job):
    """Render job (a dict from jobs()), write its JPEG, return its record."""
    rng = np.random.default_rng(job["seed"])
    photo = PHOTOS[job["photo"]]
    win, strong, mode, occ_target = plan(rng, job)
    what = f"{photo.name} ({job['kind']} {job['index']})"
    for _ in range(100):
        out, hm, lm, vis, share, rot, persp = sample_window(
            rng, photo, job["region"], SIZE, win, "pose" in strong, what)
        img = warp(photo, hm, out)
        occ = 0.0
        if occ_target:
            occ = occlude(rng, img, lm, occ_target, [PHOTOS[i] for i in job["occluders"]])
            if occ is None:
                continue
        break
    else:
        raise Fail(f"{what}: cannot occlude {occ_target[0]:.0%}-{occ_target[1]:.0%} of the landmark", 2)
    if job["palette"] is not None:
        img = recolour(img, PHOTOS[job["palette"]].palette())
    p = photometric(rng, "light" in strong)
    c = camera(rng, "camera" in strong)
    img = develop(rng, img, p, c)
    if mode == "tiny":
        n = min(int(rng.integers(TINY[0], TINY[1] + 1)), SIZE // 2)
        k = n / max(out)
        img = img.resize((max(1, round(out[0] * k)), max(1, round(out[1] * k))), Image.Resampling.LANCZOS)
        lm = [(x * k, y * k) for x, y in lm]
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=c["quality"])
    path = os.path.join(TMP, job["path"])
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    xs, ys = zip(*lm) if lm else ((0,), (0,))
    pal = "-" if job["palette"] is None else PHOTOS[job["palette"]].name
    return dict(path=job["path"], kind=job["kind"], landmark=job["landmark"],
                grade=job["grade"], strong="+".join(strong) or "-", junk=mode or "-",
                palette=pal,
                width=img.size[0], height=img.size[1], visible=vis, share=share,
                occluded=occ, rotation=rot, perspective=persp, brightness=p["bright"],
                contrast=p["contrast"], saturation=p["sat"], gamma=p["gamma"],
                blur=c["blur"], noise=c["noise"], quality=c["quality"],
                bbx=[float(round(v, 1)) for v in (min(xs), min(ys), max(xs), max(ys))])


# ---- the benchmark ----

def digest(*parts):
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def jobs(a, photos, ev, tr, ds):
    """Every image to make, in a fixed order, with its own seed."""
    out, names = [], set()

    def add(kind, li, index, photo, region, landmark, grade, occluders, palette=None):
        # Each grade counts its own views: --easy 9 leaves the hard ones be.
        seed = (a.seed, KIND[kind], li, GRADE[grade], index)
        if kind in ("train", "noisy"):
            key = digest(*seed)[:16]
            path = f"train/{key[0]}/{key[1]}/{key[2]}/{key}.jpg"
        else:
            n = int(digest(*seed), 16) % 1000000
            while f"{photos[photo].name}_{n:06d}" in names:
                n = (n + 1) % 1000000
            key = f"{photos[photo].name}_{n:06d}"
            path = f"{a.name}/jpg/{key}.jpg"
        if key in names:
            raise Fail(f"image id {key} drawn twice; try another --seed", 2)
        names.add(key)
        size = photos[photo].size
        whole = region == (0, 0) + size
        room = size[0] * size[1] / ((region[2] - region[0]) * (region[3] - region[1]))
        out.append(dict(kind=kind, index=index, photo=photo, region=region, key=key,
                        path=path, landmark=landmark, grade=grade, seed=seed,
                        occluders=occluders, whole=whole, room=room, palette=palette))

    for li, i in enumerate(ev):
        for k in range(a.queries):
            add("query", li, k, i, photos[i].region(), photos[i].name, "query", ds)
        for g, n in (("easy", a.easy), ("hard", a.hard), ("junk", a.junk)):
            for k in range(n):
                add("db", li, k, i, photos[i].region(), photos[i].name, g, ds)
    for k in range(a.distractors):
        i = ds[k % len(ds)]
        rng = np.random.default_rng((a.seed, KIND["distractor"], 0, k))
        pal = ev[rng.integers(len(ev))] if rng.random() < a.recolour else None
        add("distractor", 0, k, i, corners_box(photos[i]), photos[i].name, "-",
            [j for j in ds if j != i] or ds, pal)
    li = 0
    for i in tr:
        others = [j for j in tr if j != i] or tr
        for t, region in enumerate(photos[i].tiles(a.tiles)):
            name = photos[i].name if a.tiles == 1 else f"{photos[i].name}.{t}"
            for k in range(a.train_views):
                rng = np.random.default_rng((a.seed, KIND["train"], li, k))
                add("train", li, k, i, region, name, ("easy", "hard")[rng.integers(2)], others)
            for k in range(a.noisy):
                add("noisy", li, k, i, region, name, "junk", others)
            li += 1
    return out


def corners_box(photo):
    return (0, 0) + photo.size


def write_gnd(a, recs, tmp):
    db = [r for r in recs if r["kind"] in ("db", "distractor")]
    db.sort(key=lambda r: digest(a.seed, "order", r["key"]))
    pos = {r["key"]: i for i, r in enumerate(db)}
    queries = [r for r in recs if r["kind"] == "query"]
    gnd = []
    for q in queries:
        mine = [r for r in db if r["kind"] == "db" and r["landmark"] == q["landmark"]]
        g = {"bbx": q["bbx"]}
        for grade in ("easy", "hard", "junk"):
            g[grade] = sorted(pos[r["key"]] for r in mine if r["grade"] == grade)
        gnd.append(g)
    d = {"gnd": gnd, "imlist": [r["key"] for r in db], "qimlist": [q["key"] for q in queries]}
    with open(os.path.join(tmp, a.name, f"gnd_{a.name}.pkl"), "wb") as f:
        pickle.dump(d, f, protocol=3)
    return len(db)


def write_train(a, recs, tmp, photos):
    train = [r for r in recs if r["kind"] in ("train", "noisy")]
    names = sorted({r["landmark"] for r in train}, key=lambda n: digest(a.seed, "landmark", n))
    # GLDv2 landmark ids are sparse integers; tk-list relabels them.
    ids = {n: int(digest(a.seed, "id", n), 16) % 200000 for n in names}
    if len(set(ids.values())) != len(ids):
        raise Fail("two training landmarks drew the same id; try another --seed", 2)
    src = {r["key"]: "file://" + photos[r["photo"]].path for r in train}
    with open(os.path.join(tmp, "train.csv"), "w", newline="\n") as f:
        f.write("id,url,landmark_id\n")
        for r in sorted(train, key=lambda r: r["key"]):
            f.write(f"{r['key']},{src[r['key']]},{ids[r['landmark']]}\n")
    with open(os.path.join(tmp, "train_clean.csv"), "w", newline="\n") as f:
        f.write("landmark_id,images\n")
        for n in sorted(names, key=ids.get):
            keys = sorted(r["key"] for r in train if r["landmark"] == n and r["kind"] == "train")
            f.write(f"{ids[n]},{' '.join(keys)}\n")


COLUMNS = ("path kind landmark grade strong junk palette width height visible share occluded "
           "rotation perspective brightness contrast saturation gamma blur noise quality").split()


def write_views(recs, tmp):
    with open(os.path.join(tmp, "views.csv"), "w", newline="\n") as f:
        f.write(",".join(COLUMNS) + "\n")
        for r in recs:
            f.write(",".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c])
                             for c in COLUMNS) + "\n")


def init_worker(photos, size, tmp):
    global PHOTOS, SIZE, TMP
    PHOTOS, SIZE, TMP = photos, size, tmp


def generate(a):
    t0 = time.time()
    out = os.path.abspath(a.out)
    if os.path.exists(out) and not a.force:
        raise Fail(f"{a.out} exists (--force replaces it)", 1)
    photos = read_photos(a.photos)
    roles = {r: sum(p.role == r for p in photos) for r in ("eval", "train", "distractor")}
    if a.eval_landmarks > roles["eval"] or a.train_photos > roles["train"]:
        raise Fail(f"{a.photos} lists {roles['eval']} eval and {roles['train']} train "
                   "photographs", 1)
    if not roles["distractor"]:
        raise Fail(f"{a.photos} lists no distractor photograph (the occluders)", 2)
    ev = [i for i, p in enumerate(photos) if p.role == "eval"][:a.eval_landmarks]
    tr = [i for i, p in enumerate(photos) if p.role == "train"][:a.train_photos]
    ds = [i for i, p in enumerate(photos) if p.role == "distractor"]
    # Base images 3x the output size, so that a zoomed-in window keeps detail.
    with ThreadPoolExecutor(a.jobs) as ex:
        list(ex.map(lambda i: photos[i].load(3 * a.size), sorted(ev + tr + ds)))
    todo = jobs(a, photos, ev, tr, ds)
    parent = os.path.dirname(out)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise Fail(f"{parent}: {e.strerror}", 3)
    tmp = f"{out}.tmp.{os.getpid()}"
    try:
        for d in sorted({os.path.dirname(j["path"]) for j in todo} | {a.name}):
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        if a.jobs > 1:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(a.jobs, init_worker, (photos, a.size, tmp)) as pool:
                views = pool.map(make_view, todo, chunksize=4)
        else:
            init_worker(photos, a.size, tmp)
            views = [make_view(j) for j in todo]
        recs = [dict(j, **v) for j, v in zip(todo, views)]
        ndb = write_gnd(a, recs, tmp)
        write_train(a, recs, tmp, photos)
        write_views(recs, tmp)
        if os.path.exists(out):
            old = f"{out}.old.tmp.{os.getpid()}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Fail(f"{e.filename or a.out}: {e.strerror}", 3)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not a.quiet:
        n = {k: sum(r["kind"] == k for r in recs) for k in KIND}
        g = {k: sum(r["kind"] == "db" and r["grade"] == k for r in recs) for k in ("easy", "hard", "junk")}
        ntl = len({r["landmark"] for r in recs if r["kind"] == "train"})
        print(f"{PROG}: {a.out}/{a.name}: {len(ev)} landmarks, {n['query']} queries, "
              f"{ndb} database images ({g['easy']} easy, {g['hard']} hard, {g['junk']} junk, "
              f"{n['distractor']} distractors); {a.out}/train: {ntl} landmarks, "
              f"{n['train']} clean + {n['noisy']} noisy images; {time.time() - t0:.1f} s",
              file=sys.stderr)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        print(f"{PROG}: error: {message}", file=sys.stderr)
        sys.exit(1)


def count(lo):
    def parse(s):
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{s}' is not an integer")
        if v < lo:
            raise argparse.ArgumentTypeError(f"{v} is below {lo}")
        return v
    return parse


def fraction(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is not a number")
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"{v} is not in [0, 1]")
    return v


def parse_args(argv):
    p = Parser(prog="mkbench.py", description=(
        "Make the demo's mini landmark benchmark (revisitop evaluation set + GLDv2 "
        "training set) from real photographs. Same seed => byte-identical files."),
        epilog="The defaults make 8 evaluation landmarks (40 queries; 160 views + 300 "
               "distractors in the database) and 10 training landmarks (400 views + 20 "
               "noisy ones), 920 JPEGs of at most 512 px.")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to create")
    p.add_argument("--seed", type=count(0), default=0, help="random seed (0)")
    p.add_argument("--name", default="demo", help="evaluation set name: DIR/NAME/gnd_NAME.pkl (demo)")
    p.add_argument("--photos", default=os.path.join(HERE, "demo-photos.txt"), metavar="FILE",
                   help="photograph list (pipelines/demo-photos.txt)")
    p.add_argument("--size", type=count(64), default=512, metavar="PX",
                   help="longer side of every image but tiny junk (512)")
    p.add_argument("--eval-landmarks", type=count(1), default=8, metavar="N",
                   help="evaluation landmarks: the first N eval photographs (8)")
    p.add_argument("--queries", type=count(1), default=5, metavar="N", help="queries per landmark (5)")
    p.add_argument("--easy", type=count(0), default=8, metavar="N", help="easy views per landmark (8)")
    p.add_argument("--hard", type=count(0), default=8, metavar="N", help="hard views per landmark (8)")
    p.add_argument("--junk", type=count(0), default=4, metavar="N", help="junk views per landmark (4)")
    p.add_argument("--distractors", type=count(0), default=300, metavar="N",
                   help="database views of the distractor photographs (300)")
    p.add_argument("--recolour", type=fraction, default=0.5, metavar="F",
                   help="fraction of distractors given an evaluation landmark's colours (0.5)")
    p.add_argument("--train-photos", type=count(1), default=10, metavar="N",
                   help="training photographs: the first N train rows (10)")
    p.add_argument("--tiles", type=count(1), default=1, metavar="N",
                   help="split each training photograph into NxN landmarks (1)")
    p.add_argument("--train-views", type=count(1), default=40, metavar="N",
                   help="views per training landmark, in train_clean.csv (40)")
    p.add_argument("--noisy", type=count(0), default=2, metavar="N",
                   help="junk views per training landmark, in train.csv only (2)")
    p.add_argument("--jobs", type=count(1), default=len(os.sched_getaffinity(0)), metavar="N",
                   help="processes (all cores)")
    p.add_argument("--force", action="store_true", help="replace DIR if it exists")
    p.add_argument("--quiet", action="store_true", help="no summary on stderr")
    a = p.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_]+", a.name):
        p.error(f"--name '{a.name}' is not [A-Za-z0-9_]+")
    if a.easy + a.hard == 0:
        p.error("--easy and --hard are both 0: queries would have no positives")
    if a.tiles > 4:
        p.error("--tiles is at most 4")
    if a.size > 4096:
        p.error("--size is at most 4096")
    return a


def main(argv):
    a = parse_args(argv)
    try:
        generate(a)
    except Fail as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
