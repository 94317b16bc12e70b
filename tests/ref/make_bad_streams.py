"""Write the bad streams of tests/tools/stream-bad-input.test into a folder:
each file NAME.bin must be refused with a one-line error (exit 2), except
empty.bin, which is a valid stream of zero frames."""
import json
import os
import struct
import sys

out = sys.argv[1]


def doc(header, data=b"", raw_header=None, hlen=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    n = len(h) if hlen is None else hlen
    return struct.pack("<Q", n) + h + data


good = doc({"__metadata__": {"key": "ok"},
            "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)


def t(name, dtype="F32", shape=(2,), offs=(0, 8)):
    return {name: {"dtype": dtype, "shape": list(shape), "data_offsets": list(offs)}}


cases = {
    "random": os.urandom(4096),
    "empty": b"",
    "huge-header-length": struct.pack("<Q", 10**12) + b"{}" + b" " * 6,
    "short-length": b"\x10\x00\x00",
    "not-json": doc(None, raw_header=b"{this is not json}"),
    "not-object": doc(None, raw_header=b"[1, 2, 3]"),
    "unknown-dtype": doc({"__metadata__": {"key": "k1"}, **t("x", dtype="X9")}, b"\0" * 8),
    "overlap": doc({"__metadata__": {"key": "k2"}, **t("a", offs=(0, 8)), **t("b", offs=(4, 12))}, b"\0" * 12),
    "gap": doc({**t("a", offs=(0, 8)), **t("b", offs=(12, 20))}, b"\0" * 20),
    "past-end": doc(t("a", offs=(0, 8)), b"\0" * 4),
    "cut-in-data": good + good[:-3],
    "cut-in-header": good + good[:20],
    "meta-not-string": doc({"__metadata__": {"key": "k3", "label": 3}, **t("x")}, b"\0" * 8),
    "shape-mismatch": doc(t("x", shape=(3,)), b"\0" * 8),
    "negative-shape": doc(t("x", shape=(-2,)), b"\0" * 8),
    "float-shape": doc(t("x", shape=(2.5,)), b"\0" * 8),
    "overflow-shape": doc(t("x", shape=(2**40, 2**40), offs=(0, 8)), b"\0" * 8),
    "offsets-reversed": doc(t("x", offs=(8, 0)), b"\0" * 8),
    "duplicate-name": doc(None, raw_header=b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                          b'"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', data=b"\0" * 8),
    "header-length-past-end": struct.pack("<Q", 64) + b"{}      ",
    "trailing-garbage": doc(None, raw_header=b'{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} xyz', data=b"\0" * 8),
    "extra-field": doc({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "foo": 1}}, b"\0" * 8),
    "metadata-not-object": doc({"__metadata__": [1], **t("x")}, b"\0" * 8),
}
for name, data in cases.items():
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(data)
