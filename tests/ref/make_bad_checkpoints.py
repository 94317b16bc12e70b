"""make_bad_checkpoints - malformed and hostile PyTorch checkpoints that
tk-import must refuse with one line and exit 2, never running anything and
never reading out of bounds.  The pickles are written opcode by opcode, so
that every field can be wrong on purpose.

    make_bad_checkpoints.py DIR

writes DIR/<case>.pth and DIR/expect.txt: "<case>\t<text the message must
hold>"."""
import io
import os
import pickle
import struct
import sys
import zipfile
import zlib

import torch

import token_ref
from tkzip import without_crcs, zip_members

MAGIC = 0x1950a86a20f9469cfc6c


class P:
    """A protocol-2 pickle, opcode by opcode."""

    def __init__(self):
        self.b = bytearray(b"\x80\x02")

    def raw(self, b):
        self.b += b
        return self

    def glob(self, mod, name):
        return self.raw(b"c" + mod.encode() + b"\n" + name.encode() + b"\n")

    def str(self, s):
        s = s.encode()
        return self.raw(b"X" + struct.pack("<I", len(s)) + s)

    def int(self, i):
        if 0 <= i < 256:
            return self.raw(b"K" + bytes([i]))
        if -2**31 <= i < 2**31:
            return self.raw(b"J" + struct.pack("<i", i))
        n = (i.bit_length() + 8) // 8
        return self.raw(b"\x8a" + bytes([n]) + i.to_bytes(n, "little", signed=True))

    def tuple(self, items):
        self.raw(b"(")
        for it in items:
            self.value(it)
        return self.raw(b"t")

    def value(self, v):
        if isinstance(v, bool):
            return self.raw(b"\x88" if v else b"\x89")
        if isinstance(v, int):
            return self.int(v)
        if isinstance(v, str):
            return self.str(v)
        if isinstance(v, tuple):
            return self.tuple(v)
        if v is None:
            return self.raw(b"N")
        if callable(v):
            v(self)
            return self
        raise TypeError(v)

    def stop(self):
        self.raw(b".")
        return bytes(self.b)


def pid(key, numel, stype="FloatStorage", kind="storage", legacy=False):
    def w(p):
        p.raw(b"(").str(kind).glob("torch", stype).str(key).str("cpu").int(numel)
        if legacy:
            p.raw(b"N")
        p.raw(b"tQ")  # TUPLE, BINPERSID
    return w


def tensor(storage, offset, size, stride):
    def w(p):
        p.glob("torch._utils", "_rebuild_tensor_v2")
        p.tuple((storage, offset, size, stride, False,
                 lambda q: q.glob("collections", "OrderedDict").raw(b")R")))
        p.raw(b"R")
    return w


def state_dict(entries):
    """{name: writer} as an OrderedDict with SETITEMS."""
    p = P().glob("collections", "OrderedDict").raw(b")R(")
    for k, v in entries.items():
        p.str(k).value(v)
    return p.raw(b"u").stop()


def zip_ckpt(path, pkl, storages):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        for k, b in storages.items():
            z.writestr("archive/data/" + k, b)


def legacy_ckpt(path, pkl, storages, keys=None):
    with open(path, "wb") as f:
        pickle.dump(MAGIC, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump(dict(protocol_version=1001, little_endian=True,
                         type_sizes=dict(short=2, int=4, long=4)), f, protocol=2)
        f.write(pkl)
        keys = list(storages) if keys is None else keys
        pickle.dump(keys, f, protocol=2)
        for k in keys:
            b = storages.get(k, b"")
            f.write(struct.pack("<q", len(b) // 4) + b)


def main():
    out = sys.argv[1]
    expect = []

    def case(name, text):
        expect.append("%s\t%s" % (name, text))
        return os.path.join(out, name + ".pth")

    floats = struct.pack("<10f", *range(10))
    good = lambda size, stride, numel=10, off=0: state_dict(
        {"w": tensor(pid("0", numel), off, size, stride)})

    # Code that torch.load would run: refused by name.
    evil = P().glob("os", "system").str("echo pwned > /tmp/tk-pwned").raw(b"\x85R").stop()
    zip_ckpt(case("os-system", "os.system"), evil, {})
    evil = P().glob("builtins", "eval").str("print('pwned')").raw(b"\x85R").stop()
    legacy_ckpt(case("builtins-eval", "builtins.eval"), evil, {})
    # A whole nn.Module (torch.save(model)) names its class.
    buf = io.BytesIO()
    torch.save(torch.nn.Linear(2, 2), buf)
    open(case("whole-module", "torch.nn.modules.linear.Linear, not a dict of tensors (a whole model, torch.save(model)? save model.state_dict())"), "wb").write(buf.getvalue())
    # ... and under a wrapper key, where its state_dict was meant.
    torch.save({"model": torch.nn.Linear(2, 2), "epoch": 3},
               case("wrapped-module", "'model' holds a torch.nn.modules.linear.Linear, not a dict of tensors (a whole model? save model.state_dict())"))

    # Truncations.
    zip_ckpt(os.path.join(out, "ok.zip"), good((10,), (1,)), {"0": floats})
    whole = open(os.path.join(out, "ok.zip"), "rb").read()
    open(case("truncated-zip", "zip"), "wb").write(whole[:len(whole) * 2 // 3])
    pkl = good((10,), (1,))
    zip_ckpt(case("truncated-pickle", "data.pkl"), pkl[:len(pkl) - 9], {"0": floats})
    legacy_ckpt(os.path.join(out, "ok.legacy"), pkl, {"0": floats})
    whole = open(os.path.join(out, "ok.legacy"), "rb").read()
    open(case("truncated-legacy", "truncated"), "wb").write(whole[:-7])
    open(case("truncated-legacy-pickle", "truncated"), "wb").write(whole[:80])
    open(case("truncated-legacy-object", "object pickle: pickle truncated"), "wb").write(whole[:whole.index(pkl) + len(pkl) // 2])
    os.remove(os.path.join(out, "ok.zip"))
    os.remove(os.path.join(out, "ok.legacy"))

    # Storages and shapes that do not fit.
    zip_ckpt(case("short-storage", "holds 20 bytes"), pkl, {"0": floats[:20]})
    zip_ckpt(case("missing-storage", "storage '0' is not in the file"), pkl, {})
    zip_ckpt(case("past-storage", "reaches element 10 of a storage of 10"),
             good((11,), (1,)), {"0": floats})
    zip_ckpt(case("past-storage-offset", "reaches element"),
             good((5,), (2,), off=2), {"0": floats})
    zip_ckpt(case("negative-size", "negative size"), good((-1,), (1,)), {"0": floats})
    zip_ckpt(case("overflow-size", "overflows"), good((2**62, 2**62), (1, 1)), {"0": floats})
    zip_ckpt(case("huge-stride", "reaches element 9223372036854775808"),
             good((2, 2), (2**63 - 1, 1)), {"0": floats})
    zip_ckpt(case("overflow-stride", "extent overflows"), good((4,), (2**63 - 1,)), {"0": floats})
    zip_ckpt(case("huge-int-size", "64 bits"), good((2**70,), (1,)), {"0": floats})
    zip_ckpt(case("rank-9", "at most 8"), good((1,) * 9, (1,) * 9), {"0": floats})
    zip_ckpt(case("stride-rank", "stride does not match"), good((10,), (1, 1)), {"0": floats})
    legacy_ckpt(case("legacy-short-storage", "holds 5 elements, the pickle says 10"),
                pkl, {"0": floats[:20]})
    legacy_ckpt(case("legacy-unknown-key", "is not a storage of the pickle"),
                pkl, {"0": floats}, keys=["0", "1"])

    # Not a state_dict.
    zip_ckpt(case("not-a-dict", "not a dict"), P().tuple((1, 2)).stop(), {})
    zip_ckpt(case("no-tensors", "no state_dict"),
             P().raw(b"}").str("epoch").int(3).raw(b"s").stop(), {})
    zip_ckpt(case("not-a-tensor", "entry 'x' is a"),
             state_dict({"w": tensor(pid("0", 10), 0, (10,), (1,)), "x": 5}),
             {"0": floats})
    zip_ckpt(case("bad-persid", "persistent id of kind 'module'"),
             state_dict({"w": tensor(pid("0", 10, kind="module"), 0, (10,), (1,))}),
             {"0": floats})
    zip_ckpt(case("storage-type", "refused global"),
             state_dict({"w": tensor(pid("0", 10, stype="ComplexFloatStorage"), 0, (10,), (1,))}),
             {"0": floats})
    zip_ckpt(case("twice-declared", "declared twice"),
             state_dict({"w": tensor(pid("0", 10), 0, (10,), (1,)),
                         "v": tensor(pid("0", 9), 0, (9,), (1,))}), {"0": floats})
    open(case("empty", "file of 0 bytes is too short"), "wb").close()
    open(case("text", "neither a PyTorch checkpoint nor a tk weight file"), "w").write("hello\n" * 20)
    with zipfile.ZipFile(case("torchscript", "TorchScript"), "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/constants.pkl", P().tuple(()).stop())
    with zipfile.ZipFile(case("zip-without-pickle", "without a data.pkl"), "w") as z:
        z.writestr("archive/version", "3\n")

    # Well-formed checkpoints whose tensors do not make a Token model.
    torch.manual_seed(0)
    sd = token_ref.token(depth=50, width=8, mid_dim=32, out_dim=32, heads=4,
                         classes=10).state_dict()
    bad = dict(sd)
    del bad["tr.decoder.1.bn2.weight"]
    torch.save(bad, case("missing-tensor", "missing tensor 'tr.decoder.1.bn2.weight'"))
    bad = dict(sd, **{"tr.extra": torch.zeros(3)})
    torch.save(bad, case("extra-tensor", "unexpected tensor 'tr.extra'"))
    bad = dict(sd, **{"tr.proj.0.bias": torch.zeros(33)})
    torch.save(bad, case("misshaped-tensor",
                         "tensor 'tr.proj.0.bias' has shape [33], the architecture needs [32]"))
    bad = dict(sd, **{"module.tr.query": sd["tr.query"]})
    torch.save(bad, case("duplicate-tensor", "tensor 'tr.query' appears twice"))
    bad = dict(sd, **{"tr.query": sd["tr.query"].long()})
    torch.save(bad, case("integer-weight", "tensor 'tr.query': dtype I64 is not a float"))
    bad = {k: v for k, v in sd.items() if not k.startswith("backbone.block4.5.")}
    torch.save(bad, case("odd-depth", "5 blocks in its third stage"))
    torch.save({"epoch": 3, "state_dict": dict(sd, extra_state="x")},
               case("wrapped-not-a-tensor", "state_dict entry 'extra_state' is a str, not a tensor"))
    torch.save({"optimizer": {}, "epoch": 3, "state_dict": {"a": 1}},
               case("wrapper-without-tensors", "no state_dict: the top-level dict has keys 'optimizer', 'epoch', 'state_dict'"))

    # Damaged bytes and missing checksums (--no-crc-check reads both).
    buf = io.BytesIO()
    torch.save({"epoch": 3, "state_dict": sd}, buf)
    whole = buf.getvalue()
    open(os.path.join(out, "crc-ok.pth"), "wb").write(whole)
    open(case("no-crc", "should be 0x0 (torch.save wrote it without checksums: "
              "--no-crc-check reads it)"), "wb").write(without_crcs(whole))
    bad = bytearray(whole)
    _, d, size, i = max(zip_members(whole), key=lambda m: m[2])
    bad[d + size // 2] ^= 0x10
    open(case("bad-crc", "zip member %s: ZIP bad CRC: 0x%x should be 0x%x (the file is damaged)"
              % (i.filename, zlib.crc32(bad[d:d + size]), i.CRC)), "wb").write(bad)

    with open(os.path.join(out, "expect.txt"), "w") as f:
        f.write("\n".join(expect) + "\n")


main()
