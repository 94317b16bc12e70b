"""check_bench.py ROOT NAME SIZE [REAL_GND.pkl] - check a benchmark that
pipelines/mkbench.py made: the revisitop ground truth is consistent and has
the real files' structure (against REAL_GND when given), the grades agree
with how the views were made (ROOT/views.csv), and the GLDv2 training
files parse and name existing images.  Prints what it checked; exits 1 on
the first failure with the reason."""
import csv
import os
import pickle
import pickletools
import re
import sys

from PIL import Image

root, name, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
real = sys.argv[4] if len(sys.argv) > 4 else None


def need(cond, what):
    if not cond:
        print("check_bench: " + what, file=sys.stderr)
        sys.exit(1)


# ---- the ground-truth pickle ----
gpath = os.path.join(root, name, f"gnd_{name}.pkl")
raw = open(gpath, "rb").read()
need(raw[:2] == b"\x80\x03", f"{gpath}: not pickle protocol 3 (starts {raw[:2]!r})")
gnd = pickle.loads(raw)
need(type(gnd) is dict and list(gnd) == ["gnd", "imlist", "qimlist"],
     f"top level: {type(gnd).__name__} with keys {list(gnd) if isinstance(gnd, dict) else '-'}")
im, qim, gl = gnd["imlist"], gnd["qimlist"], gnd["gnd"]
need(type(im) is list and type(qim) is list and type(gl) is list, "imlist/qimlist/gnd not lists")
need(all(type(s) is str for s in im + qim), "a name is not a str")
need(len(set(im)) == len(im) and len(set(qim)) == len(qim), "duplicate names")
need(not set(im) & set(qim), "a query is also in the database (revisitop keeps them apart)")
need(len(gl) == len(qim) > 0, f"{len(gl)} gnd entries for {len(qim)} queries")
jpg = os.path.join(root, name, "jpg")
files = sorted(os.listdir(jpg))
need(files == sorted(n + ".jpg" for n in im + qim), "jpg/ does not hold exactly imlist + qimlist")

views = {r["path"]: r for r in csv.DictReader(open(os.path.join(root, "views.csv")))}
vkey = {os.path.basename(p)[:-4]: r for p, r in views.items()}
for i, (q, g) in enumerate(zip(qim, gl)):
    where = f"query {i} ({q})"
    need(type(g) is dict and list(g) == ["bbx", "easy", "hard", "junk"], f"{where}: keys {list(g)}")
    b = g["bbx"]
    need(type(b) is list and len(b) == 4 and all(type(v) in (int, float) for v in b), f"{where}: bbx {b}")
    w, h = Image.open(os.path.join(jpg, q + ".jpg")).size
    need(0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h, f"{where}: bbx {b} not inside {w}x{h}")
    need((b[2] - b[0]) * (b[3] - b[1]) >= 0.2 * w * h, f"{where}: bbx {b} is a small part of {w}x{h}")
    sets = {}
    for k in ("easy", "hard", "junk"):
        v = g[k]
        need(type(v) is list and all(type(j) is int for j in v), f"{where}: {k} is not a list of int")
        need(v == sorted(set(v)), f"{where}: {k} not sorted or has duplicates")
        need(all(0 <= j < len(im) for j in v), f"{where}: {k} index out of range")
        sets[k] = set(v)
    need(not (sets["easy"] & sets["hard"] or sets["easy"] & sets["junk"] or sets["hard"] & sets["junk"]),
         f"{where}: easy/hard/junk overlap")
    need(sets["easy"] or sets["hard"], f"{where}: no positives")
    lm = vkey[q]["landmark"]
    need(vkey[q]["kind"] == "query", f"{where}: views.csv says {vkey[q]['kind']}")
    mine = {j for j, n in enumerate(im) if vkey[n]["kind"] == "db" and vkey[n]["landmark"] == lm}
    need(sets["easy"] | sets["hard"] | sets["junk"] == mine,
         f"{where}: easy+hard+junk are not exactly the views of {lm}")
    for k in sets:
        need(all(vkey[im[j]]["grade"] == k for j in sets[k]), f"{where}: a {k} view graded otherwise")
distractors = sum(vkey[n]["kind"] == "distractor" for n in im)
print(f"gnd: {len(qim)} queries, {len(im)} database images ({distractors} distractors): consistent")

# ---- grades against how the views were made ----
for p, r in views.items():
    f = {k: float(r[k]) for k in ("visible", "share", "occluded", "rotation", "perspective")}
    w, h = int(r["width"]), int(r["height"])
    img = Image.open(os.path.join(root, p))
    need(img.size == (w, h) and img.format == "JPEG" and img.mode == "RGB", f"{p}: not an RGB JPEG of {w}x{h}")
    need(max(w, h) == size or r["junk"] == "tiny" and max(w, h) < size, f"{p}: {w}x{h} for --size {size}")
    need(abs(f["rotation"]) <= 15 and f["perspective"] <= 0.15, f"{p}: rotation/perspective beyond the limits")
    if r["grade"] in ("easy", "query"):
        # Training views may show half the landmark: a training photograph
        # leaves no room around it.
        need(abs(f["rotation"]) <= 5 and f["perspective"] <= 0.04 and f["occluded"] <= 0.1
             and f["visible"] >= (0.5 if r["kind"] == "train" else 0.7)
             and int(r["quality"]) >= 80 and r["strong"] == "-",
             f"{p}: an {r['grade']} view made like a hard one: {r}")
    if r["grade"] == "query":
        need(f["visible"] >= 0.98 and f["occluded"] == 0, f"{p}: a query that hides its landmark")
    if r["grade"] == "hard":
        need(r["strong"] != "-" and f["occluded"] <= 0.45, f"{p}: a hard view without a strong factor")
    if r["grade"] == "junk":
        need(r["junk"] == "tiny" and max(w, h) <= min(96, size // 2) or r["junk"] == "occluded" and f["occluded"] >= 0.6
             or r["junk"] == "partial" and f["visible"] <= 0.18, f"{p}: junk that is not: {r}")
print(f"views: {len(views)} images graded as made")

# ---- structure against the real ground truth ----
def shape(d):
    """Key orders, element types, and pickle opcodes."""
    return dict(top=list(d), entry={tuple(g) for g in d["gnd"]},
                names={type(s) for s in d["imlist"] + d["qimlist"]},
                bbx={type(v) for g in d["gnd"] for v in g["bbx"]} | {("len", len(g["bbx"])) for g in d["gnd"]},
                idx={type(j) for g in d["gnd"] for k in ("easy", "hard", "junk") for j in g[k]})


ops = {op.name for op, _, _ in pickletools.genops(raw)}
if real:
    rraw = open(real, "rb").read()
    rg = pickle.loads(rraw)
    a, b = shape(gnd), shape(rg)
    need(rraw[:2] == raw[:2], f"protocol differs from {real}")
    need(a["top"] == b["top"] and a["entry"] == b["entry"], f"key order differs from {real}: {a} vs {b}")
    for k in ("names", "bbx", "idx"):
        need(a[k] <= b[k], f"{k}: {a[k]} not among {real}'s {b[k]}")
    rops = {op.name for op, _, _ in pickletools.genops(rraw)}
    need(ops <= rops, f"opcodes {sorted(ops - rops)} absent from {real}")
    print(f"structure: as {os.path.basename(real)} (keys, types, opcodes {sorted(ops)})")
else:
    print("structure: real gnd absent ($TK_SHARED unset), compared with the description only")

# ---- the GLDv2 training files ----
rows = list(csv.reader(open(os.path.join(root, "train.csv"), newline="")))
need(rows[0] == ["id", "url", "landmark_id"], f"train.csv header {rows[0]}")
label = {}
for r in rows[1:]:
    need(len(r) == 3 and re.fullmatch(r"[0-9a-f]{16}", r[0]) and r[2].isdigit(), f"train.csv row {r}")
    need(r[0] not in label, f"train.csv: id {r[0]} twice")
    label[r[0]] = int(r[2])
    need(os.path.isfile(os.path.join(root, "train", r[0][0], r[0][1], r[0][2], r[0] + ".jpg")),
         f"train.csv: {r[0]} has no file")
on_disk = {f[:-4] for _, _, fs in os.walk(os.path.join(root, "train")) for f in fs}
need(on_disk == set(label), "train/ holds files train.csv does not list, or the reverse")
rows = list(csv.reader(open(os.path.join(root, "train_clean.csv"), newline="")))
need(rows[0] == ["landmark_id", "images"], f"train_clean.csv header {rows[0]}")
clean = {}
for r in rows[1:]:
    need(len(r) == 2 and r[0].isdigit() and r[1], f"train_clean.csv row {r}")
    need(int(r[0]) not in clean, f"train_clean.csv: landmark {r[0]} twice")
    ids = r[1].split(" ")
    clean[int(r[0])] = ids
    need(all(label.get(i) == int(r[0]) for i in ids), f"train_clean.csv: landmark {r[0]} disagrees with train.csv")
need(set(clean) == set(label.values()), "train_clean.csv and train.csv name different landmarks")
tv = {os.path.basename(p)[:-4]: r for p, r in views.items() if r["kind"] in ("train", "noisy")}
cl = {i for ids in clean.values() for i in ids}
need(cl == {k for k, r in tv.items() if r["kind"] == "train"}, "train_clean.csv is not the clean views")
need(len({r["landmark"] for r in tv.values()}) == len(clean), "one landmark id per training landmark")
print(f"train: {len(clean)} landmarks, {len(cl)} clean of {len(label)} images: every id has its file")
