#!/bin/bash
# tests/bench/labels.sh - the time and memory of tk-decode --labels
# reading a label file of Google Landmarks v2's size: a synthetic
# train_clean.csv of GLDv2-clean's shape (81,313 landmarks, 1,580,470
# 16-hex-digit ids), listed by tk-list gldv2 --clean (every image) and
# --split train, each given to tk-decode --labels with one image to
# decode.  Peers in the same run: tk-decode on that image without
# --labels (the baseline the table's increment is over), and Python
# reading the same file into a dict key -> (label, bbox), what a script
# would do.  Best of REPEAT runs: wall and CPU seconds (user + system),
# peak RSS (/usr/bin/time's %M).
#
#   tests/bench/labels.sh [REPEAT]           (default 3)
#   TK_BENCH_DIR=dir  keeps the generated data there between runs
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-/usr/bin/python3}
repeat=${1:-3}
dir=${TK_BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tk-bench.XXXXXX")}
[ -n "${TK_BENCH_DIR:-}" ] || trap 'rm -rf "$dir"' EXIT
d="$dir/labels"
mkdir -p "$d/gld"
if [ ! -e "$d/gld/train_clean.csv" ]; then
	"$PY" - "$d" <<'PY'
import random, sys
from PIL import Image
d = sys.argv[1]
rng = random.Random(1)
classes, images = 81313, 1580470
counts = [1] * classes
for _ in range(images - classes):
    counts[rng.randrange(classes)] += 1
ids = sorted({"%016x" % rng.getrandbits(64) for _ in range(images + 1000)})[:images]
rng.shuffle(ids)
ids = iter(ids)
landmarks = rng.sample(range(210000), classes)
rows = ["%d,%s" % (lm, " ".join(next(ids) for _ in range(n)))
        for lm, n in zip(landmarks, counts)]
with open(f"{d}/gld/train_clean.csv", "w") as f:
    f.write("landmark_id,images\n" + "\n".join(rows) + "\n")
Image.new("RGB", (64, 48), (90, 120, 150)).save(f"{d}/one.jpg", quality=90)
PY
fi
tk_list="$root/bin/tk-list -q gldv2 --root $d/gld --clean --label-map $d/map.tsv"
[ -e "$d/all.list" ] || $tk_list >"$d/all.list"
[ -e "$d/train.list" ] || $tk_list --split train >"$d/train.list"
cat "$d/all.list" "$d/train.list" >/dev/null # into the page cache

. "$(dirname "$0")/lib.sh"
peer='import sys
d = {}
for line in open(sys.argv[1]):
    p, k, l, b = line.rstrip("\n").split("\t")
    d[k] = (int(l), b)
'
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
read -r bw bc bm <<<"$(best "$repeat" "$d/time" 2 "$root/bin/tk-decode" -q "$d/one.jpg")"
printf "%-34s %9s %6s %6s %8s %9s\n" case lines wall cpu rss_MB +rss_MB
printf "%-34s %9s %6s %6s %8s %9s\n" "tk-decode one.jpg" - "$bw" "$bc" "$bm" -
for l in all train; do
	n=$(wc -l <"$d/$l.list")
	read -r w c m <<<"$(best "$repeat" "$d/time" 2 "$root/bin/tk-decode" -q --labels "$d/$l.list" "$d/one.jpg")"
	printf "%-34s %9s %6s %6s %8s %9s\n" "tk-decode --labels $l.list one.jpg" "$n" "$w" "$c" "$m" \
		"$(awk -v a="$m" -v b="$bm" 'BEGIN{printf "%.1f", a - b}')"
	read -r w c m <<<"$(best "$repeat" "$d/time" 2 "$PY" -c "$peer" "$d/$l.list")"
	printf "%-34s %9s %6s %6s %8s %9s\n" "python dict of $l.list" "$n" "$w" "$c" "$m" -
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
