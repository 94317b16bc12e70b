#!/bin/bash
# tests/bench/import.sh - tk-import against torch.load on the same
# checkpoint: a full-size Token R101 (1000 classes, 81.3M parameters,
# 326 MB) saved by torch.save in the zip format, then the legacy one.
# tk-import reads, checks and writes a safetensors file (fsync'ed);
# torch.load only reads; "torch.load+write" also writes the same file
# with tests/ref/tkio.py and fsyncs it, as a Python converter would (both
# timed inside Python, after "import torch").  Prints seconds and the
# ratios (peer / tk-import: above 1, tk is faster).
# Best of REPS (default 3) runs each, alternating.
#   tests/bench/import.sh [DIR]      (default: a temporary folder)
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-/usr/bin/python3}
TK_BIN=${TK_BIN:-$here/bin}
REPS=${REPS:-3}
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
# The best of REPS runs of each, alternating: the fsync of 326 MB takes
# from 0.1 to 0.4 s on a shared disk, whoever asks for it.
min() { echo "$1 $2" | awk '{ print ($2 == "" || $1 < $2) ? $1 : $2 }'; }
for fmt in zip legacy; do
	f="$dir/$fmt.pth"
	cat "$f" >/dev/null # both start from the page cache
	tk= rss= load= lw= prss=
	for _ in $(seq "$REPS"); do
		sync # with no other file's writes pending: each fsyncs its own
		set -- $( { /usr/bin/time -f "%e %M" "$TK_BIN/tk-import" -q "$f" "$dir/out.st"; } 2>&1 | tail -n 1)
		tk=$(min "$1" "$tk") rss=$2
		rm -f "$dir/out.st"
		sync
		set -- $("$PY" -c "
import os, sys, time, resource, torch, tkio
t = time.perf_counter(); sd = torch.load(sys.argv[1], map_location='cpu')['state_dict']
t1 = time.perf_counter()
with open(sys.argv[2], 'wb') as f:
    tkio.write_doc(f, {}, {k: v.numpy() for k, v in sd.items()})
    f.flush(); os.fsync(f.fileno())
t2 = time.perf_counter()
print('%.2f %.2f %d' % (t1 - t, t2 - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))" "$f" "$dir/py.st")
		load=$(min "$1" "$load") lw=$(min "$2" "$lw") prss=$3
		rm -f "$dir/py.st"
	done
	echo "$fmt: tk-import $tk s (max RSS $((rss / 1024)) MB); torch.load $load s (ratio $(echo "scale=2; $load / $tk" | bc)); torch.load+write $lw s (ratio $(echo "scale=2; $lw / $tk" | bc), max RSS $((prss / 1024)) MB)"
done
