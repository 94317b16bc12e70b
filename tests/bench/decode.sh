#!/bin/bash
# tests/bench/decode.sh - images per second of tk-decode --max-size N
# against PIL doing the same work, measured side by side in one run on the
# same photographs (Debian's mate-backgrounds and plasma-workspace-
# wallpapers: 12 + 11 photographs of 1280x1024 to 2560x1920):
#   reference path: tk-decode --max-size N       PIL open + convert + thumbnail
#   draft path:     tk-decode --max-size N --draft   PIL open + thumbnail + convert
# with 1 and 2 threads (PIL: 1 and 2 processes).  Each figure is the best of
# REPEAT passes over the set, tk-decode's and PIL's passes alternating, so
# that both see the same load on a shared machine.  Output goes to
# /dev/null for tk-decode; PIL keeps its images in memory.
#
#   tests/bench/decode.sh [N [REPEAT]]       (after make)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$(dirname "$here")")
n=${1:-1024}
repeat=${2:-3}
PY=${PY:-/usr/bin/python3}
bin=$root/bin
. "$here/lib.sh"
photographs
files=("${photos[@]}")

tk_pass() { # tk_pass ARGS...: images/s of one pass of tk-decode ARGS
	local t0 t1
	t0=$(date +%s.%N)
	"$bin/tk-decode" "$@" "${files[@]}" >/dev/null
	t1=$(date +%s.%N)
	echo "${#files[@]} / ($t1 - $t0)" | bc -l
}
max() { echo "if ($1 > $2) $1 else $2" | bc -l; }

printf '%d photographs, --max-size %d, best of %d alternating passes\n' ${#files[@]} "$n" "$repeat"
printf '%-34s %10s %10s %7s\n' "" "tk-decode" "PIL" "ratio"
for mode in ref draft; do
	for j in 1 2; do
		extra=()
		[ $mode = draft ] && extra=(--draft)
		t=0 p=0
		for _ in $(seq "$repeat"); do
			t=$(max "$t" "$(tk_pass --max-size "$n" --jobs $j "${extra[@]}")")
			p=$(max "$p" "$("$PY" "$here/decode_pil.py" $mode "$n" $j 1 "${files[@]}")")
		done
		printf '%-34s %10.2f %10.2f %6.2fx\n' "$mode, $j thread$([ $j = 1 ] || echo s) (images/s)" \
			"$t" "$p" "$(echo "$t / $p" | bc -l)"
	done
done
