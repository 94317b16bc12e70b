"""agree - how closely two streams of the same frames agree (a device's
output against the CPU's): frames in the same order with the same key
(and scale and grid where present); per frame of TENSOR the cosine and
the largest difference relative to the frame's largest magnitude.

    agree.py A B TENSOR [--min-cos C] [--max-rel R] [--label TEXT]

Prints one line, "TEXT: N frames, min cosine ... (the worst frame's key and
scale), max relative error ...";
exits 1 when a bound given is missed or the frames do not correspond."""
import sys

import numpy as np

import tkio


def main():
    args = sys.argv[1:]
    opts = {"--min-cos": None, "--max-rel": None, "--label": None}
    for k in list(opts):
        if k in args:
            i = args.index(k)
            opts[k] = args[i + 1]
            del args[i:i + 2]
    a, b, name = tkio.read_frames(args[0]), tkio.read_frames(args[1]), args[2]
    label = opts["--label"] or name
    if len(a) != len(b):
        print(f"{label}: {len(a)} frames against {len(b)}")
        return 1
    worst_cos, worst_rel, where = 1.0, 0.0, ""
    for (ma, ta), (mb, tb) in zip(a, b):
        for k in ("key", "scale", "grid"):
            if ma.get(k) != mb.get(k):
                print(f"{label}: frame {ma.get('key')}: {k} {ma.get(k)} != {mb.get(k)}")
                return 1
        x = ta[name].astype(np.float64).ravel()
        y = tb[name].astype(np.float64).ravel()
        if x.shape != y.shape:
            print(f"{label}: frame {ma.get('key')}: shapes {x.shape} != {y.shape}")
            return 1
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            print(f"{label}: frame {ma.get('key')}: NaN or Inf")
            return 1
        nx, ny = np.linalg.norm(x), np.linalg.norm(y)
        cos = float(x @ y / (nx * ny)) if nx > 0 and ny > 0 else float(nx == ny)
        rel = float(np.abs(x - y).max() / max(np.abs(y).max(), 1e-30))
        if cos < worst_cos:
            where = ma.get("key", "?") + (" scale " + ma["scale"] if "scale" in ma else "")
        worst_cos, worst_rel = min(worst_cos, cos), max(worst_rel, rel)
    print(f"{label}: {len(a)} frames, min cosine {worst_cos:.8f}"
          f"{' (' + where + ')' if where else ''}, "
          f"max relative error {worst_rel:.2e}")
    ok = True
    if opts["--min-cos"] is not None and worst_cos < float(opts["--min-cos"]):
        print(f"{label}: cosine below {opts['--min-cos']}")
        ok = False
    if opts["--max-rel"] is not None and worst_rel > float(opts["--max-rel"]):
        print(f"{label}: relative error above {opts['--max-rel']}")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
