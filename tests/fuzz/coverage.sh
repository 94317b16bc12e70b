#!/bin/bash
# tests/fuzz/coverage.sh - how much of a parser a fuzz corpus reaches: the
# target built with clang's source-based coverage and tests/fuzz/replay.c's
# main, run over the corpora given, and llvm-cov's line and branch counts
# for the source files named.
#
#   tests/fuzz/coverage.sh TARGET 'FILE...' CORPUS...
#   tests/fuzz/coverage.sh stream 'common/stream.c common/safetensors.c' \
#       tests/fuzz/corpus/stream
# Needs clang, llvm-profdata and llvm-cov; builds into build/cov/.
set -eu
cd "$(dirname "$0")/../.."
t=$1 files=$2
shift 2
B=build/cov
mkdir -p "$B"
PKGS="openblas libjpeg libpng libarchive libcjson"
src=$(ls common/*.c kernels/*.c kernels/cpu/*.c | grep -v '_main\.c$')
clang -std=gnu11 -O1 -g -I. $(pkg-config --cflags $PKGS) -fopenmp -Wno-pass-failed \
	-fprofile-instr-generate -fcoverage-mapping \
	-o "$B/fuzz_$t" "tests/fuzz/fuzz_$t.c" tests/fuzz/replay.c $src \
	$(pkg-config --libs $PKGS) -lm -lpthread
rm -f "$B/$t.profraw"
LLVM_PROFILE_FILE="$B/$t.profraw" OMP_NUM_THREADS=1 "$B/fuzz_$t" "$@"
llvm-profdata merge -o "$B/$t.profdata" "$B/$t.profraw"
# shellcheck disable=SC2086
llvm-cov report "$B/fuzz_$t" -instr-profile="$B/$t.profdata" $files
