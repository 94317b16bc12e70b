"""compare_tensors - tk's tensors against a reference's, name by name: the largest
difference relative to the largest reference element of each tensor (or
to --floor, when that is larger: structurally zero gradients, such as a
bias before a batch norm, are rounding noise); prints the worst tensors
and exits 1 when a tolerance is exceeded.

    compare_tensors.py TK.bin REF.bin [--tol PREFIX=TOL ...] [--only PREFIX]
    compare_tensors.py TK.bin REF.bin --baseline OTHER.bin --factor F

With --baseline, OTHER (torch in float32) is compared with REF (torch in
float64) the same way, and TK must be no further from REF than F times
OTHER's worst tensor plus 1e-4: as accurate as torch's own float32,
whatever the conditioning of the model.  --outliers N lets up to N
tensors beyond that, if none is beyond 1e-2: where float32 rounding tips
a ReLU of one block over (the gradient of its element jumps from zero to
its full value), that block's gradients and, more faintly, those before
it move by about one part in the number of positions; a wrong formula
moves far more, or by far more."""
import argparse
import sys

import numpy as np

import tkio


def load(path):
    with open(path, "rb") as f:
        return tkio.read_doc(f)[1]


def errors(a, b, only, floor):
    out = {}
    for name, want in b.items():
        if not name.startswith(only):
            continue
        if name not in a:
            out[name] = (np.inf, np.inf, 0.0)
            continue
        got = a[name].astype(np.float64)
        want = want.astype(np.float64)
        if got.size == want.size:
            got = got.reshape(want.shape)
        if got.shape != want.shape:
            out[name] = (np.inf, np.inf, 0.0)
            continue
        mag = np.abs(want).max() if want.size else 0.0
        err = np.abs(got - want).max() if want.size else 0.0
        out[name] = (err / max(mag, floor, 1e-300), err, mag)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tk")
    ap.add_argument("ref")
    ap.add_argument("--tol", action="append", default=[],
                    help="PREFIX=TOL: tensors whose name starts with PREFIX")
    ap.add_argument("--only", default="")
    ap.add_argument("--floor", type=float, default=0.0)
    ap.add_argument("--show", type=int, default=6)
    ap.add_argument("--baseline")
    ap.add_argument("--factor", type=float, default=2.0)
    ap.add_argument("--outliers", type=int, default=0)
    args = ap.parse_args()
    a, b = load(args.tk), load(args.ref)
    e = errors(a, b, args.only, args.floor)
    if not e:
        print("nothing to compare")
        sys.exit(1)
    bad = 0
    tols = [(p, float(t)) for p, t in (x.split("=") for x in args.tol)]
    rows = sorted(((r, n, err, mag) for n, (r, err, mag) in e.items()), reverse=True)
    for r, n, err, mag in rows[:args.show]:
        print("  %-52s rel=%.3g max|d|=%.3g max|ref|=%.3g" % (n, r, err, mag))
    for r, n, err, mag in rows:
        tol = None
        for p, t in tols:
            if n.startswith(p) and (tol is None or len(p) > tol[0]):
                tol = (len(p), t)
        if tol is not None and not r <= tol[1]:
            print("FAIL  %s: rel %.3g > %g" % (n, r, tol[1]))
            bad += 1
    worst = rows[0][0]
    print("%d tensors, worst rel %.3g (%s)" % (len(rows), worst, rows[0][1]))
    if args.baseline:
        eb = errors(load(args.baseline), b, args.only, args.floor)
        wb = max(r for r, _, _ in eb.values())
        nb = max(eb, key=lambda n: eb[n][0])
        bound = args.factor * wb + 1e-4
        out = [(r, n) for r, n, _, _ in rows if r > bound]
        ok = len(out) <= args.outliers and worst <= 1e-2
        for r, n in out:
            print("  beyond %.3g: %s rel %.3g" % (bound, n, r))
        print("%s: worst rel %.3g, torch float32's %.3g (%s); %d tensors beyond "
              "%g times it + 1e-4 (%d allowed, none past 1e-2)" %
              ("ok" if ok else "FAIL", worst, wb, nb, len(out), args.factor,
               args.outliers))
        bad += not ok
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
