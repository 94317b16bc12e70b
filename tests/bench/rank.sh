#!/bin/bash
# tests/bench/rank.sh - tk-rank against NumPy (matmul + argpartition or
# argsort) in one run: 100 queries against a 100k x 1024 database, the top
# 100 and the full ranking; plus the machine's copy bandwidth, against which
# the database's GB/s are read.  Best of REPEAT runs each; wall and CPU
# seconds (user + system, all threads), since on a shared machine the wall
# clock measures the neighbours too.
#
#   tests/bench/rank.sh [N [NQ [DIM [REPEAT]]]]     (default 100000 100 1024 3)
#   TK_BENCH_DIR=dir  keeps the generated data there between runs
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-/usr/bin/python3}
bin=$root/bin
n=${1:-100000} nq=${2:-100} dim=${3:-1024} repeat=${4:-3}
dir=${TK_BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tk-bench.XXXXXX")}
[ -n "${TK_BENCH_DIR:-}" ] || trap 'rm -rf "$dir"' EXIT
peer="$PY $root/tests/bench/rank_peer.py"
tag="$n-$nq-$dim"
if [ ! -e "$dir/db-$tag.bin" ]; then
	$peer data "$dir" "$n" "$nq" "$dim"
	"$bin/tk-cat" --from-npy "$dir/db.npy" --tensor desc >"$dir/db-$tag.bin"
	"$bin/tk-cat" --from-npy "$dir/q.npy" --tensor desc >"$dir/q-$tag.bin"
	mv "$dir/db.npy" "$dir/db-$tag.npy"
	mv "$dir/q.npy" "$dir/q-$tag.npy"
fi
ln -sf "db-$tag.npy" "$dir/db.npy"
ln -sf "q-$tag.npy" "$dir/q.npy"
cat "$dir/db-$tag.bin" "$dir/db-$tag.npy" >/dev/null # into the page cache

. "$(dirname "$0")/lib.sh"

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
# The OpenBLAS kernels NumPy runs (the library's choice for this CPU, or
# OPENBLAS_CORETYPE's); tk-rank's scores are its own kernel.
"$bin/tk-rank" --version | grep '^BLAS: '
bw=$($peer membw 512 5)
echo "memory bandwidth (NumPy copy of 512 MiB, read + write): $bw GB/s"
gb=$(stat -c %s "$dir/db-$tag.bin" | awk '{print $1 / 1e9}')
printf "%-28s %9s %9s %9s %9s %9s %7s\n" case tk-wall tk-cpu np-wall np-cpu np-load ratio
for k in 100 0; do
	if [ "$k" = 0 ]; then opt=(); name="full ranking"; else opt=(--top "$k"); name="top $k"; fi
	read -r tw tc _ <<<"$(best "$repeat" "$dir/time" 3 "$bin/tk-rank" -q "${opt[@]}" "$dir/q-$tag.bin" "$dir/db-$tag.bin")"
	read -r lw lc rw rc <<<"$($peer rank "$dir" "$k" "$repeat")"
	# NumPy's time: loading the .npy files plus the ranking itself.
	npw=$(awk -v a="$lw" -v b="$rw" 'BEGIN{printf "%.3f", a + b}')
	ncpu=$(awk -v a="$lc" -v b="$rc" 'BEGIN{printf "%.3f", a + b}')
	nl=$lw
	ratio=$(awk -v a="$npw" -v b="$tw" 'BEGIN{printf "%.2f", a / b}')
	printf "%-28s %9s %9s %9s %9s %9s %6sx\n" "$name ($nq x $n)" "$tw" "$tc" "$npw" "$ncpu" "$nl" "$ratio"
	echo "  tk-rank reads the database at $(awk -v g="$gb" -v t="$tw" 'BEGIN{printf "%.2f", g / t}') GB/s (wall) = $(awk -v g="$gb" -v t="$tw" -v b="$bw" 'BEGIN{printf "%.0f", 100 * g / t / b}')% of the copy bandwidth"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ratio = NumPy wall (load + compute) / tk-rank wall; > 1: tk-rank is faster"
