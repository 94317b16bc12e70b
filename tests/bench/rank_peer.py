"""rank_peer - the NumPy peer of tk-rank for tests/bench/rank.sh, and a
memory bandwidth probe.

  rank_peer.py data DIR N NQ DIM     DIR/db.npy, DIR/q.npy (L2-normalised)
  rank_peer.py rank DIR K REPEAT     best of REPEAT: load, q @ db.T, then
                                     argpartition + sort of the top K (K > 0)
                                     or a stable argsort of every row (K = 0);
                                     prints wall and CPU seconds of the load,
                                     then of the ranking
  rank_peer.py membw MB REPEAT       copy bandwidth (read + write) in GB/s
"""
import sys
import time

import numpy as np


def data(d, n, nq, dim):
    r = np.random.default_rng(0)
    db = np.empty((n, dim), np.float32)
    for i in range(0, n, 10000):
        x = r.standard_normal((min(10000, n - i), dim)).astype(np.float32)
        db[i:i + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    q = db[r.integers(0, n, nq)] + 0.05 * r.standard_normal((nq, dim)).astype(np.float32)
    np.save(f"{d}/db.npy", db)
    np.save(f"{d}/q.npy", q.astype(np.float32))


def rank(d, k, repeat):
    best = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        db = np.load(f"{d}/db.npy")
        q = np.load(f"{d}/q.npy")
        w1, c1 = time.perf_counter(), time.process_time()
        s = q @ db.T
        if k:
            top = np.argpartition(-s, k, axis=1)[:, :k]
            ts = np.take_along_axis(s, top, 1)
            o = np.argsort(-ts, axis=1, kind="stable")
            r = np.take_along_axis(top, o, 1)
        else:
            r = np.argsort(-s, axis=1, kind="stable")
        np.take_along_axis(s, r, 1)  # the scores, as tk-rank writes them
        w2, c2 = time.perf_counter(), time.process_time()
        t = (w1 - w0, c1 - c0, w2 - w1, c2 - c1)
        if best is None or t[0] + t[2] < best[0] + best[2]:
            best = t
        del db, s, r
    print("%.3f %.3f %.3f %.3f" % best)


def membw(mb, repeat):
    a = np.ones(mb << 18, np.float32)
    b = np.empty_like(a)
    best = 1e9
    for _ in range(repeat):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    print("%.2f" % (2 * a.nbytes / best / 1e9))


if __name__ == "__main__":
    c = sys.argv[1]
    if c == "data":
        data(sys.argv[2], *map(int, sys.argv[3:6]))
    elif c == "rank":
        rank(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif c == "membw":
        membw(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(__doc__)
