"""tk-cat --from-npy / --to-npy round trip: for u8, i32, i64, f16, bf16 and
f32 tensors of rank 1-4, arrays -> .npy -> stream -> .npy must be bitwise
equal, the stream must read back equal with an independent reader (tkio),
and keys and labels must survive.  Usage: npy_roundtrip.py DIR"""
import os
import subprocess
import sys

import numpy as np

import tkio

d = sys.argv[1]
rng = np.random.default_rng(7)
shapes = {1: (5,), 2: (3, 4), 3: (2, 3, 5), 4: (2, 1, 3, 2)}
types = {"u8": np.uint8, "i32": np.int32, "i64": np.int64, "f16": np.float16,
         "bf16": "V2", "f32": np.float32}
n = 0
for tname, dt in types.items():
    for rank, shape in shapes.items():
        rows = 4
        raw = rng.integers(0, 256, size=(rows,) + shape + (np.dtype(dt).itemsize if dt != "V2" else 2,), dtype=np.uint8)
        if dt == "V2":
            # bf16 bit patterns, NaNs and infinities included
            a = raw.reshape(-1).view("V2").reshape((rows,) + shape)
        else:
            a = raw.reshape(-1).view(dt).reshape((rows,) + shape)
        base = os.path.join(d, f"{tname}_{rank}")
        np.save(base + ".npy", a)
        keys = [f"img{i}-{tname}" for i in range(rows)]
        labels = [str(i * 7 - 1) for i in range(rows)]
        open(base + ".k", "w").write("\n".join(keys) + "\n")
        open(base + ".l", "w").write("\n".join(labels) + "\n")
        with open(base + ".bin", "wb") as out:
            subprocess.run(["tk-cat", "--from-npy", base + ".npy", "--keys", base + ".k",
                            "--labels", base + ".l", "--tensor", "t"], stdout=out, check=True)
        frames = tkio.read_frames(base + ".bin")
        assert len(frames) == rows, (tname, rank)
        for i, (meta, ts) in enumerate(frames):
            assert meta["key"] == keys[i] and meta["label"] == labels[i], meta
            got = ts["t"]
            want = a[i]
            if dt == "V2":
                want = (np.frombuffer(want.tobytes(), np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
                assert got.tobytes() == want.tobytes(), (tname, rank, i)
            else:
                assert got.dtype == want.dtype and got.shape == want.shape
                assert got.tobytes() == want.tobytes(), (tname, rank, i)
        subprocess.run(["tk-cat", "--to-npy", base + ".out.npy", base + ".bin"], check=True)
        b = np.load(base + ".out.npy")
        assert b.dtype == a.dtype and b.shape == a.shape, (tname, rank, b.dtype, b.shape)
        assert b.tobytes() == a.tobytes(), (tname, rank)
        assert open(base + ".out.npy.keys").read() == open(base + ".k").read()
        assert open(base + ".out.npy.labels").read() == open(base + ".l").read()
        n += 1
print(f"{n} dtype/rank combinations round-trip bitwise")
