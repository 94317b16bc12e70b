"""tkio - read and write tk streams (safetensors documents back to back)
from Python, for the tests' reference scripts.  Independent of the C code:
it follows the format as man 5 tk-stream states it."""
import json
import struct

import numpy as np

DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16,
    "I16": np.int16, "F16": np.float16, "U32": np.uint32, "I32": np.int32,
    "F32": np.float32, "U64": np.uint64, "I64": np.int64, "F64": np.float64,
}
NAMES = {np.dtype(v).str: k for k, v in DTYPES.items()}


def read_doc(f):
    """One document from a binary file object: (metadata, {name: array}),
    or None at the clean end of the file."""
    b = f.read(8)
    if not b:
        return None
    if len(b) < 8:
        raise ValueError("truncated header length")
    (n,) = struct.unpack("<Q", b)
    header = json.loads(f.read(n))
    meta = header.pop("__metadata__", {})
    size = max([v["data_offsets"][1] for v in header.values()], default=0)
    data = f.read(size)
    if len(data) < size:
        raise ValueError("truncated data")
    tensors = {}
    for name, v in header.items():
        a, e = v["data_offsets"]
        if v["dtype"] == "BF16":
            raw = np.frombuffer(data[a:e], dtype=np.uint16)
            arr = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(data[a:e], dtype=DTYPES[v["dtype"]])
        tensors[name] = arr.reshape(v["shape"])
    return meta, tensors


def read_frames(path):
    out = []
    with open(path, "rb") as f:
        while True:
            d = read_doc(f)
            if d is None:
                return out
            out.append(d)


def write_doc(f, meta, tensors):
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        b = arr.tobytes()
        header[name] = {"dtype": NAMES[arr.dtype.str], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    f.write(struct.pack("<Q", len(h)) + h)
    for b in blobs:
        f.write(b)


def write_frames(path, frames):
    with open(path, "wb") as f:
        for meta, tensors in frames:
            write_doc(f, meta, tensors)
