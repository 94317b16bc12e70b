"""compare - tk's tensors against the reference's, name by name: the
largest difference relative to the largest reference element of each
tensor; prints the worst and exits 1 when a tolerance is exceeded.

    compare.py TK.bin REF.bin [--tol PREFIX=TOL ...] [--show N]"""
import argparse
import sys

import numpy as np

import tkio


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tk")
    ap.add_argument("ref")
    ap.add_argument("--tol", action="append", default=[],
                    help="PREFIX=TOL: tensors whose name starts with PREFIX")
    ap.add_argument("--show", type=int, default=8)
    ap.add_argument("--only", default="", help="compare names with this prefix")
    args = ap.parse_args()
    with open(args.tk, "rb") as f:
        _, a = tkio.read_doc(f)
    with open(args.ref, "rb") as f:
        _, b = tkio.read_doc(f)
    tols = [(p, float(t)) for p, t in (x.split("=") for x in args.tol)]
    rows, bad = [], 0
    for name, want in b.items():
        if not name.startswith(args.only):
            continue
        if name not in a:
            print("missing in tk: %s" % name)
            bad += 1
            continue
        got = a[name].astype(np.float64)
        want = want.astype(np.float64)
        if got.size == want.size and got.size == 1:
            got = got.reshape(want.shape)
        if got.shape != want.shape:
            print("%s: shape %s, want %s" % (name, got.shape, want.shape))
            bad += 1
            continue
        mag = np.abs(want).max() if want.size else 0.0
        err = np.abs(got - want).max() if want.size else 0.0
        rel = err / mag if mag > 0 else err
        tol = None
        for p, t in tols:
            if name.startswith(p) and (tol is None or len(p) > tol[0]):
                tol = (len(p), t)
        ok = tol is None or rel <= tol[1]
        bad += not ok
        rows.append((rel, name, err, mag, ok, tol[1] if tol else None))
    rows.sort(reverse=True)
    for rel, name, err, mag, ok, tol in rows[:args.show]:
        print("%-5s %-50s rel=%.3g max|d|=%.3g max|ref|=%.3g tol=%s" %
              ("ok" if ok else "FAIL", name, rel, err, mag, tol))
    for rel, name, err, mag, ok, tol in rows[args.show:]:
        if not ok:
            print("FAIL  %-50s rel=%.3g tol=%s" % (name, rel, tol))
    print("%d tensors compared, %d beyond tolerance" % (len(rows), bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
