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
# The same over the functions the corpus reaches at all (a file's writers
# and helpers that the target never calls left out).
# shellcheck disable=SC2086
llvm-cov report "$B/fuzz_$t" -instr-profile="$B/$t.profdata" -show-functions $files |
	awk '$1 != "TOTAL" && $2 ~ /^[0-9]+$/ && NF == 10 && $6 < $5 {
		n++; l += $5; lm += $6; b += $8; bm += $9 }
	END { printf "functions reached: %d; their lines %d of %d (%.1f%%), branches %d of %d (%.1f%%)\n",
		n, l - lm, l, 100 * (l - lm) / (l ? l : 1), b - bm, b, 100 * (b - bm) / (b ? b : 1) }'
