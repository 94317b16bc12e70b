"""make_images - small test images made from one of Debian's photographs.

  python3 make_images.py PHOTO OUTDIR kinds    CMYK, progressive, greyscale
      JPEGs, an MPO (two JPEGs, as cameras write stereo pairs) and PNGs of every mode PIL writes (1, L, LA, P, P with
      transparency, 2-bit P, RGB, RGBA, I;16), a 16-bit RGB PNG and
      1-, 4- and 8-bit palette PNGs whose indices pass the end of their
      PLTE written by hand.
  python3 make_images.py PHOTO OUTDIR small N  N small JPEGs of different
      sizes and crops of the photo, named img000.jpg ..."""
import struct
import sys
import zlib

import numpy as np
from PIL import Image


def chunk(kind, data):
    c = kind + data
    return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c))


def png(path, w, h, depth, ctype, rows, extra=b""):
    """A PNG written by hand: rows of bytes, extra chunks before IDAT."""
    raw = b"".join(b"\0" + r for r in rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)))
        f.write(extra)
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


def png16(path, rgb16):
    """A 16-bit RGB PNG (PIL cannot write one)."""
    h, w, _ = rgb16.shape
    png(path, w, h, 16, 2, [rgb16[y].astype(">u2").tobytes() for y in range(h)])


def short_palette(path, grey, depth, colors):
    """A palette PNG whose indices (grey >> (8 - depth)) pass the end of its
    PLTE of len(colors) entries: Pillow gives those its initial palette's
    grey ramp (i, i, i), libpng black."""
    idx = (grey >> (8 - depth)).astype(np.uint8)
    h, w = idx.shape
    per = 8 // depth
    idx = np.pad(idx, ((0, 0), (0, -w % per)))
    packed = np.zeros((h, idx.shape[1] // per), np.uint8)
    for k in range(per):
        packed |= idx[:, k::per] << (8 - depth * (k + 1))
    plte = chunk(b"PLTE", bytes(v for c in colors for v in c))
    png(path, w, h, depth, 3, [packed[y].tobytes() for y in range(h)], plte)


def kinds(photo, out):
    s = Image.open(photo).convert("RGB").resize((320, 213))
    s.convert("CMYK").save(f"{out}/cmyk.jpg", quality=90)
    s.save(f"{out}/progressive.jpg", progressive=True, quality=85)
    s.save(f"{out}/mpo.jpg", "MPO", save_all=True, quality=90,
           append_images=[s.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    s.convert("L").save(f"{out}/grey.jpg", quality=90)
    s.convert("L").save(f"{out}/l.png")
    s.convert("LA").save(f"{out}/la.png")
    s.save(f"{out}/rgb.png")
    s.convert("RGBA").save(f"{out}/rgba.png")
    s.convert("P").save(f"{out}/p.png")
    s.convert("P").save(f"{out}/ptrans.png", transparency=3)
    s.convert("P", palette=Image.ADAPTIVE, colors=4).save(f"{out}/p2.png", bits=2)
    s.convert("1").save(f"{out}/bw.png")
    a = np.asarray(s.convert("L")).astype(np.uint16) * 3
    Image.fromarray(a, "I;16").save(f"{out}/i16.png")
    png16(f"{out}/rgb16.png", np.asarray(s).astype(np.uint16) * 257 + 100)
    g = np.asarray(s.convert("L"))
    short_palette(f"{out}/shortpal.png", g, 8,
                  [(200, 10, 10), (10, 200, 10), (10, 10, 200), (250, 250, 0)])
    short_palette(f"{out}/shortpal4.png", g, 4, [(200, 10, 10), (10, 200, 10)])
    short_palette(f"{out}/shortpal1.png", g, 1, [(200, 10, 10)])


def small(photo, out, n):
    src = Image.open(photo).convert("RGB")
    rng = np.random.default_rng(7)
    for i in range(n):
        w, h = int(rng.integers(40, 200)), int(rng.integers(40, 200))
        x0 = int(rng.integers(0, src.width - 400))
        y0 = int(rng.integers(0, src.height - 400))
        im = src.crop((x0, y0, x0 + 400, y0 + 400)).resize((w, h))
        im.save(f"{out}/img{i:03d}.jpg", quality=int(rng.integers(60, 95)))


if __name__ == "__main__":
    if sys.argv[3] == "kinds":
        kinds(sys.argv[1], sys.argv[2])
    else:
        small(sys.argv[1], sys.argv[2], int(sys.argv[4]))
