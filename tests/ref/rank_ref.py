"""rank_ref - NumPy reference for tk-rank, written from its man page:
inner products, rankings best first with equal scores by the lower
database position, alpha query expansion and database-side augmentation.

  rank_ref.py make OUT.bin N DIM SEED [quant|float|nan|inf]
      N random descriptors as desc frames (keys OUT-stem + index, labels);
      'quant' uses values in {-2..2}/4, so every score is exact in single
      precision and ties are frequent.
  rank_ref.py check GOT.bin Q.bin DB.bin [--top K] [--qe N] [--dba N]
                    [--alpha A] [--exact]
      GOT must be the ranking of Q against DB, each frame with Q's frame's
      metadata and 'dbsize' (DB's vectors): --exact compares positions
      and scores bit for bit (quantised inputs); otherwise scores within
      1e-5 and the returned items the best within that tolerance.
"""
import argparse
import sys

import numpy as np

import tkio


def make(path, n, dim, seed, kind):
    rng = np.random.default_rng(seed)
    if kind == "quant":
        x = rng.integers(-2, 3, size=(n, dim)).astype(np.float32) / 4
    else:
        x = rng.standard_normal((n, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    if kind == "nan" and n:
        x[n // 2, dim // 2] = np.nan
    if kind == "inf" and n:
        x[n - 1, 0] = np.inf
    stem = path.rsplit("/", 1)[-1].split(".")[0]
    tkio.write_frames(path, [({"key": f"{stem}{i}", "label": str(i % 7)},
                              {"desc": x[i]}) for i in range(n)])


def load(path):
    frames = tkio.read_frames(path)
    if not frames:
        return np.zeros((0, 0), np.float32), []
    return np.stack([t["desc"] for _, t in frames]), [m for m, _ in frames]


def ranking(S, k):
    """Positions best first per row: score descending, position ascending."""
    n = S.shape[1]
    pos = np.arange(n)
    out = [np.lexsort((pos, -S[i]))[:k] for i in range(S.shape[0])]
    return np.array(out).reshape(S.shape[0], min(k, n))


def weights(s, alpha):
    return np.maximum(s, 0) ** alpha


def qe(Q, D, n, alpha):
    """q' = normalise(q + sum over q's n best d of max(q.d, 0)^alpha d)."""
    S = (Q.astype(np.float64) @ D.T.astype(np.float64))
    top = ranking(S, n)
    out = Q.astype(np.float64).copy()
    for i in range(len(Q)):
        w = weights(S[i, top[i]], alpha)
        out[i] += (w[:, None] * D[top[i]]).sum(0)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def dba(D, n, alpha):
    """d_j' = normalise(d_j + sum over the n best d_i, i != j, of
    max(d_j.d_i, 0)^alpha d_i)."""
    S = D.astype(np.float64) @ D.T.astype(np.float64)
    out = D.astype(np.float64).copy()
    order = ranking(S, len(D))
    for j in range(len(D)):
        nb = [i for i in order[j] if i != j][:n]
        w = weights(S[j, nb], alpha)
        out[j] += (w[:, None] * D[nb]).sum(0)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def check(args):
    ap = argparse.ArgumentParser(prog="rank_ref.py check")
    for a in ("got", "q", "db"):
        ap.add_argument(a)
    ap.add_argument("--top", type=int)
    ap.add_argument("--qe", type=int)
    ap.add_argument("--dba", type=int)
    ap.add_argument("--alpha", type=float, default=3.0)
    ap.add_argument("--exact", action="store_true")
    o = ap.parse_args(args)
    got_path, qpath, dbpath, exact, alpha = o.got, o.q, o.db, o.exact, o.alpha
    Q, qmeta = load(qpath)
    D, _ = load(dbpath)
    if o.dba:
        D = dba(D, o.dba, alpha)
    if o.qe:
        Q = qe(Q, D, o.qe, alpha)
    k = o.top or len(D)
    got = tkio.read_frames(got_path)
    assert len(got) == len(Q), f"{len(got)} frames for {len(Q)} queries"
    if exact:
        S = Q @ D.T  # exact: quantised values
        assert np.array_equal(S, Q.astype(np.float64) @ D.T.astype(np.float64))
        want = ranking(S, k)
    else:
        S = Q.astype(np.float64) @ D.T.astype(np.float64)
    for i, (meta, t) in enumerate(got):
        assert meta.get("dbsize") == str(len(D)), f"frame {i}: dbsize {meta.get('dbsize')}"
        meta = {k: v for k, v in meta.items() if k != "dbsize"}
        assert meta == qmeta[i], f"frame {i}: metadata {meta} != {qmeta[i]}"
        r, s = t["rank"], t["score"]
        assert r.dtype == np.int32 and s.dtype == np.float32
        assert len(r) == min(k, len(D)), f"frame {i}: {len(r)} items"
        if exact:
            if not np.array_equal(r, want[i]):
                bad = np.flatnonzero(r != want[i])[0]
                raise AssertionError(f"query {i}: position {bad}: got "
                                     f"{r[bad]} want {want[i][bad]}")
            assert np.array_equal(s, S[i, r].astype(np.float32)), f"query {i}"
        else:
            assert len(set(r.tolist())) == len(r), f"query {i}: repeats"
            assert np.abs(s - S[i, r]).max() <= 1e-5, f"query {i}: scores"
            best = np.sort(S[i])[::-1][:len(r)]
            assert np.abs(best - s).max() <= 1e-5, f"query {i}: not the best"
    print(f"{len(got)} rankings of {len(D)} agree with NumPy "
          f"({'exact' if exact else 'within 1e-5'})")


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
             sys.argv[6] if len(sys.argv) > 6 else "float")
    elif sys.argv[1] == "check":
        check(sys.argv[2:])
    else:
        sys.exit(__doc__)
