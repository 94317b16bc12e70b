"""train_frames - labelled image frames for the training tests that do
not need torch (tk-train's input: 'image' U8 [H, W, 3], 'label' in the
metadata), and how closely two checkpoints' updates agree.

    train_frames.py make OUT.bin N SIZE CLASSES SEED
    train_frames.py shard IN.bin OUT.bin I N [index]
                                                  frames I, I+N, ... of IN
        (index: each with its place in IN, as tk-decode --shard writes)
    train_frames.py reverse IN.bin OUT.bin N      each run of N frames in
        reverse order: the same batches of N, their sums in another order
    train_frames.py agree START.st A.st B.st MAX  the parameters' updates
        from START in A and B: ||dA - dB|| / ||dA|| over every parameter
        (and the worst tensor's ||dA_t - dB_t|| / ||dA||); exit 1 above MAX
    train_frames.py stats START.st A.st B.st MAX  the same of the batch
        norms' running statistics (running_mean, running_var), which a
        step changes without touching the parameters
    train_frames.py bound START.st A.st B.st FACTOR MIN
        prints a MAX for agree and stats: FACTOR times the relative
        difference of A's and B's updates, at least MIN
"""
import json
import struct
import sys

import numpy as np

import tkio


def make(out, n, size, classes, seed):
    rng = np.random.RandomState(seed)
    frames = []
    for i in range(n):
        label = int(rng.randint(classes))
        # a class's colour and stripes, and noise
        base = np.array([(label * 67) % 256, (label * 131) % 256, (label * 29) % 256])
        y = np.arange(size)[:, None, None]
        img = base + 60 * np.sin((y + 3 * label) / 4.0) + rng.normal(0, 30, (size, size, 3))
        img = np.clip(img, 0, 255).astype(np.uint8)
        frames.append(({"key": "f%d" % i, "label": str(label)}, {"image": img}))
    tkio.write_frames(out, frames)


def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    d = b[8 + n:]
    out = {}
    for k, v in h.items():
        if k == "__metadata__" or v["dtype"] != "F32" or k.startswith("optim."):
            continue
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(d[s:e], dtype=np.float32).astype(np.float64)
    return out


def difference(start, a, b, stats=False):
    s, x, y = load(start), load(a), load(b)
    keys = [k for k in s if ("running_" in k) == stats]
    da = {k: x[k] - s[k] for k in keys}
    db = {k: y[k] - s[k] for k in keys}
    na = np.sqrt(sum(float(v @ v) for v in da.values()))
    diff = np.sqrt(sum(float((da[k] - db[k]) @ (da[k] - db[k])) for k in da))
    worst = max(da, key=lambda k: float(np.linalg.norm(da[k] - db[k])))
    wr = float(np.linalg.norm(da[worst] - db[worst])) / na
    return len(da), na, diff / na, worst, wr


def agree(start, a, b, most, stats=False):
    n, na, rel, worst, wr = difference(start, a, b, stats)
    print("%s: %d tensors, ||dA|| %.4g, relative difference %.3e (worst "
          "tensor %s: %.3e)" % ("running statistics" if stats else "updates",
                                n, na, rel, worst, wr))
    return 0 if rel <= most else 1


def main():
    a = sys.argv[1:]
    if a[0] == "make":
        make(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]))
    elif a[0] == "shard":
        f = list(enumerate(tkio.read_frames(a[1])))[int(a[3])::int(a[4])]
        if a[5:] == ["index"]:
            f = [(i, (dict(m, index=str(i)), t)) for i, (m, t) in f]
        tkio.write_frames(a[2], [x for _, x in f])
    elif a[0] == "reverse":
        f, n = tkio.read_frames(a[1]), int(a[3])
        tkio.write_frames(a[2], [x for i in range(0, len(f), n) for x in f[i:i + n][::-1]])
    elif a[0] == "bound":
        rel = difference(a[1], a[2], a[3])[2]
        print("%.3e" % max(float(a[4]) * rel, float(a[5])))
    elif a[0] in ("agree", "stats"):
        return agree(a[1], a[2], a[3], float(a[4]), a[0] == "stats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
