"""pil_load - the reference's image loading with PIL, for comparing
tk-decode against it.

reference(path, n, bbox): Dataset/ImageFromList.py of the reference:
    Image.open(f).convert('RGB'), crop(bbox), thumbnail((s, s), LANCZOS)
    with s = n, or n * max(crop size) / max(full size) for a crop.
damaged(path, n, bbox): reference() with ImageFile.LOAD_TRUNCATED_IMAGES
    set, as the reference's loader sets it: damaged JPEGs load
    (tk-decode --damaged).
draft(path, n, bbox): thumbnail() on a freshly opened JPEG (or MPO), where
    PIL's draft() lets libjpeg decode at 1/2, 1/4, 1/8 size; for a crop
    inside the image, the same draft rule applied to the crop, then
    resize() of the crop's box in the scaled-down image, in the file's
    mode (CMYK too), then convert("RGB") (tk-decode(1), --draft).

As a program: python3 pil_load.py STREAM MODE N < LIST compares the frames
of STREAM (tk-decode's output for the tk-list lines LIST) with PIL,
prints one line per image and a summary, exits 1 when an image differs
by more than --max-diff."""
import math
import sys

import numpy as np
from PIL import Image, ImageFile, JpegImagePlugin

import tkio

LANCZOS = Image.Resampling.LANCZOS


def thumb_size(w, h, s):
    """Image.thumbnail's preserve_aspect_ratio(); None when it fits."""
    x = y = math.floor(s)
    if x >= w and y >= h:
        return None

    def round_aspect(number, key):
        return max(min(math.floor(number), math.ceil(number), key=key), 1)

    aspect = w / h
    if x / y >= aspect:
        x = round_aspect(y * aspect, key=lambda n: abs(aspect - n / y))
    else:
        y = round_aspect(x / aspect,
                         key=lambda n: 0 if n == 0 else abs(aspect - x / n))
    return x, y


def reference(path, n, bbox=None):
    with open(path, "rb") as f:
        img = Image.open(f).convert("RGB")
    full = max(img.size)
    if bbox is not None:
        img = img.crop(bbox)
    if n:
        s = n * max(img.size) / full if bbox is not None else n
        img.thumbnail((s, s), LANCZOS)
    return img


def damaged(path, n, bbox=None):
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        return reference(path, n, bbox)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def draft(path, n, bbox=None):
    img = Image.open(path)
    # draft() is JpegImageFile's: MPO files (an MpoImageFile) have it too.
    if not isinstance(img, JpegImagePlugin.JpegImageFile):
        return reference(path, n, bbox)
    if bbox is None:
        img.thumbnail((n, n), LANCZOS)
        return img.convert("RGB")
    W, H = img.size
    x0, y0, x1, y1 = [int(round(v)) for v in bbox]
    cw, ch = x1 - x0, y1 - y0
    size = thumb_size(cw, ch, n * max(cw, ch) / max(W, H))
    if size is None or not (x0 >= 0 and y0 >= 0 and x1 <= W and y1 <= H):
        return reference(path, n, bbox)
    scale = min(cw // (2 * size[0]), ch // (2 * size[1]))
    s = next((s for s in (8, 4, 2) if scale >= s), 1)
    img.draft(None, (W // s, H // s))
    assert img.decoderconfig[0] == s, (img.decoderconfig, s)
    # As thumbnail(): resized in the file's mode (CMYK too), then RGB.
    img = img.resize(size, LANCZOS, box=(x0 / s, y0 / s, x1 / s, y1 / s),
                     reducing_gap=2.0)
    return img.convert("RGB")


def parse_list(lines):
    out = []
    for line in lines:
        f = line.rstrip("\n").split("\t")
        bbox = None
        if len(f) > 3 and f[3]:
            bbox = tuple(float(v) for v in f[3].split(","))
        out.append((f[0], bbox))
    return out


def main():
    stream, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    max_diff = float(sys.argv[4]) if len(sys.argv) > 4 else 0
    items = parse_list(sys.stdin)
    frames = tkio.read_frames(stream)
    if len(frames) != len(items):
        print(f"{len(frames)} frames for {len(items)} list lines")
        return 1
    fn = {"draft": draft, "damaged": damaged}.get(mode, reference)
    worst, total, count, bad = 0, 0.0, 0, 0
    for (path, bbox), (meta, t) in zip(items, frames):
        ref = np.asarray(fn(path, n, bbox))
        got = t["image"]
        name = path.split("/")[-1] if "wallpapers" not in path else path.split("/")[-4]
        if ref.shape != got.shape:
            print(f"{name} {bbox}: shape {got.shape}, PIL {ref.shape}")
            bad += 1
            continue
        d = np.abs(ref.astype(np.int16) - got.astype(np.int16))
        print(f"{name:24} bbox={bbox} {got.shape[1]}x{got.shape[0]} "
              f"mean|d|={d.mean():.4f} max|d|={d.max()}")
        worst = max(worst, int(d.max()))
        total += float(d.sum())
        count += d.size
        bad += d.max() > max_diff
    print(f"{mode} N={n}: {len(items)} images, mean |diff| "
          f"{total / max(count, 1):.5f} grey levels, max {worst}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
