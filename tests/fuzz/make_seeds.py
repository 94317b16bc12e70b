"""make_seeds - the seed inputs of the fuzz targets that parse formats a
mutator cannot find from nothing: stream frames and safetensors documents
(a JSON header whose length the first 8 bytes give), .npy files, JPEGs
and PNGs; and for fuzz_pickle, Revisited Oxford ground truth files that
hold together (every index into imlist), which its other seeds do not.
Small (a few hundred bytes each, so that the fuzzer mutates quickly),
made from numbers alone (no photograph) and the same on every run.

    /usr/bin/python3 tests/fuzz/make_seeds.py tests/fuzz/corpus

writes OUT/stream, OUT/safetensors, OUT/npy, OUT/jpeg and OUT/png (files
named by what they hold), and OUT/pickle/gnd-whole-p*.pkl.  Without seeds, fuzz_stream found 51 edges in 500,000
runs and stayed there: it never wrote a header the reader accepts."""
import io
import json
import os
import pickle
import struct
import sys
import zlib

import numpy as np
from PIL import Image

DTYPES = {"BOOL": "u1", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2",
          "F16": "<f2", "BF16": "<u2", "U32": "<u4", "I32": "<i4", "F32": "<f4",
          "U64": "<u8", "I64": "<i8", "F64": "<f8"}


def document(tensors, meta=None):
    """A safetensors document as tk-stream(5) says writers make it:
    tensors by decreasing element size, the JSON padded with spaces to a
    multiple of 8.  tensors: name -> (dtype, numpy array)."""
    order = sorted(tensors, key=lambda k: -np.dtype(DTYPES[tensors[k][0]]).itemsize)
    header, data = {}, b""
    if meta is not None:
        header["__metadata__"] = meta
    for name in order:
        dtype, a = tensors[name]
        raw = np.ascontiguousarray(a).astype(DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * (-(8 + len(js)) % 8)
    return struct.pack("<Q", len(js)) + js + data


def streams(out):
    rng = np.random.default_rng(1)
    image = document({"image": ("U8", rng.integers(0, 256, (3, 4, 3)))},
                     {"key": "all_souls_000013", "label": "7", "src": "a/b.jpg",
                      "orig": "640,480", "crop": "0,0,4,3", "index": "12"})
    local = document({"local": ("F32", rng.standard_normal((6, 4)))},
                     {"key": "q1", "scale": "0.7071", "grid": "2,3"})
    desc = document({"desc": ("F32", rng.standard_normal(8))}, {"key": "d0"})
    rank = document({"rank": ("I32", np.array([2, 0, 1])),
                     "score": ("F32", np.array([0.9, 0.5, -0.1]))}, {"key": "q1"})
    every = document({k: (d, np.arange(2 * 3) % 2 if d == "BOOL" else
                          np.arange(6).reshape(2, 3)) for d, k in
                      ((d, d.lower()) for d in DTYPES)}, {"key": "dtypes"})
    edge = document({"scalar": ("F64", np.array(2.5)),
                     "empty": ("F32", np.zeros((0, 5))),
                     "rank8": ("U8", np.ones((1,) * 8))}, {"key": "edge"})
    files = {"image.bin": image, "local.bin": local, "desc.bin": desc,
             "rank.bin": rank, "dtypes.bin": every, "edge.bin": edge,
             "two.bin": image + desc, "nometa.bin": document(
                 {"desc": ("F32", np.ones(2))}),
             "empty.bin": b""}
    write(out, "stream", files)


def weights(out):
    rng = np.random.default_rng(2)
    tiny = document({"backbone.conv1.weight": ("F32", rng.standard_normal((2, 3, 1, 1))),
                     "backbone.bn1.num_batches_tracked": ("I64", np.array(5)),
                     "head.fc.weight": ("BF16", rng.integers(0, 65536, (3, 2))),
                     "head.fc.bias": ("F16", rng.standard_normal(3))},
                    {"format": "pt", "tk.arch": "r50:width=4", "tk.epoch": "3"})
    write(out, "safetensors", {"tiny.safetensors": tiny,
                               "nometa.safetensors": document(
                                   {"w": ("F32", np.ones((2, 2)))}),
                               "none.safetensors": document({}, {})})


def npys(out):
    def npy(a, version=None):
        b = io.BytesIO()
        np.lib.format.write_array(b, a, version=version)
        return b.getvalue()
    rng = np.random.default_rng(3)
    write(out, "npy", {
        "f32.npy": npy(rng.standard_normal((3, 4)).astype(np.float32)),
        "u8.npy": npy(np.arange(5, dtype=np.uint8)),
        "i64.npy": npy(np.arange(12, dtype=np.int64).reshape(2, 3, 2)),
        "bf16.npy": npy(np.arange(4, dtype=np.uint16).view("V2")),
        "rows0.npy": npy(np.zeros((0, 3), np.float16)),
        "v2.npy": npy(np.ones((2, 2), np.int32), version=(2, 0)),
        "fortran.npy": npy(np.asfortranarray(np.ones((2, 3), np.float64)))})


def gnds(out):
    """gnd_*.pkl as revisitop's: imlist, qimlist, and per query easy, hard,
    junk and a bounding box."""
    gnd = {"imlist": ["all_souls_000000", "all_souls_000001", "balliol_000000",
                      "radcliffe_000003"],
           "qimlist": ["all_souls_000013", "radcliffe_000031"],
           "gnd": [{"bbx": [136.5, 34.1, 648.5, 955.7], "easy": [0, 1],
                    "hard": [2], "junk": []},
                   {"bbx": [10.0, 20.0, 30.0, 40.0], "easy": [], "hard": [3],
                    "junk": [0]}]}
    write(out, "pickle", {"gnd-whole-p%d.pkl" % p: pickle.dumps(gnd, protocol=p)
                          for p in (2, 4)})


def photo(h, w, seed):
    """Something JPEG-like to look at: gradients, an edge and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                  ((x > w // 2) ^ (y > h // 2)) * 200], -1)
    return Image.fromarray(np.clip(a + rng.integers(-20, 21, a.shape), 0, 255)
                           .astype(np.uint8), "RGB")


def encoded(im, **kw):
    b = io.BytesIO()
    im.save(b, **kw)
    return b.getvalue()


def png16(rgb16):
    """A 16-bit RGB PNG (PIL cannot write one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\0" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def images(out):
    im = photo(12, 16, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated 90 degrees
    write(out, "jpeg", {
        "baseline.jpg": encoded(im, format="JPEG", quality=75),
        "444.jpg": encoded(photo(9, 13, 4), format="JPEG", quality=90, subsampling=0),
        "progressive.jpg": encoded(im, format="JPEG", quality=60, progressive=True),
        "grey.jpg": encoded(im.convert("L"), format="JPEG", quality=80),
        "cmyk.jpg": encoded(im.convert("CMYK"), format="JPEG", quality=80),
        "exif.jpg": encoded(photo(8, 5, 5), format="JPEG", quality=70, exif=exif),
        "wide.jpg": encoded(photo(2, 40, 6), format="JPEG", quality=50)})
    small = photo(6, 8, 7)
    a = np.asarray(small.convert("L")).astype(np.uint16) * 3
    write(out, "png", {
        "rgb.png": encoded(small, format="PNG"),
        "rgba.png": encoded(small.convert("RGBA"), format="PNG"),
        "l.png": encoded(small.convert("L"), format="PNG"),
        "la.png": encoded(small.convert("LA"), format="PNG"),
        "p.png": encoded(small.convert("P"), format="PNG"),
        "ptrans.png": encoded(small.convert("P"), format="PNG", transparency=3),
        "p2.png": encoded(small.convert("P", palette=Image.ADAPTIVE, colors=4),
                          format="PNG", bits=2),
        "bw.png": encoded(small.convert("1"), format="PNG"),
        "i16.png": encoded(Image.fromarray(a, "I;16"), format="PNG"),
        "rgb16.png": png16(np.asarray(small).astype(np.uint16) * 257 + 100)})


def write(out, kind, files):
    d = os.path.join(out, kind)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    streams(sys.argv[1])
    weights(sys.argv[1])
    npys(sys.argv[1])
    gnds(sys.argv[1])
    images(sys.argv[1])
