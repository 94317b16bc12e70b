# tests/lib.sh - sourced by the shell tests (tests/tools/*.test).
# Gives: $T (a fresh temporary folder, removed at exit), fail, skip,
# expect_error STATUS CMD... (the command must exit STATUS and print exactly
# one line to stderr, naming "error:"), need_torch, need_shared.
set -u
: "${TK_BIN:?run through tests/run.sh or make test}"
T=$(mktemp -d "${TMPDIR:-/tmp}/tk-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
export PATH="$TK_BIN:$PATH"
PY=${PY:-/usr/bin/python3}
REF="$TK_ROOT/tests/ref"
export PYTHONPATH="$REF${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "skipped: $*"; exit 77; }

# expect_error STATUS CMD...: CMD exits STATUS, says one line on stderr
# holding "error:", and writes nothing on stdout.
expect_error() {
	local want=$1; shift
	"$@" >"$T/.out" 2>"$T/.err"
	local rc=$?
	[ "$rc" = "$want" ] || { cat "$T/.err" >&2; fail "'$*' exited $rc, expected $want"; }
	[ "$(wc -l <"$T/.err")" = 1 ] || { cat "$T/.err" >&2; fail "'$*' did not print exactly one line on stderr"; }
	grep -q "error:" "$T/.err" || { cat "$T/.err" >&2; fail "'$*': no 'error:' in its message"; }
	cat "$T/.err"
}

need_torch() {
	"$PY" -c 'import torch, numpy' 2>/dev/null || skip "needs $PY with torch and numpy"
}

need_shared() {
	[ -n "${TK_SHARED:-}" ] && [ -d "$TK_SHARED/data" ] || skip "../shared/data is absent (a developer checkout has it)"
}
