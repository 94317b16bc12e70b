"""tk_list_ref - what tk-list must print, computed the way the reference
Python code (Token's Dataset/configdataset.py, revisitop's dataset.py)
reads the same metadata, for tests/tools/list-*.test.

  tk_list_ref.py revisitop ROOT DS [--queries]
  tk_list_ref.py r1m ROOT
  tk_list_ref.py gldv2 ROOT [--clean] [--split train|val] [--val-fraction F]
                 [--seed S] [--label-map FILE]
  tk_list_ref.py shuffle SEED EPOCH        permutes the lines of stdin
  tk_list_ref.py make-gnd ROOT DS PROTO    a small synthetic gnd pickle
  tk_list_ref.py make-gldv2 ROOT           synthetic GLDv2 CSVs
"""
import argparse
import csv
import os
import pickle
import random
import sys

import numpy as np


def num(v):
    """A bbox number as tk-list writes it: repr without a trailing .0."""
    s = repr(float(v))
    return s[:-2] if s.endswith(".0") else s


def line(path, key, label, bbox=None):
    b = ",".join(num(x) for x in bbox) if bbox is not None else ""
    return "%s\t%s\t%d\t%s" % (path, key, label, b)


def revisitop(a):
    with open(os.path.join(a.root, a.ds, "gnd_%s.pkl" % a.ds), "rb") as f:
        cfg = pickle.load(f)
    names = cfg["qimlist"] if a.queries else cfg["imlist"]
    for i, n in enumerate(names):
        bbox = cfg["gnd"][i].get("bbx") if a.queries else None
        print(line(os.path.join(a.root, a.ds, "jpg", n + ".jpg"), n, -1, bbox))


def r1m(a):
    d = os.path.join(a.root, "revisitop1m")
    with open(os.path.join(d, "revisitop1m.txt")) as f:
        names = f.read().splitlines()
    for n in names:
        stem, ext = os.path.splitext(os.path.basename(n))
        print(line(os.path.join(d, "jpg", n + ("" if ext else ".jpg")), stem, -1))


def gldv2(a):
    # Images keyed by id in a dict: first place, last label.
    images = {}
    if a.clean:
        with open(os.path.join(a.root, "train_clean.csv"), newline="") as f:
            for row in csv.DictReader(f):
                for i in row["images"].split(" "):
                    images[i] = row["landmark_id"]
        classes = sorted(set(images.values()))  # strings, as the reference
    else:
        with open(os.path.join(a.root, "train.csv"), newline="") as f:
            for row in csv.DictReader(f):
                images[row["id"]] = int(row["landmark_id"])
        classes = sorted(set(images.values()))
    relabel = {c: k for k, c in enumerate(classes)}
    ids = list(images)
    labels = [relabel[images[i]] for i in ids]
    if a.label_map:
        counts = {}
        for l in labels:
            counts[l] = counts.get(l, 0) + 1
        with open(a.label_map, "w") as f:
            for k, c in enumerate(classes):
                f.write("%d\t%s\t%d\n" % (k, c, counts[k]))
    order = list(range(len(ids)))
    if a.split:
        # build_train_and_validation_splits, restated
        by_label = {}
        for i, l in enumerate(labels):
            by_label.setdefault(l, []).append(i)
        rs = np.random.RandomState(np.random.MT19937(np.random.SeedSequence(a.seed)))
        val, train = [], []
        for l, idx in by_label.items():
            perm = np.arange(len(idx))
            rs.shuffle(perm)
            idx = [idx[p] for p in perm]
            cut = max(1, int(a.val_fraction * len(idx)))
            val += idx[:cut]
            train += idx[cut:]
        for part in (val, train):
            perm = np.arange(len(part))
            rs.shuffle(perm)
            part[:] = [part[p] for p in perm]
        order = val if a.split == "val" else train
    for i in order:
        d = ids[i]
        print(line(os.path.join(a.root, "train", d[0], d[1], d[2], d + ".jpg"),
                   d, labels[i]))


def shuffle(a):
    lines = sys.stdin.read().splitlines()
    rs = np.random.RandomState(np.random.MT19937(np.random.SeedSequence([a.seed, a.epoch])))
    perm = np.arange(len(lines))
    rs.shuffle(perm)
    for p in perm:
        print(lines[p])


def make_gnd(a):
    """A roxford5k-like ground truth: bbx mixing ints and floats."""
    rng = random.Random(a.proto)
    imlist = ["img_%06d" % i for i in range(50)]
    qimlist = ["q_%03d" % i for i in range(6)]
    gnd = []
    for i in range(len(qimlist)):
        x0, y0 = rng.choice([136.5, 78, 0, 12.25]), rng.choice([34.1, 5, 0.5])
        gnd.append({"bbx": [x0, y0, x0 + rng.choice([500, 512.5, 713.2]), 999.9],
                    "easy": [1, 2], "hard": [3], "junk": []})
    d = os.path.join(a.root, a.ds)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "gnd_%s.pkl" % a.ds), "wb") as f:
        pickle.dump({"gnd": gnd, "imlist": imlist, "qimlist": qimlist}, f,
                    protocol=a.proto)


def make_gldv2(a):
    """Landmark ids whose string and numeric orders differ, classes of 1 to
    25 images, ids repeated across rows, quoted fields, CRLF."""
    rng = random.Random(5)
    lms = rng.sample(range(1, 300000), 150) + [5, 10, 100, 7, 0]
    hexid = lambda: "%016x" % rng.getrandbits(64)
    rows, pool = [], []
    for lm in lms:
        ids = [hexid() for _ in range(rng.choice([1, 1, 2, 3, 5, 8, 13, 25]))]
        pool += ids
        rows.append((lm, ids))
    # a few ids again under another landmark: first place, last label
    for lm, ids in rows[::40]:
        ids.append(rng.choice(pool))
    # a one-image landmark whose image moves to a later one: no class left
    single = [ids[0] for lm, ids in rows if len(ids) == 1][3]
    rows.append((424242, [single, hexid()]))
    with open(os.path.join(a.root, "train_clean.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        w.writerow(["landmark_id", "images"])
        for lm, ids in rows:
            w.writerow([lm, " ".join(ids)])
    with open(os.path.join(a.root, "train.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        w.writerow(["id", "url", "landmark_id"])
        for lm, ids in rows:
            for i in ids:
                w.writerow([i, 'http://x.org/%s.jpg?a=1,b="2"' % i, lm])


p = argparse.ArgumentParser()
sub = p.add_subparsers(dest="cmd", required=True)
s = sub.add_parser("revisitop")
s.add_argument("root"), s.add_argument("ds"), s.add_argument("--queries", action="store_true")
s = sub.add_parser("r1m")
s.add_argument("root")
s = sub.add_parser("gldv2")
s.add_argument("root"), s.add_argument("--clean", action="store_true")
s.add_argument("--split", choices=["train", "val"])
s.add_argument("--val-fraction", type=float, default=0.2)
s.add_argument("--seed", type=int, default=0), s.add_argument("--label-map")
s = sub.add_parser("shuffle")
s.add_argument("seed", type=int), s.add_argument("epoch", type=int)
s = sub.add_parser("make-gnd")
s.add_argument("root"), s.add_argument("ds"), s.add_argument("proto", type=int)
s = sub.add_parser("make-gldv2")
s.add_argument("root")
a = p.parse_args()
{"revisitop": revisitop, "r1m": r1m, "gldv2": gldv2, "shuffle": shuffle,
 "make-gnd": make_gnd, "make-gldv2": make_gldv2}[a.cmd.replace("_", "-")](a)
