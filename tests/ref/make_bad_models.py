"""make_bad_models - broken variants of a model file and bad input frames
for tk-extract and tk-aggregate, into DIR.

    make_bad_models.py MODEL DIR
"""
import sys

import numpy as np

import tkio


def main():
    model, d = sys.argv[1], sys.argv[2]
    meta, t = tkio.read_frames(model)[0]
    t = {k: np.array(v) for k, v in t.items()}

    def write(name, tensors, m=meta):
        tkio.write_frames(f"{d}/{name}", [(m, tensors)])

    write("missing.st", {k: v for k, v in t.items()
                         if k != "backbone.block3.1.conv2.weight"})
    bad = dict(t)
    bad["tr.decoder.1.mlp.fc2.weight"] = np.zeros((3, 4), np.float32)
    write("shape.st", bad)
    bad = dict(t)
    w = bad["tr.encoder.0.mlp.weight"].astype(np.float32)
    w[1, 2] = np.nan
    bad["tr.encoder.0.mlp.weight"] = w
    write("nan.st", bad)
    write("noarch.st", t, {"format": "tk-model"})
    # a name from the file, with a line break in it, in the message
    write("newline.st", dict(t, **{"tr.extra\nline": np.zeros(2, np.float32)}))
    write("backbone.st", {k: v for k, v in t.items() if k.startswith("backbone.")},
          {"format": "tk-backbone", "depth": meta["depth"], "width": meta["width"]})

    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, (40, 50, 3)).astype(np.uint8)
    frames = {
        "dtype.bin": [({"key": "ok"}, {"image": img}),
                      ({"key": "i32"}, {"image": img.astype(np.int32)})],
        "rank.bin": [({"key": "gray"}, {"image": img[:, :, 0]})],
        "noimage.bin": [({"key": "x"}, {"pixels": img})],
        "chw.bin": [({"key": "chw"}, {"image": np.zeros((4, 8, 8), np.float32)})],
        "tiny.bin": [({"key": "dot"}, {"image": img[:1, :1]})],
        "big.bin": [({"key": "big"}, {"image": np.zeros((1025, 1024, 3), np.uint8)})],
        "nan.bin": [({"key": "nan"}, {"image": np.full((3, 40, 50), np.nan, np.float32)})],
        "huge.bin": [({"key": "huge"}, {"image": np.full((3, 40, 50), 3e38, np.float32)})],
        "local-dim.bin": [({"key": "a"}, {"local": np.zeros((6, 31), np.float32)})],
        "local-dtype.bin": [({"key": "a"}, {"local": np.zeros((6, 32), np.float64)})],
        "local-empty.bin": [({"key": "a"}, {"local": np.zeros((0, 32), np.float32)})],
        "local-nan.bin": [({"key": "a"}, {"local": np.full((6, 32), np.inf, np.float32)})],
    }
    for name, fr in frames.items():
        tkio.write_frames(f"{d}/{name}", fr)


if __name__ == "__main__":
    main()
