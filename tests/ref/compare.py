"""compare - tk's local and desc streams against the torch reference's.

    compare.py LOCAL DESC REF_LOCAL REF_DESC [--local-rtol R]

Frames must agree in order, key, scale and grid; descriptors within
max |d| <= 1e-4 and cosine >= 0.99999; local features within R (default
1e-3) of the largest magnitude of their frame.  (Random test models
amplify float rounding: torch's own float32 local features are up to
1e-4 of the largest magnitude away from float64 ones, and tk's the same.)
Prints the worst of each; exits 1 when a tolerance is missed."""
import sys

import numpy as np

import tkio


def main():
    args = sys.argv[1:]
    rtol = 1e-3
    if "--local-rtol" in args:
        i = args.index("--local-rtol")
        rtol = float(args[i + 1])
        del args[i:i + 2]
    local, desc, rlocal, rdesc = (tkio.read_frames(p) for p in args[:4])
    ok = True
    if len(local) != len(rlocal) or len(desc) != len(rdesc):
        print(f"frame counts differ: local {len(local)} vs {len(rlocal)}, "
              f"desc {len(desc)} vs {len(rdesc)}")
        return 1
    worst_local = 0.0
    for (m, t), (rm, rt) in zip(local, rlocal):
        for k in ("key", "scale", "grid"):
            if m.get(k) != rm.get(k):
                print(f"local frame {m.get('key')}: {k} {m.get(k)} != {rm.get(k)}")
                ok = False
        a, b = t["local"], rt["local"]
        if a.shape != b.shape:
            print(f"local {m.get('key')} scale {m.get('scale')}: shape "
                  f"{a.shape} != {b.shape}")
            ok = False
            continue
        err = float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())
        worst_local = max(worst_local, err)
    worst_abs, worst_cos = 0.0, 1.0
    for (m, t), (rm, rt) in zip(desc, rdesc):
        if m.get("key") != rm.get("key"):
            print(f"desc key {m.get('key')} != {rm.get('key')}")
            ok = False
        a, b = t["desc"].astype(np.float64), rt["desc"].astype(np.float64)
        worst_abs = max(worst_abs, float(np.abs(a - b).max()))
        cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        worst_cos = min(worst_cos, cos)
    print(f"{len(desc)} descriptors: max |d| {worst_abs:.3g}, min cosine "
          f"{worst_cos:.8f}; {len(local)} local frames: max relative "
          f"error {worst_local:.3g}")
    ok = ok and worst_abs <= 1e-4 and worst_cos >= 0.99999 and worst_local <= rtol
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
