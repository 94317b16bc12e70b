"""init_stats - compare a tk-init model file with the same architecture
initialised by torch (token_ref.py): every tensor that torch makes constant
must be that constant exactly; every random one must agree in mean and
standard deviation within 6 standard errors of the sample sizes, and in
distribution by a two-sample Kolmogorov-Smirnov test at alpha = 1e-6.
Prints a line per tensor family.

    init_stats.py MODEL.safetensors depth=50 width=8 ... classes=10"""
import math
import sys

import numpy as np
import torch

import tkio
import token_ref

KS_C = math.sqrt(-math.log(1e-6 / 2) / 2)  # two-sample KS critical constant
SUB = 200000  # KS on at most this many values of each side


def family(name):
    if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
        return "buffers"
    if name == "tr.query":
        return "query N(0,1)"
    if name == "classifier.weight":
        return "ArcFace xavier"
    parts = name.split(".")
    if len(parts) > 2 and parts[-3].endswith("attn"):
        return "attention"
    if name.startswith("backbone.") and name.endswith("weight") and "conv" in name \
            or name.startswith("backbone.") and ("downsample.0" in name or "block1.0" in name):
        return "backbone conv kaiming"
    return "default/norm"


def ks(x, y, rng):
    if x.size > SUB:
        x = rng.choice(x, SUB, replace=False)
    if y.size > SUB:
        y = rng.choice(y, SUB, replace=False)
    x, y = np.sort(x), np.sort(y)
    allv = np.concatenate([x, y])
    d = np.max(np.abs(np.searchsorted(x, allv, "right") / x.size -
                      np.searchsorted(y, allv, "right") / y.size))
    crit = KS_C * math.sqrt((x.size + y.size) / (x.size * y.size))
    return d, crit


def main():
    path = sys.argv[1]
    kw = {}
    for a in sys.argv[2:]:
        k, v = a.split("=")
        kw[k] = int(v)
    torch.manual_seed(0)
    ref = token_ref.token(**kw).state_dict()
    (meta, ours), = tkio.read_frames(path)
    assert set(ours) == set(ref), set(ours) ^ set(ref)
    rng = np.random.default_rng(0)
    fams, bad = {}, 0
    for name, t in ref.items():
        y = t.numpy().astype(np.float64).ravel()
        x = ours[name].astype(np.float64).ravel()
        f = fams.setdefault(family(name), [0, 0, 0.0, 0.0, 0.0])
        f[0] += 1
        if y.min() == y.max():
            if not (x == y[0]).all():
                print("FAIL %s: torch's is constant %g, ours is not" % (name, y[0]))
                bad += 1
            continue
        f[1] += 1
        if f is fams.get("attention"):
            # torch's trunc_normal_ draws float32 uniforms in [-1, 1] and
            # takes erfinv: an endpoint gives +-inf, clamped to the bound
            # +-2 (100 std), a point mass of about 2^-24 that tk does not
            # reproduce.  It would dominate the std: leave it out.
            y = y[np.abs(y) < 2]
        n, m = x.size, y.size
        sy = y.std()
        dmean = abs(x.mean() - y.mean()) / (sy * math.sqrt(1 / n + 1 / m))
        dstd = abs(x.std() / sy - 1) / math.sqrt(1 / (2 * n) + 1 / (2 * m))
        d, crit = ks(x, y, rng)
        f[2] = max(f[2], dmean)
        f[3] = max(f[3], dstd)
        f[4] = max(f[4], d / crit)
        if dmean > 6 or dstd > 6 or d > crit:
            print("FAIL %s [%d]: mean %.4g vs %.4g, std %.4g vs %.4g, KS %.4g (critical %.4g)"
                  % (name, n, x.mean(), y.mean(), x.std(), sy, d, crit))
            bad += 1
    print("%-22s %8s %8s %12s %12s %10s" % ("family", "tensors", "random",
                                          "max|dmean|/se", "max|dstd|/se", "max KS/crit"))
    for k, (nt, nr, a, b, c) in sorted(fams.items()):
        print("%-22s %8d %8d %12.2f %12.2f %10.2f" % (k, nt, nr, a, b, c))
    sys.exit(1 if bad else 0)


main()
