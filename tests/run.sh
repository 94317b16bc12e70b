#!/bin/bash
# tests/run.sh - run tk's tests: C unit tests (TK_UNIT/test_*), and the
# shell tests tests/tools/*.test; with TK_EMU set (make test does), also
# the GPU tests tests/gpu/*.test on the CUDA emulator's build in $TK_EMU,
# named emu-gpu-ops etc., and the emulator's own tests/emu/*.test; with
# TK_EMU_ASAN set (make test SANITIZE=1), tests/emu/emu-asan.  Each test
# passes (exit 0), is skipped (exit 77, its last line says why) or fails
# (anything else; its output is shown).  Ends with the line "N passed, N
# failed"; exits 1 on any failure.
#
#   tests/run.sh [TEST...]      TEST: a path or a name like cat-roundtrip
#                               or emu-gpu-model
#   TK_TEST_JOBS=n              tests run n at a time (default: cores)
set -u
here=$(cd "$(dirname "$0")" && pwd)
export TK_ROOT=$(dirname "$here")
export TK_BIN=${TK_BIN:-$TK_ROOT/bin}
export TK_UNIT=${TK_UNIT:-$TK_ROOT/build/cpu/tests}
export PY=${PY:-/usr/bin/python3}
export PATH="$TK_BIN:$PATH"
# The shared data folder beside a developer's checkout; absent in a user's
# clone, where the tests that need it skip.
if [ -z "${TK_SHARED:-}" ] && [ -d "$TK_ROOT/../shared/data" ]; then
	export TK_SHARED=$(cd "$TK_ROOT/../shared" && pwd)
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}
# make test SANITIZE=thread: no second's sleep at exit (TSan's default),
# which would shift the timing that the watched ranks' tests check; a
# watched rank's test child ends with _exit, leaving the watch's finished
# thread unjoined, which is no fault
export TSAN_OPTIONS=${TSAN_OPTIONS:-atexit_sleep_ms=0:report_thread_leaks=0:exitcode=99}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=99}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# Tests run side by side, more threads than cores: libgomp's idle threads
# spin less, as the pipelines have them (tk-train(1), ENVIRONMENT).
[ -n "${OMP_WAIT_POLICY:-}" ] || export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-30000}

tests=()
if [ $# -gt 0 ]; then
	for t in "$@"; do
		if [ -e "$here/tools/$t.test" ]; then tests+=("$here/tools/$t.test")
		elif [ "${t#emu-}" != "$t" ] && [ -e "$here/gpu/${t#emu-}.test" ]; then
			tests+=("emu:$here/gpu/${t#emu-}.test")
		elif [ "${t#emu-}" != "$t" ] && [ -e "$here/emu/${t#emu-}.test" ]; then
			tests+=("emu:$here/emu/${t#emu-}.test")
		elif [ "$t" = emu-asan ]; then tests+=("$here/emu/emu-asan")
		elif [ -e "$TK_UNIT/$t" ]; then tests+=("$TK_UNIT/$t")
		elif [ -f "$t" ]; then tests+=("$t")
		else echo "no such test: $t" >&2; exit 1; fi
	done
else
	# the emulated GPU tests first: they are the longest
	if [ -n "${TK_EMU:-}" ]; then
		for t in "$here"/gpu/*.test "$here"/emu/*.test; do tests+=("emu:$t"); done
	fi
	# the CUDA code under ASan: long too (make test SANITIZE=1)
	[ -n "${TK_EMU_ASAN:-}" ] && tests+=("$here/emu/emu-asan")
	for t in "$TK_UNIT"/test_*; do [ -x "$t" ] && tests+=("$t"); done
	for t in "$here"/tools/*.test; do [ -e "$t" ] && tests+=("$t"); done
fi

logdir=$(mktemp -d "${TMPDIR:-/tmp}/tk-tests.XXXXXX")
trap 'rm -rf "$logdir"' EXIT
jobs_max=${TK_TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}

name_of() {
	case "$1" in
	emu:*) echo "emu-$(basename "${1#emu:}" .test)" ;;
	*) basename "$1" .test ;;
	esac
}

run_one() {
	local t=$1 name log rc start
	name=$(name_of "$t")
	log="$logdir/$name.log"
	start=$(date +%s)
	case "$t" in
	emu:*)
		# two emulated devices, so that the NCCL test runs its ranks on two
		# GPUs as well as on one
		if [ -z "${TK_EMU:-}" ]; then
			echo "emu-* tests need TK_EMU, the emulator's build" \
				"(make test TESTS=$name builds it and sets it)" >"$log"
			false
		else
			TK_BIN=$TK_EMU/bin TK_GPU=$TK_EMU/tests/gpu TK_EMU_DEVICES=2 \
				timeout "${TK_TEST_TIMEOUT:-1800}" bash "${t#emu:}" >"$log" 2>&1
		fi ;;
	*.test) timeout "${TK_TEST_TIMEOUT:-1800}" bash "$t" >"$log" 2>&1 ;;
	*) timeout "${TK_TEST_TIMEOUT:-1800}" "$t" >"$log" 2>&1 ;;
	esac
	rc=$?
	echo "$rc $(( $(date +%s) - start ))" >"$logdir/$name.rc"
}

running=0
for t in "${tests[@]}"; do
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs_max" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

pass=0 fail=0 skip=0
for t in "${tests[@]}"; do
	name=$(name_of "$t")
	# a runner that died left no result: a failure, never the last one's
	rc="no result" secs=?
	[ -e "$logdir/$name.rc" ] && read -r rc secs <"$logdir/$name.rc"
	if [ "$rc" = 0 ]; then
		pass=$((pass + 1)); echo "PASS $name (${secs}s)"
	elif [ "$rc" = 77 ]; then
		skip=$((skip + 1)); echo "SKIP $name: $(tail -n 1 "$logdir/$name.log")"
	else
		fail=$((fail + 1)); echo "FAIL $name (exit $rc, ${secs}s)"
		tail -n 40 "$logdir/$name.log" | sed 's/^/    /'
	fi
done
[ "$skip" -gt 0 ] && echo "($skip skipped)"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
