#!/bin/bash
# tests/bench/map.sh - tk-map against a NumPy implementation of the
# revisitop protocol (np.isin, cumsum), in one run: the 70 queries of
# Revisited Oxford, each ranking 1M positions (4993 images, the rest
# distractors), the positives within the first 10000.  Target: under 1 s.
# Best of REPEAT runs; wall and CPU seconds (user + system).  Needs
# ../shared/data/revisitop (or GND=path/to/gnd.pkl).
#
#   tests/bench/map.sh [N [REPEAT]]       (default 1000000 3)
#   TK_BENCH_DIR=dir  keeps the generated data there between runs
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-/usr/bin/python3}
n=${1:-1000000} repeat=${2:-3}
shared=${TK_SHARED:-$root/../shared}
gnd=${GND:-$shared/data/revisitop/gnd_roxford5k.pkl}
[ -e "$gnd" ] || { echo "no $gnd: set GND or TK_SHARED" >&2; exit 77; }
dir=${TK_BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tk-bench.XXXXXX")}
[ -n "${TK_BENCH_DIR:-}" ] || trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/map-$n"
d="$dir/map-$n"
peer="$PY $root/tests/bench/map_peer.py"
[ -e "$d/ranks.bin" ] || $peer data "$gnd" "$d" "$n" 1
cat "$d/ranks.bin" "$d/ranks.npy" >/dev/null # into the page cache

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
b=""
for _ in $(seq "$repeat"); do
	/usr/bin/time -o "$d/time" -f "%e %U %S" "$root/bin/tk-map" "$gnd" "$d/ranks.bin" >"$d/out"
	t=$(awk '{printf "%.3f %.3f", $1, $2 + $3}' "$d/time")
	if [ -z "$b" ] || awk -v a="$t" -v b="$b" 'BEGIN{split(a,x," ");split(b,y," ");exit !(x[1]<y[1])}'; then b=$t; fi
done
read -r tw tc <<<"$b"
read -r nw nc e m h <<<"$($peer map "$gnd" "$d" "$repeat")"
head -n 1 "$d/out"
echo ">> NumPy peer: mAP E: $e, M: $m, H: $h"
printf "%-30s %9s %9s %9s %9s %7s\n" case tk-wall tk-cpu np-wall np-cpu ratio
printf "%-30s %9s %9s %9s %9s %6sx\n" "70 queries x $n" "$tw" "$tc" "$nw" "$nc" \
	"$(awk -v a="$nw" -v b="$tw" 'BEGIN{printf "%.1f", a / b}')"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ratio = NumPy wall / tk-map wall (tk-map reads the $(du -m "$d/ranks.bin" | cut -f1) MB rank stream, NumPy the ranks' .npy)"
