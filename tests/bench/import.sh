#!/bin/bash
# tests/bench/import.sh - tk-import against torch.load on the same
# checkpoint: a full-size Token R101 (1000 classes, 81.3M parameters,
# 326 MB) saved by torch.save in the zip format, then the legacy one.
# tk-import reads, checks and writes a safetensors file; torch.load only
# reads (timed inside Python, after "import torch").  Prints seconds and
# the ratio; the machine's other load counts for both alike.
#   tests/bench/import.sh [DIR]      (default: a temporary folder)
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-/usr/bin/python3}
TK_BIN=${TK_BIN:-$here/bin}
dir=${1:-$(mktemp -d)}
[ $# -gt 0 ] || trap 'rm -rf "$dir"' EXIT
export PYTHONPATH="$here/tests/ref"
"$PY" - "$dir" <<'PY'
import sys, torch, token_ref
torch.manual_seed(1)
m = token_ref.token(depth=101, classes=1000)
sd = {"epoch": 30, "state_dict": m.state_dict(), "optim": {}}
torch.save(sd, sys.argv[1] + "/zip.pth")
torch.save(sd, sys.argv[1] + "/legacy.pth", _use_new_zipfile_serialization=False)
PY
for fmt in zip legacy; do
	f="$dir/$fmt.pth"
	cat "$f" >/dev/null # both start from the page cache
	tk=$( { /usr/bin/time -f "%e %M" "$TK_BIN/tk-import" -q "$f" "$dir/out.st"; } 2>&1 | tail -n 1)
	pt=$("$PY" -c "
import sys, time, resource, torch
t = time.perf_counter(); torch.load(sys.argv[1], map_location='cpu')
print('%.2f %d' % (time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))" "$f")
	set -- $tk $pt
	echo "$fmt: tk-import $1 s (max RSS $(($2 / 1024)) MB), torch.load $3 s (max RSS $(($4 / 1024)) MB), ratio $(echo "scale=2; $3 / $1" | bc)"
	rm -f "$dir/out.st"
done
