#!/bin/bash
# tests/gpu/feed.sh - does the training input keep a GPU fed?  Times
# `tk-decode -j J | tk-augment -j J --size 512` (train.mk's epoch
# stream; JOBS=J there) on the machine it runs on, over the photographs
# in DIR repeated to about 400 images, for J in JOBS (default "2 4 8"),
# and prints images/s against RATE (566: 1.2x PyTorch's 472 images/s
# for R101 at 512^2 on an H200, the GPU training step's goal).  DIR/800
# (if there) is run too: the same photographs with their longer side 800.
#
#   tests/gpu/feed.sh DIR [RATE [JOBS]]      (after make; bin/ on the CPU
#                                             or CUDA build: no GPU used)
set -eu
cd "$(dirname "$0")/../.."
dir=$1
rate=${2:-566}
jobs=${3:-"2 4 8"}
echo "cores: $(nproc)"
for set in "$dir" "$dir/800"; do
	ls "$set"/*.jpg >/dev/null 2>&1 || continue
	list=$(mktemp)
	n=0
	while [ "$n" -lt 400 ]; do
		for f in "$set"/*.jpg; do echo "$f"; n=$((n + 1)); done
	done >"$list"
	n=$(wc -l <"$list")
	cat "$set"/*.jpg >/dev/null # from the page cache, as in an epoch's steady state
	for j in $jobs; do
		t0=$(date +%s.%N)
		bin/tk-decode -q -j "$j" <"$list" |
			bin/tk-augment -q --size 512 --seed 1 --epoch 1 -j "$j" >/dev/null
		t1=$(date +%s.%N)
		awk -v n="$n" -v a="$t0" -v b="$t1" -v j="$j" -v r="$rate" -v s="$set" \
			'BEGIN { ips = n / (b - a); printf "RESULT feed %s JOBS=%d: %d images in %.2f s, %.0f images/s (%.2fx of %d)\n", s, j, n, b - a, ips, ips / r, r }'
	done
	rm -f "$list"
done
