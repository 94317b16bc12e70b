"""make_torch_pickles DIR - torch.save files for tests/tools/pickle-torch.test.

Saves one checkpoint-like object (a state_dict of several dtypes, an
nn.Parameter, a strided view sharing its base's storage, plain values) in
torch's zip format and its legacy format, and writes what the restricted
reader must build from them, rendered by pickle_render.py with the
allow-list below:
  zip-data.pkl, zip-data.txt    the zip's data.pkl and its rendering
  legacy.pt, legacy.txt         the legacy file; renderings of its pickles
                                after the magic number, then "used N"
  legacy.offset                 where the pickle after the magic starts
  allow                         the allow-list, comma-separated
"""
import collections
import io
import os
import pickle
import sys
import zipfile

import torch

from pickle_render import RestrictedUnpickler, render

out = sys.argv[1]
ALLOW = ["collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
         "torch._utils._rebuild_parameter", "torch.FloatStorage",
         "torch.HalfStorage", "torch.BFloat16Storage", "torch.LongStorage",
         "torch.IntStorage", "torch.DoubleStorage", "torch.ByteStorage"]

torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                          torch.nn.Linear(4, 2))
base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
obj = {
    "state_dict": net.state_dict(),
    "param": torch.nn.Parameter(torch.randn(2, 3)),
    "dtypes": [torch.zeros(2, dtype=d) for d in
               (torch.float16, torch.bfloat16, torch.int64, torch.int32,
                torch.float64, torch.uint8)],
    "base": base,
    "view": base[:, 1],
    "epoch": 3,
    "lr": 0.1,
    "name": "r50",
}


def restricted(f):
    return RestrictedUnpickler(f, ALLOW, persid=True)


with open(os.path.join(out, "allow"), "w") as f:
    f.write(",".join(ALLOW) + "\n")

buf = io.BytesIO()
torch.save(obj, buf)
with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
    name = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
    data = z.read(name)
with open(os.path.join(out, "zip-data.pkl"), "wb") as f:
    f.write(data)
with open(os.path.join(out, "zip-data.txt"), "w") as f:
    f.write(render(restricted(io.BytesIO(data)).load()) + "\n")

buf = io.BytesIO()
torch.save(obj, buf, _use_new_zipfile_serialization=False)
raw = buf.getvalue()
with open(os.path.join(out, "legacy.pt"), "wb") as f:
    f.write(raw)
# The legacy format: magic number, protocol version, sys info, the object,
# the storage keys, then raw storage bytes.  The magic number is an 80-bit
# int, beyond the C reader: callers skip it by its bytes.
magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
assert raw.startswith(magic), "legacy file does not start with the magic"
f = io.BytesIO(raw)
f.seek(len(magic))
lines = [render(restricted(f).load()) for _ in range(4)]
lines.append("used %d" % f.tell())
with open(os.path.join(out, "legacy.txt"), "w") as o:
    o.write("\n".join(lines) + "\n")
with open(os.path.join(out, "legacy.offset"), "w") as o:
    o.write("%d\n" % len(magic))
