"""map_peer - the NumPy peer of tk-map for tests/bench/map.sh: the
revisitop protocol vectorised with np.isin and cumsum over full rankings.

  map_peer.py data GND.pkl DIR N SEED   DIR/ranks.bin (rank frames) and
                                        DIR/ranks.npy [queries, N]: random
                                        rankings of N positions (>= len(imlist):
                                        distractors), positives moved near
                                        the top
  map_peer.py map GND.pkl DIR REPEAT    best of REPEAT; prints wall and CPU
                                        seconds, then mAP E, M, H in percent
"""
import pickle
import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 3)[0] + "/tests/ref")
import tkio  # noqa: E402

SETUPS = ((("easy",), ("junk", "hard")), (("easy", "hard"), ("junk",)),
          (("hard",), ("junk", "easy")))


def data(gnd_path, d, n, seed):
    g = pickle.load(open(gnd_path, "rb"))
    r = np.random.default_rng(seed)
    ranks = np.empty((len(g["qimlist"]), n), np.int32)
    for i, q in enumerate(g["gnd"]):
        x = r.permutation(n).astype(np.int32)
        pos = np.array(list(q["easy"]) + list(q["hard"]), np.int64)
        # the positives somewhere in the first 10000 places
        where = np.flatnonzero(np.isin(x, pos))
        dest = r.choice(10000, len(where), replace=False)
        x[where], x[dest] = x[dest], x[where].copy()
        ranks[i] = x
    np.save(f"{d}/ranks.npy", ranks)
    score = np.linspace(1, -1, n).astype(np.float32)
    tkio.write_frames(f"{d}/ranks.bin", [({"key": k}, {"rank": ranks[i], "score": score})
                                         for i, k in enumerate(g["qimlist"])])


def ap_pk(rank, ok, junk, kappas):
    n = len(ok)
    if n == 0:
        return np.nan, np.full(len(kappas), np.nan)
    isok = np.isin(rank, ok)
    isjunk = np.isin(rank, junk)
    pos = np.flatnonzero(isok)
    r = pos - (np.cumsum(isjunk)[pos] - isjunk[pos])  # junk before each
    if len(r) == 0:
        return 0.0, np.zeros(len(kappas))
    i = np.arange(len(r))
    before = np.where(r == 0, 1.0, i / np.maximum(r, 1))
    after = (i + 1) / (r + 1)
    ap = np.sum((before + after) * (1.0 / n) / 2.0)
    last = r[-1] + 1
    kq = np.minimum(last, kappas)
    pk = np.array([(r + 1 <= k).sum() for k in kq]) / kq
    return ap, pk


def evaluate(g, ranks, kappas=(1, 5, 10)):
    kappas = np.array(kappas)
    out = []
    for pos_l, junk_l in SETUPS:
        aps = []
        for q, rank in zip(g["gnd"], ranks):
            ok = np.concatenate([np.array(q[l], np.int64) for l in pos_l])
            junk = np.concatenate([np.array(q.get(l, []), np.int64) for l in junk_l])
            aps.append(ap_pk(rank, ok, junk, kappas)[0])
        out.append(100 * np.nanmean(aps))
    return out


def bench(gnd_path, d, repeat):
    best = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        g = pickle.load(open(gnd_path, "rb"))
        ranks = np.load(f"{d}/ranks.npy")
        m = evaluate(g, ranks)
        t = (time.perf_counter() - w, time.process_time() - c)
        best = t if best is None or t[0] < best[0] else best
    print("%.3f %.3f %.2f %.2f %.2f" % (*best, *m))


if __name__ == "__main__":
    if sys.argv[1] == "data":
        data(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif sys.argv[1] == "map":
        bench(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
