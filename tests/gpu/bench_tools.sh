#!/bin/bash
# tests/gpu/bench_tools.sh - the real tools on the GPU, timed, one
# "RESULT" line each:
#   tk-extract --device cuda at each precision on a stream of 1024x768
#     frames (an R101 Token model from tk-init, scales 1, sqrt 2, 1/sqrt 2,
#     output to /dev/null): images/s after the first image (which pays
#     for cuDNN's algorithm search);
#   the same with every convolution through cuDNN (TK_CONV_PATH=dnn);
#   the bf16 run's per-layer profile (TK_PROFILE=1: lines "profile ...",
#     the first two images' algorithm searches and kernel loading left out);
#   tk-extract | tk-aggregate on the GPU (the same N frames), and the
#     descriptors of tf32 and bf16 against fp32's (cosine);
#   tk-rank on the CPU and the GPU, 70 queries against 100k x 1024;
#   tk-extract bf16 on images of 16 sizes, twice, by each way of finding
#     cuDNN's algorithms (TK_CUDNN_SEARCH): the whole run's time.
#
#   bash tests/gpu/bench_tools.sh [FRAMES]   from the repository root;
#   bin/ a CUDA build; PYTHON: a python3 with numpy (default python3)
set -u
cd "$(dirname "$0")/../.."
B=$PWD/bin
REF=$PWD/tests/ref
PY=${PYTHON:-python3}
W=${TK_BENCH_DIR:-/tmp/tk-bench}
N=${1:-24}
rm -rf "$W"
mkdir -p "$W"
export PYTHONPATH=$REF
T0=$(date +%s.%N)
el() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

"$B/tk-init" -q --arch r101 --classes 0 -o "$W/r101.safetensors" || exit 1
M=$W/r101.safetensors
# Eight different frames, repeated: a stream of N.
"$PY" "$REF/synth_images.py" "$W/f8.bin" 1 768x1024 768x1024 768x1024 768x1024 \
	768x1024 768x1024 768x1024 768x1024 || exit 1
for ((i = 0; i < (N + 7) / 8; i++)); do cat "$W/f8.bin"; done >"$W/frames.bin"
echo "setup: $(el "$T0") s"

# rate LOG: the "after the first" figure of a tk-extract summary.
rate() { sed -n 's/.*(\([0-9.]*\) images\/s after the first.*/\1/p' "$1" | tail -1; }

# x NAME FRAMES-FILES... -- ARGS: tk-extract on the GPU, its log in x-NAME.log.
x() {
	local name=$1 files=()
	shift
	while [ "$1" != -- ]; do files+=("$1"); shift; done
	shift
	timeout 40 "$B/tk-extract" --device cuda --progress -m "$M" "$@" "${files[@]}" \
		>/dev/null 2>"$W/x-$name.log"
	echo $?
}
for p in bf16 tf32 fp32; do
	t=$(date +%s.%N)
	rc=$(x $p "$W/frames.bin" -- --precision $p)
	tail -2 "$W/x-$p.log"
	echo "RESULT tk-extract --device cuda --precision $p R101 1024x768 3 scales:" \
		"$(rate "$W/x-$p.log") images/s after the first ($N frames; exit $rc;" \
		"$(el "$t") s in all with loading and cuDNN's search)"
	if [ $p = bf16 ]; then
		TK_PROFILE=1 x prof "$W/f8.bin" -- --precision bf16 >/dev/null
		grep profile "$W/x-prof.log" | head -40
	fi
done
t=$(date +%s.%N)
rc=$(TK_CONV_PATH=dnn x dnn "$W/f8.bin" "$W/f8.bin" -- --precision bf16)
echo "RESULT tk-extract bf16 every convolution through cuDNN: $(rate "$W/x-dnn.log")" \
	"images/s after the first (16 frames; exit $rc; $(el "$t") s)"

# The pipeline (its rate: tk-extract's, and tk-aggregate's own), and the
# precisions' descriptors against fp32's.
for p in fp32 tf32 bf16; do
	t=$(date +%s.%N)
	timeout 40 "$B/tk-extract" --device cuda --precision $p --progress -m "$M" \
		"$W/frames.bin" 2>"$W/p-$p.log" |
		timeout 40 "$B/tk-aggregate" --device cuda --precision $p --progress -m "$M" \
			>"$W/d-$p.bin" 2>"$W/a-$p.log"
	echo "RESULT tk-extract | tk-aggregate --device cuda --precision $p: $N images," \
		"$(rate "$W/p-$p.log") images/s after the first (tk-aggregate's own:" \
		"$(rate "$W/a-$p.log"); $(el "$t") s in all)"
done
for p in tf32 bf16; do
	"$PY" "$REF/agree.py" "$W/d-$p.bin" "$W/d-fp32.bin" desc \
		--label "RESULT R101 descriptors $p vs fp32 on the GPU"
done

# tk-rank: 70 queries, 100k x 1024 database (a file in the page cache).
"$PY" - "$W" <<'EOF' || exit 1
import sys
import numpy as np
r = np.random.default_rng(0)
x = r.standard_normal((100000, 1024)).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
np.save(sys.argv[1] + "/db.npy", x)
q = x[:70] + 0.05 * r.standard_normal((70, 1024)).astype(np.float32)
np.save(sys.argv[1] + "/q.npy", q / np.linalg.norm(q, axis=1, keepdims=True))
EOF
"$B/tk-cat" --from-npy "$W/db.npy" --tensor desc >"$W/db.bin" &&
	"$B/tk-cat" --from-npy "$W/q.npy" --tensor desc >"$W/q.bin" || exit 1
cat "$W/db.bin" >/dev/null
for dev in cpu cuda; do
	for top in "--top 100" ""; do
		t=$(date +%s.%N)
		timeout 30 "$B/tk-rank" -q --device $dev $top "$W/q.bin" "$W/db.bin" >"$W/r-$dev.bin"
		rc=$?
		echo "RESULT tk-rank --device $dev ${top:-full} 70 x 100k x 1024 (file):" \
			"$(el "$t") s (exit $rc)"
	done
done
cmp -s "$W/r-cpu.bin" "$W/r-cuda.bin" && echo "tk-rank: full rankings identical" ||
	echo "tk-rank: full rankings differ (float rounding of the products)"
# Images of many sizes, as a dataset's (16 sizes of at most 1024 pixels a
# side, both orientations, 3 scales): tk-extract bf16's whole run with
# cuDNN's algorithms timed for each size, lent to near sizes (the
# default), or from its heuristics (TK_CUDNN_SEARCH).
"$PY" "$REF/synth_images.py" "$W/sizes.bin" 4 768x1024 683x1024 680x1024 576x1024 \
	1024x768 1024x683 1024x1024 765x1024 1024x680 819x1024 640x1024 1024x576 \
	1024x640 731x1024 1024x731 1024x819 || exit 1
for m in time near heuristic; do
	t=$(date +%s.%N)
	rc=$(TK_CUDNN_SEARCH=$m x search-$m "$W/sizes.bin" "$W/sizes.bin" -- --precision bf16)
	echo "RESULT tk-extract bf16 16 sizes x 2, TK_CUDNN_SEARCH=$m: $(el "$t") s in all," \
		"$(rate "$W/x-search-$m.log") images/s after the first (exit $rc)"
done
echo "bench_tools: $(el "$T0") s"
