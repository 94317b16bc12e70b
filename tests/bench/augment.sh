#!/bin/bash
# tests/bench/augment.sh - the training input path, `tk-decode | tk-augment
# --size N` (JPEG to augmented u8 crops), against the reference's loader
# doing the same work in PyTorch's DataLoader workers' place (PIL +
# torchvision: tests/bench/augment_peer.py), side by side in one run on
# the same photographs: Debian's mate-backgrounds and
# plasma-workspace-wallpapers (12 + 11 photographs of 1280x1024 to
# 2560x1920), as they are and re-encoded by PIL with their longer side
# 800 pixels (quality 90), the size of many a landmark photograph.  With 1
# and 2 jobs (tk: -j on both tools, two processes either way; PyTorch: 1
# and 2 worker processes), best of REPEAT passes, tk's and PyTorch's
# alternating.  Reports images/s, CPU milliseconds an image (tk: user +
# system of both tools; PyTorch: its workers' process time) and their
# ratio, and the cores each needs to feed a GPU at RATE images/s (566,
# 1.2x PyTorch's 472 for R101 at 512^2 on an H200).  PyTorch's side also
# converts to float and normalises, which tk-train does on the device.
#
#   tests/bench/augment.sh [N [REPEAT [RATE]]]       (after make)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$(dirname "$here")")
n=${1:-512}
repeat=${2:-3}
rate=${3:-566}
PY=${PY:-/usr/bin/python3}
bin=$root/bin
. "$here/lib.sh"
photographs
full=("${photos[@]}")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tk-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$PY" - "$tmp" "${full[@]}" <<'PY'
import sys
from PIL import Image
for i, f in enumerate(sys.argv[2:]):
    img = Image.open(f).convert("RGB")
    img.thumbnail((800, 800), Image.Resampling.LANCZOS)
    img.save(f"{sys.argv[1]}/{i:02d}.jpg", quality=90)
PY
small=("$tmp"/*.jpg)
cat "${small[@]}" >/dev/null # into the page cache

tk_pass() { # tk_pass JOBS FILE...: "images/s cpu_ms" of one pass
	local j=$1
	shift
	/usr/bin/time -o "$tmp/time" -f "%e %U %S" bash -c \
		'"$0/tk-decode" -q -j "$1" "${@:3}" | "$0/tk-augment" -q --size "$2" -j "$1" >/dev/null' \
		"$bin" "$j" "$n" "$@"
	awk -v k=$# '{ printf "%.2f %.1f\n", k / $1, 1000 * ($2 + $3) / k }' "$tmp/time"
}
# better A B: the pass of the two with more images/s
better() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); print (x[1] >= y[1] ? a : b) }'; }

printf '%d photographs (4 times a pass), %dx%d crops, best of %d alternating passes\n' ${#full[@]} "$n" "$n" "$repeat"
printf '%-26s %21s %21s %11s %15s\n' "" "tk images/s (CPU ms)" "PyTorch" "ratio CPU" "cores @ $rate/s"
for set in full 800; do
	# each photograph 4 times a pass, so that a pass lasts long enough
	# to time
	if [ $set = full ]; then one=("${full[@]}"); else one=("${small[@]}"); fi
	files=("${one[@]}" "${one[@]}" "${one[@]}" "${one[@]}")
	for j in 1 2; do
		t="0 0" p="0 0"
		for _ in $(seq "$repeat"); do
			t=$(better "$t" "$(tk_pass $j "${files[@]}")")
			p=$(better "$p" "$("$PY" "$here/augment_peer.py" "$n" $j 1 "${files[@]}")")
		done
		read -r ti tc <<<"$t"
		read -r pi pc <<<"$p"
		printf '%-26s %11s (%6s ms) %11s (%6s ms) %10.2fx %7.1f / %.1f\n' \
			"$set, $j job$([ $j = 1 ] || echo s)" "$ti" "$tc" "$pi" "$pc" \
			"$(echo "$pc / $tc" | bc -l)" "$(echo "$rate * $tc / 1000" | bc -l)" \
			"$(echo "$rate * $pc / 1000" | bc -l)"
	done
done
