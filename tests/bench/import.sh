#!/bin/bash
# tests/bench/import.sh - tk-import against torch.load on the same
# checkpoint: a full-size Token R101 (1000 classes, 81.3M parameters,
# 326 MB) saved by torch.save in the zip format, then the legacy one.
# tk-import reads, checks and writes a safetensors file (fsync'ed);
# torch.load only reads; "torch.load+write" also writes the same file
# with tests/ref/tkio.py and fsyncs it, as a Python converter would (both
# timed inside Python, after "import torch").  Prints seconds and the
# ratios (peer / tk-import: above 1, tk is faster).
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
import os, sys, time, resource, torch, tkio
t = time.perf_counter(); sd = torch.load(sys.argv[1], map_location='cpu')['state_dict']
t1 = time.perf_counter()
with open(sys.argv[2], 'wb') as f:
    tkio.write_doc(f, {}, {k: v.numpy() for k, v in sd.items()})
    f.flush(); os.fsync(f.fileno())
t2 = time.perf_counter()
print('%.2f %.2f %d' % (t1 - t, t2 - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))" "$f" "$dir/py.st")
	set -- $tk $pt
	echo "$fmt: tk-import $1 s (max RSS $(($2 / 1024)) MB); torch.load $3 s (ratio $(echo "scale=2; $3 / $1" | bc)); torch.load+write $4 s (ratio $(echo "scale=2; $4 / $1" | bc), max RSS $(($5 / 1024)) MB)"
	rm -f "$dir/py.st"
	rm -f "$dir/out.st"
done
