#!/bin/bash
# tests/coverage.sh - what the test suite runs of the code: the committed
# tree (HEAD, or the working tree's files with --worktree) built in a
# folder of its own with gcc's --coverage, the CPU build and the CUDA
# emulator's, `make test` run there, and gcov's line counts per source
# file of common/, tools/, kernels/ and the CUDA code, fewest first; with
# --lines, each file's lines that never ran.
#
#   tests/coverage.sh [--worktree] [--lines] [DIR]     (default DIR:
#                                                       /tmp/tk-coverage)
#
# A tool that ends by a signal or _exit() (a test of a killed run, of a
# closed pipe) writes no counts: those paths show as not run though a test
# checks them.  About twice the time of `make test`.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
tree=head lines=
while [ $# -gt 0 ]; do
	case $1 in
	--worktree) tree=work; shift ;;
	--lines) lines=1; shift ;;
	-*) echo "usage: tests/coverage.sh [--worktree] [--lines] [DIR]" >&2; exit 1 ;;
	*) break ;;
	esac
done
dir=${1:-/tmp/tk-coverage}
rm -rf "$dir"
mkdir -p "$dir"
if [ $tree = head ]; then
	git archive HEAD | tar -x -C "$dir"
else
	git ls-files -co --exclude-standard -z | tar -c --null -T - | tar -x -C "$dir"
fi
cd "$dir"
PKGS="openblas libjpeg libpng libarchive libcjson"
libs="$(pkg-config --libs $PKGS) --coverage"
emu="-std=c++17 -O1 -g --coverage -Wall -Wextra -Werror -I. -Itests/emu/include"
emu="$emu $(pkg-config --cflags $PKGS) -DTK_CUDA -DTK_EMU -U_FORTIFY_SOURCE -MMD -MP"
j=$(nproc 2>/dev/null || echo 2)
make -j"$j" CFLAGS="-O1 -g --coverage" PKG_LIBS="$libs" all >build.log 2>&1 ||
	{ tail -20 build.log; exit 1; }
make -j"$j" EMU=1 CFLAGS="-O1 -g --coverage" PKG_LIBS="$libs" EMU_CXXFLAGS="$emu" \
	all gpu-tests >>build.log 2>&1 || { tail -20 build.log; exit 1; }
make CFLAGS="-O1 -g --coverage" PKG_LIBS="$libs" test >test.log 2>&1 ||
	echo "note: the suite failed here (test.log); the counts are of what ran"
tail -1 test.log

# gcov per source, run where the compiler ran (the paths it recorded are
# relative to there); its annotated copies go to gcov/.  A file built in
# both builds (common/, kernels/) is counted in each.
mkdir -p gcov
report() { # report BUILD SOURCE...: "percent lines file build" lines
	local b=$1 f o
	shift
	for f in "$@"; do
		o=build/$b/$(dirname "$f")
		case $f in *.cu) o=build/$b/kernels/cuda
			f=$o/$(basename "$f" .cu).cc ;; esac
		if [ ! -e "$o/$(basename "${f%.*}").gcda" ]; then
			echo "0.00 0 $f $b"
			continue
		fi
		gcov -o "$o" "$f" 2>/dev/null |
			awk -v b="$b" '/^File/ { f = $2; gsub("\x27", "", f) }
				/^Lines executed/ && f !~ /^\/|\.h$|\.cuh$|\.cc$/ {
					split($2, a, ":"); sub("%", "", a[2]); print a[2], $4, f, b }'
		for g in *.gcov; do
			[ -e "$g" ] && mv "$g" "gcov/$b-$g"
		done
	done
}
{
	report cpu common/*.c tools/*.c kernels/*.c kernels/cpu/*.c
	report emu common/dist.c common/devnet.c common/devtrain.c common/trainnet*.c \
		kernels/dispatch.c kernels/cuda/*.cu
} | sort -u -k3,4 | sort -n >coverage.txt
echo "lines run, per file (fewest first; $dir/coverage.txt):"
awk '{ printf "%6.2f%% of %5d  %s (%s)\n", $1, $2, $3, $4 }' coverage.txt
awk '{ n[$4] += $2; r[$4] += $1 * $2 / 100 }
	END { for (b in n) printf "in all, the %s build'"'"'s files: %.1f%% of %d lines\n", b,
		100 * r[b] / n[b], n[b] }' coverage.txt
if [ -n "$lines" ]; then
	for g in gcov/cpu-*.c.gcov gcov/emu-*.c.gcov gcov/emu-*.cu.gcov; do
		[ -e "$g" ] && grep -q '#####' "$g" || continue
		echo "== ${g#gcov/}"
		grep '#####' "$g" | sed 's/ *#####: *//'
	done
fi
