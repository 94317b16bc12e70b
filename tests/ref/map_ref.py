"""map_ref - the revisitop evaluation protocol (Radenovic et al., CVPR 2018)
in Python, written from its description for testing tk-map:

  Easy:   positives easy,        junk junk + hard
  Medium: positives easy + hard, junk junk
  Hard:   positives hard,        junk junk + easy

Junk items are removed from the ranking before scoring.  AP by the
trapezoid rule over the positives' junk-free positions, divided by the
number of positives in the ground truth (so positives missing from a
truncated ranking count as not retrieved).  Queries without positives are
left out of the means.  P@k with k clipped to the junk-free position of
the last positive retrieved; 0 when none was.  Database positions >=
len(imlist) are distractors.  Means in percent, printed as revisitop's
example script prints them (np.around(x * 100, decimals=2) through str()).

  map_ref.py eval GND.pkl RANKS.bin [--kappas 1,5,10] [--json] [--per-query]
                   [--json-out FILE]
      what tk-map must print (and in FILE what --json --per-query prints).
  map_ref.py ranks GND.pkl OUT.bin MODE SEED [--distractors N] [--top K]
      rankings as rank frames: MODE 'perfect' (every query's positives
      first: easy, then hard, then junk, then the rest), 'random'
      (a random permutation of the database and N distractors), 'reverse'.
  map_ref.py synth OUT.pkl OUT.bin SEED
      a small synthetic ground truth with the corner cases (a query with
      no easy positives, one whose items are all junk, duplicates across
      lists) and a ranking with ties, distractors and truncation.
"""
import argparse
import json
import os
import pickle
import sys

import numpy as np

import tkio

PROTOCOLS = (("easy", ("easy",), ("junk", "hard")),
             ("medium", ("easy", "hard"), ("junk",)),
             ("hard", ("hard",), ("junk", "easy")))


def query_scores(rank, ok, junk, kappas):
    """AP and P@k of one ranking; None when there are no positives."""
    nres = len(ok)
    if nres == 0:
        return None, None
    ok, junk = set(ok), set(junk)
    found = []  # junk-free 0-based positions of the positives, in order
    skipped = 0
    for p, x in enumerate(rank.tolist()):
        if x in ok:
            found.append(p - skipped)
        if x in junk:
            skipped += 1
    ap = 0.0
    for i, r in enumerate(found):
        before = 1.0 if r == 0 else i / r
        after = (i + 1) / (r + 1)
        ap += (before + after) * (1.0 / nres) / 2.0
    if not found:
        return ap, np.zeros(len(kappas))
    last = found[-1] + 1
    pk = []
    for k in kappas:
        kq = min(last, k)
        pk.append(sum(1 for r in found if r + 1 <= kq) / kq)
    return ap, np.array(pk)


def evaluate(gnd, ranks, kappas):
    out = {}
    for name, pos_lists, junk_lists in PROTOCOLS:
        aps, pks = [], []
        for g, rank in zip(gnd, ranks):
            ok = [x for l in pos_lists for x in g[l]]
            junk = [x for l in junk_lists for x in g.get(l, [])]
            ap, pk = query_scores(rank, ok, junk, kappas)
            aps.append(ap)
            pks.append(pk)
        kept = [i for i, a in enumerate(aps) if a is not None]
        m = 0.0
        pr = np.zeros(len(kappas))
        for i in kept:
            m += aps[i]
            pr += pks[i]
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.float64(m) / len(kept) if kept else np.float64(np.nan)
            pr = pr / len(kept) if kept else pr * np.nan
        out[name] = (m, pr, aps, pks)
    return out


def load_ranks(path, qimlist):
    frames = tkio.read_frames(path)
    by_key = {m["key"]: t["rank"] for m, t in frames}
    assert len(by_key) == len(frames) == len(qimlist)
    return [by_key[k] for k in qimlist]


def dataset_name(path):
    base = os.path.basename(path)
    if base.endswith(".pkl"):
        base = base[:-4]
    if base.startswith("gnd_"):
        base = base[4:]
    return base


def cmd_eval(a):
    with open(a.gnd, "rb") as f:
        cfg = pickle.load(f)
    kappas = [int(k) for k in a.kappas.split(",")]
    ranks = load_ranks(a.ranks, cfg["qimlist"])
    res = evaluate(cfg["gnd"], ranks, kappas)
    ds = dataset_name(a.gnd)
    E, M, H = (res[p] for p in ("easy", "medium", "hard"))
    if a.json or a.json_out:
        def num(x):
            return None if np.isnan(x) else float(x)
        o = {"dataset": ds, "queries": len(cfg["qimlist"]),
             "map": {p: num(res[p][0] * 100) for p in res},
             "mpk": {"k": kappas, **{p: [num(v) for v in res[p][1] * 100]
                                     for p in res}}}
        if a.per_query or a.json_out:
            o["per_query"] = [
                {"key": k,
                 "ap": {p: None if res[p][2][i] is None else res[p][2][i] * 100
                        for p in res},
                 "pk": {p: None if res[p][3][i] is None else
                        [float(v) * 100 for v in res[p][3][i]] for p in res}}
                for i, k in enumerate(cfg["qimlist"])]
        if a.json_out:
            with open(a.json_out, "w") as f:
                json.dump(o, f)
        if a.json:
            print(json.dumps(o))
            return
    # As revisitop's example_evaluate.py prints them.
    print('>> {}: mAP E: {}, M: {}, H: {}'.format(
        ds, np.around(E[0] * 100, decimals=2), np.around(M[0] * 100, decimals=2),
        np.around(H[0] * 100, decimals=2)))
    print('>> {}: mP@k{} E: {}, M: {}, H: {}'.format(
        ds, kappas, np.around(E[1] * 100, decimals=2),
        np.around(M[1] * 100, decimals=2), np.around(H[1] * 100, decimals=2)))
    if a.per_query:
        head = ["#key", "apE", "apM", "apH"] + [
            f"p{p[0].upper()}@{k}" for p in ("easy", "medium", "hard") for k in kappas]
        print("\t".join(head))
        for i, key in enumerate(cfg["qimlist"]):
            row = [key]
            for p in ("easy", "medium", "hard"):
                ap = res[p][2][i]
                row.append("-" if ap is None else "%.2f" % (ap * 100))
            for p in ("easy", "medium", "hard"):
                pk = res[p][3][i]
                row += ["-"] * len(kappas) if pk is None else \
                    ["%.2f" % (v * 100) for v in pk]
            print("\t".join(row))


def cmd_ranks(a):
    with open(a.gnd, "rb") as f:
        cfg = pickle.load(f)
    rng = np.random.default_rng(a.seed)
    n = len(cfg["imlist"]) + a.distractors
    frames = []
    for key, g in zip(cfg["qimlist"], cfg["gnd"]):
        if a.mode == "perfect":
            first = list(dict.fromkeys(list(g["easy"]) + list(g["hard"]) + list(g["junk"])))
            rest = np.setdiff1d(np.arange(n), first)
            r = np.concatenate([np.array(first, np.int64), rng.permutation(rest)])
        elif a.mode == "reverse":
            first = list(dict.fromkeys(list(g["easy"]) + list(g["hard"])))
            rest = np.setdiff1d(np.arange(n), first)
            r = np.concatenate([rng.permutation(rest), np.array(first[::-1], np.int64)])
        else:
            r = rng.permutation(n)
        r = r[:a.top] if a.top else r
        frames.append(({"key": key}, {"rank": r.astype(np.int32),
                                      "score": np.linspace(1, -1, len(r)).astype(np.float32)}))
    # Frames in a shuffled order: tk-map matches them by key.
    order = rng.permutation(len(frames)) if a.shuffle else range(len(frames))
    tkio.write_frames(a.out, [frames[i] for i in order])


def cmd_synth(a):
    """Corner cases on a 40-image database with 6 queries."""
    rng = np.random.default_rng(a.seed)
    gnd = [
        {"bbx": [0, 0, 10, 10], "easy": [1, 5, 7], "hard": [2, 30], "junk": [0, 3]},
        {"bbx": [0, 0, 10, 10], "easy": [], "hard": [4, 9, 11], "junk": [12]},   # no easy
        {"bbx": [0, 0, 10, 10], "easy": [], "hard": [], "junk": [1, 2, 3]},      # all junk
        {"bbx": [0, 0, 10, 10], "easy": [8, 8, 13], "hard": [13], "junk": [13, 14]},  # duplicates
        {"bbx": None, "easy": [39], "hard": [0], "junk": []},
        {"bbx": [1, 2, 3, 4], "easy": list(range(20, 30)), "hard": [], "junk": []},
    ]
    cfg = {"imlist": [f"im{i:03d}" for i in range(40)],
           "qimlist": [f"q{i}" for i in range(len(gnd))], "gnd": gnd}
    with open(a.out_pkl, "wb") as f:
        pickle.dump(cfg, f, protocol=a.protocol)
    frames = []
    n = 40 + 25  # 25 distractors
    for i, key in enumerate(cfg["qimlist"]):
        r = rng.permutation(n).astype(np.int32)
        if i == 4:
            r = r[:30]  # truncated: maybe without its positives
        if i == 5:
            r = r[:12]
        s = np.round(rng.standard_normal(len(r)), 1).astype(np.float32)
        order = np.lexsort((np.arange(len(r)), -s))  # ties by position
        frames.append(({"key": key}, {"rank": r[order], "score": s[order]}))
    tkio.write_frames(a.out_bin, frames)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval")
    e.add_argument("gnd")
    e.add_argument("ranks")
    e.add_argument("--kappas", default="1,5,10")
    e.add_argument("--json", action="store_true")
    e.add_argument("--per-query", action="store_true")
    e.add_argument("--json-out", help="also write the --json --per-query "
                   "object to this file")
    r = sub.add_parser("ranks")
    r.add_argument("gnd")
    r.add_argument("out")
    r.add_argument("mode", choices=("perfect", "random", "reverse"))
    r.add_argument("seed", type=int)
    r.add_argument("--distractors", type=int, default=0)
    r.add_argument("--top", type=int, default=0)
    r.add_argument("--shuffle", action="store_true")
    s = sub.add_parser("synth")
    s.add_argument("out_pkl")
    s.add_argument("out_bin")
    s.add_argument("seed", type=int)
    s.add_argument("--protocol", type=int, default=2)
    a = ap.parse_args()
    {"eval": cmd_eval, "ranks": cmd_ranks, "synth": cmd_synth}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
