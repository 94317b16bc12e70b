"""make_images - small test images made from one of Debian's photographs.

  python3 make_images.py PHOTO OUTDIR kinds    CMYK, progressive, greyscale
      JPEGs and PNGs of every mode PIL writes (1, L, LA, P, P with
      transparency, 2-bit P, RGB, RGBA, I;16) and a 16-bit
      RGB PNG written by hand.
  python3 make_images.py PHOTO OUTDIR small N  N small JPEGs of different
      sizes and crops of the photo, named img000.jpg ..."""
import struct
import sys
import zlib

import numpy as np
from PIL import Image


def png16(path, rgb16):
    """A 16-bit RGB PNG (PIL cannot write one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\0" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


def kinds(photo, out):
    s = Image.open(photo).convert("RGB").resize((320, 213))
    s.convert("CMYK").save(f"{out}/cmyk.jpg", quality=90)
    s.save(f"{out}/progressive.jpg", progressive=True, quality=85)
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
