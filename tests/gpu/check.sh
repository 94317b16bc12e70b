#!/bin/bash
# tests/gpu/check.sh - the GPU check, in one run on a machine with an
# NVIDIA GPU, nvcc and PyTorch (its pip packages bring cuDNN and NCCL);
# no network.  Builds `make CUDA=1` with the Debian packages that
# tests/gpu/prepare.sh put in .carry/ (unpacked with dpkg -x into a
# temporary folder), runs test_cuda, the training step (bench_train,
# R101 at 512x512, against PyTorch's bf16 autocast; again with every
# convolution through cuDNN and with --deterministic's algorithms),
# `make test-cuda` (the tools on the GPU against the CPU), the op
# benchmarks (GEMM, tk-rank's ways) and PyTorch's, tk-import on
# checkpoints the machine's torch 2 writes (tests/gpu/import_torch2.sh),
# the training input on the machine's cores (tests/gpu/feed.sh, on
# photographs carried in .photos), the real tools' benchmarks
# (bench_tools.sh) and PyTorch's on the same GPU, the bf16 training step
# on the NCHW float backbone (TK_TRAIN_NHWC=0), the step and PyTorch's
# once more, and prints a summary last.  About 5 minutes on an H200
# (311 s on 2026-11-30); every step is bounded by a timeout, and all of
# them by the budget.
#
#   bash tests/gpu/check.sh            (from the repository root)
#   TK_CHECK_SKIP_BENCH=1              build and test only
#   TK_CHECK_JOBS=n                    make -j (default: cores)
#   TK_CHECK_BUDGET=s                  seconds for everything (300): each
#                                      step's timeout is cut to what is left
#   TK_CHECK_CPU_TESTS=1               also `make test` (the CPU suite)
#   TK_CHECK_STEPS="build test_cuda ..."  only these steps (the summary
#                                      names them); build is one
#   TK_CHECK_GPU_TESTS="gpu-train ..."  test-cuda runs only these
# Logs go to $OUT (if set) or /tmp/tk-check.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
LOG=${OUT:-/tmp/tk-check}
mkdir -p "$LOG"
T0=$(date +%s)
summary=()
say() { echo; echo "== [$(( $(date +%s) - T0 ))s] $*"; }
note() { summary+=("$*"); }
DEADLINE=$((T0 + ${TK_CHECK_BUDGET:-300}))
step() { # step NAME TIMEOUT CMD...: run, log, note the result
	local name=$1 to=$2; shift 2
	if [ -n "${TK_CHECK_STEPS:-}" ] && [[ " $TK_CHECK_STEPS " != *" $name "* ]]; then
		note "$(printf '%-14s not asked for (TK_CHECK_STEPS)' "$name")"
		return 0
	fi
	local left=$((DEADLINE - $(date +%s)))
	[ "$to" -gt "$left" ] && to=$left
	if [ "$to" -lt 15 ]; then
		note "$(printf '%-14s skipped: out of time' "$name")"
		return 124
	fi
	say "$name (timeout ${to}s): $*"
	local t=$(date +%s)
	timeout "$to" "$@" 2>&1 | tee "$LOG/$name.log"
	local rc=${PIPESTATUS[0]}
	note "$(printf '%-14s exit %3d  %4ds' "$name" "$rc" $(( $(date +%s) - t )))"
	return "$rc"
}

say "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | head -3
nproc; uname -r; (. /etc/os-release && echo "$PRETTY_NAME"); ldd --version | head -1
PYTHON=${PYTHON:-python3}
$PYTHON -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), torch.cuda.get_device_name(0))' 2>&1

# ---- the Debian packages: headers and libraries of the CPU side ----
DEPS=/tmp/tk-deps
rm -rf "$DEPS"; mkdir -p "$DEPS"
n=0
for f in .carry/*.deb; do
	[ -e "$f" ] || continue
	dpkg -x "$f" "$DEPS" && n=$((n + 1))
done
echo "unpacked $n packages into $DEPS"
[ "$n" -gt 0 ] || echo "warning: no .carry/*.deb: run tests/gpu/prepare.sh here first and carry .carry"
A=x86_64-linux-gnu
PKG_CFLAGS="-I$DEPS/usr/include -I$DEPS/usr/include/$A -I$DEPS/usr/include/$A/openblas-pthread -I$DEPS/usr/include/libpng16 -I$DEPS/usr/include/cjson"
DEPLIBS="$DEPS/usr/lib/$A/openblas-pthread:$DEPS/usr/lib/$A:$DEPS/lib/$A"
# GNU parallel (gpu-eval's), where the machine has none and its perl runs
# the carried one
if ! command -v parallel >/dev/null && [ -x "$DEPS/usr/bin/parallel" ] &&
	"$DEPS/usr/bin/parallel" --version >/dev/null 2>&1; then
	export PATH="$PATH:$DEPS/usr/bin"
fi
echo "GNU parallel: $(command -v parallel || echo none)"
PKG_LIBS="-L$DEPS/usr/lib/$A/openblas-pthread -L$DEPS/usr/lib/$A -L$DEPS/lib/$A -Wl,-rpath-link,$DEPLIBS -lopenblas -ljpeg -lpng16 -larchive -lcjson"

# ---- CUDA: nvcc, and cuDNN / NCCL / cuBLAS from the toolkit or pip ----
NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc 2>/dev/null | head -1)
SITE=$($PYTHON -c 'import os, nvidia; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null)
[ -z "$NVCC" ] && [ -n "$SITE" ] && NVCC=$(ls "$SITE"/nvidia/*/bin/nvcc 2>/dev/null | head -1)
[ -n "$NVCC" ] || { echo "no nvcc found"; exit 1; }
export PATH="$(dirname "$NVCC"):$PATH"
echo "nvcc: $NVCC: $(nvcc --version | tail -2 | head -1)"
# One folder of links to the pip packages' headers and libraries (the
# toolkit's own come first on the compiler's paths).
CU=/tmp/tk-cuda
rm -rf "$CU"; mkdir -p "$CU/include" "$CU/lib"
if [ -n "$SITE" ]; then
	echo "pip NVIDIA packages: $SITE/nvidia"
	for d in "$SITE"/nvidia/*/include "$SITE"/nvidia/*/*/include; do
		[ -d "$d" ] || continue
		for f in "$d"/*; do
			[ -e "$CU/include/${f##*/}" ] || ln -s "$f" "$CU/include/"
		done
	done
	for d in "$SITE"/nvidia/*/lib "$SITE"/nvidia/*/lib64 "$SITE"/nvidia/*/*/lib; do
		[ -d "$d" ] || continue
		for f in "$d"/lib*.so*; do
			[ -e "$f" ] || continue
			b=${f##*/}
			[ -e "$CU/lib/$b" ] || ln -s "$f" "$CU/lib/$b"
			s=${b%%.so*}.so # libcudnn.so.9 -> libcudnn.so
			[ -e "$CU/lib/$s" ] || ln -s "$f" "$CU/lib/$s"
		done
	done
fi
ls "$CU/include" | grep -E '^(cudnn|nccl|cublas)' | tr '\n' ' '; echo
ls "$CU/lib" | grep -E '^lib(cudnn|nccl|cublas|cudart)[^_]*\.so' | tr '\n' ' '; echo
export LD_LIBRARY_PATH="$CU/lib:$DEPLIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
MK=(CUDA=1 CUDNN_HOME="$CU" NCCL_HOME="$CU" PKG_CFLAGS="$PKG_CFLAGS" PKG_LIBS="$PKG_LIBS -L$CU/lib -Wl,-rpath,$CU/lib")
JOBS=${TK_CHECK_JOBS:-$(nproc)}

# ---- build, test, benchmarks: the most telling first ----
step build 120 make -j"$JOBS" "${MK[@]}" all gpu-tests || {
	printf '%s\n' "${summary[@]}"; exit 1; }
ldd bin/tk-cat | grep -E 'cudnn|nccl|cublas|cudart|openblas|not found'
GPU=build/cuda/tests/gpu
# What no GPU run has measured yet comes first (the training step, the
# tools' tests after the resize fix, the top-K ways), the extraction
# benchmark (measured twice) last.
step test_cuda 60 "$GPU/test_cuda"
export PYTHONUNBUFFERED=1
if [ -z "${TK_CHECK_SKIP_BENCH:-}" ]; then
	# (TK_CUDNN_LOG: cuDNN's timings of each convolution's algorithms, in
	# bench_train.log)
	step bench_train 60 env TK_CUDNN_LOG=1 "$GPU/bench_train" bf16 32 3
	step torch_train 60 $PYTHON tests/gpu/bench_torch.py train
fi
if [ -z "${TK_CHECK_SKIP_BENCH:-}" ]; then
	# every convolution through cuDNN, as before the 1x1 ones became
	# GEMMs: what that change gained
	step bench_train_dnn 50 env TK_CONV_PATH=dnn "$GPU/bench_train" bf16 32 3
	# what tk-train --deterministic costs (cuDNN's heuristics' deterministic
	# algorithms against its timed fastest)
	step bench_train_det 50 env TK_BENCH_DETERMINISTIC=1 "$GPU/bench_train" bf16 32 3
fi
# each test bounded, so that run.sh reports all of them inside the step
gt=()
[ -n "${TK_CHECK_GPU_TESTS:-}" ] &&
	gt=(GPU_TESTS="$(for t in $TK_CHECK_GPU_TESTS; do printf 'tests/gpu/%s.test ' "$t"; done)")
step test-cuda 150 env TK_TEST_TIMEOUT=125 make "${MK[@]}" PY="$PYTHON" "${gt[@]}" test-cuda
[ -n "${TK_CHECK_CPU_TESTS:-}" ] && step test-cpu 200 make -j"$JOBS" "${MK[@]}" test
if [ -z "${TK_CHECK_SKIP_BENCH:-}" ]; then
	step bench_ops 40 "$GPU/bench_ops"
	step torch_rank 40 $PYTHON tests/gpu/bench_torch.py rank
fi
# Not the GPU's, but only here is there a torch 2: tk-import on what it
# writes (torch.compile's names, checkpoints without CRC-32s).
step import_torch2 60 bash tests/gpu/import_torch2.sh "$PYTHON"
if [ -z "${TK_CHECK_SKIP_BENCH:-}" ]; then
	# The training input on this machine's cores (photographs carried in
	# .photos, made by hand: tests/gpu/feed.sh says how), against the
	# training step's goal
	[ -d .photos ] && step feed 40 bash tests/gpu/feed.sh .photos 566 "2 4 8"
	step bench_tools 150 env PYTHON="$PYTHON" bash tests/gpu/bench_tools.sh 24
	step torch_extract 60 $PYTHON tests/gpu/bench_torch.py extract
	# bf16 on the NCHW float backbone, as before the channels-last one:
	# what that change gained
	step bench_train_nchw 50 env TK_TRAIN_NHWC=0 "$GPU/bench_train" bf16 32 3
fi

# The training step and PyTorch's once more, last: how far the figures
# move from run to run on the machine (a shared GPU's)
if [ -z "${TK_CHECK_SKIP_BENCH:-}" ]; then
	step bench_train_again 40 "$GPU/bench_train" bf16 32 3
	step torch_train_again 50 $PYTHON tests/gpu/bench_torch.py train
fi

say "summary ($(( $(date +%s) - T0 ))s in all)"
printf '%s\n' "${summary[@]}"
grep -h '^RESULT' "$LOG"/*.log 2>/dev/null
exit 0
