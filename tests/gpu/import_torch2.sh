#!/bin/bash
# tests/gpu/import_torch2.sh [PYTHON] - tk-import on checkpoints that a
# torch 2 writes, run by check.sh where the GPU machine has one (Debian's
# torch, which the CPU tests use, is 1.13): a small Token model wrapped by
# torch.compile (its "_orig_mod." names), saved by torch.save with its
# CRC-32s and without them (torch.serialization.set_crc32_options(False)).
# Each must import as torch.load reads it (tests/ref/check_import.py);
# the one without CRC-32s only with --no-crc-check, and without it must be
# refused with the message that names the option.  Skips, saying why,
# where torch is older than these features.
set -eu
PY=${1:-python3}
here=$(cd "$(dirname "$0")/../.." && pwd)
TK_BIN=${TK_BIN:-$here/bin}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
export PYTHONPATH="$here/tests/ref"
"$PY" - "$d" <<'PY' || exit 1
import sys, torch, token_ref
d = sys.argv[1]
if not hasattr(torch, "compile") or not hasattr(torch.serialization, "set_crc32_options"):
    print("SKIP import-torch2: torch %s has no torch.compile or set_crc32_options"
          % torch.__version__)
    open(d + "/skip", "w").close()
    sys.exit(0)
open(d + "/version", "w").write(torch.__version__)
torch.manual_seed(0)
m = token_ref.token(depth=50, width=8, mid_dim=32, out_dim=32, heads=4, classes=10)
sd = torch.compile(m).state_dict()  # the wrapper alone: nothing compiles
assert sd and all(k.startswith("_orig_mod.") for k in sd), list(sd)[:3]
torch.save({"epoch": 2, "state_dict": sd}, d + "/crc.pth")
torch.serialization.set_crc32_options(False)
torch.save({"epoch": 2, "state_dict": sd}, d + "/nocrc.pth")
PY
[ -e "$d/skip" ] && exit 0
fail() { echo "FAIL import-torch2: $*"; exit 1; }
"$TK_BIN/tk-import" "$d/crc.pth" "$d/crc.st" || fail "with CRC-32s"
"$TK_BIN/tk-import" --no-crc-check "$d/nocrc.pth" "$d/nocrc.st" || fail "--no-crc-check"
! "$TK_BIN/tk-import" "$d/nocrc.pth" "$d/x.st" 2>"$d/err" || fail "read without CRC-32s unasked"
cat "$d/err"
grep -q "without checksums: --no-crc-check reads it" "$d/err" || fail "message"
for f in crc nocrc; do
	"$PY" "$here/tests/ref/check_import.py" "$d/$f.pth" "$d/$f.st" --epoch=2 ||
		fail "$f.pth: tensors differ from torch.load's"
done
echo "RESULT import-torch2: torch $(cat "$d/version"):" \
	"a compiled model's names, with and without CRC-32s, import as torch.load reads them"
