"""make_pickles DIR - pickles for tests/tools/pickle-python.test.

Writes NAME.pkl with, beside it, NAME.txt (the rendering Python's own
unpickler gives, see pickle_render.py) or NAME.err (words the C reader's
error must contain: the refused global).  NAME.small marks the pickles
small enough for the every-truncation check.
"""
import os
import pickle
import struct
import sys
import warnings

from pickle_render import render

out = sys.argv[1]
warnings.simplefilter("ignore")  # escape_decode on "\\q"


def write(name, data, expect=None, err=None, small=None):
    with open(os.path.join(out, name + ".pkl"), "wb") as f:
        f.write(data)
    if err is not None:
        with open(os.path.join(out, name + ".err"), "w") as f:
            f.write(err + "\n")
        return
    if expect is None:
        expect = render(pickle.loads(data, encoding="latin1"))
    with open(os.path.join(out, name + ".txt"), "w") as f:
        f.write(expect + "\n")
    if small if small is not None else len(data) < 6000:
        open(os.path.join(out, name + ".small"), "w").close()


def plain(proto):
    """Every plain type the protocol has opcodes for."""
    shared = [1, 2]
    sstr = "shared string"
    cyc = []
    cyc.append(cyc)
    dcyc = {}
    dcyc["me"] = dcyc
    rt = ([],)
    rt[0].append(rt)  # a tuple inside its own list: POP/POP_MARK + GET
    o = {
        "none": None,
        "bools": [True, False],
        "ints": [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**31,
                 -2**31 - 1, 2**32, 2**63 - 1, -2**63, 10**18, -10**18],
        "floats": [0.0, -0.0, 1.5, 0.1, 1e300, -2.5e-310, float("inf"),
                   float("-inf"), 136.5, 34.1, 1e16, 123456789.125],
        "strs": ["", "ascii", "\xe9", "\u65e5\u672c\u8a9e", "\U0001F600",
                 "a\x00b", "back\\slash", "new\nline\r\x1a", "\ud800",
                 "quote'\"", "x" * 300, "\\u0041"],
        "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
        "nested": [[[[]]], {"a": {"b": [1, (2, 3)]}}],
        "keys": {1: "a", -5: "b", 2.5: "c", (1, 2): "d", None: "e"},
        "shared": [shared, shared, (shared,), sstr, sstr],
        "cycle": cyc,
        "dcycle": dcyc,
        "rtuple": rt,
    }
    deep = []
    for _ in range(300):
        deep = [deep]
    o["deep"] = deep
    if proto >= 3:
        o["bytes"] = [b"", b"\x00\xff", b"y" * 300]
    if proto >= 4:
        o["sets"] = [{1, "a", (2, 3)}, frozenset({4}), set(), frozenset()]
    if proto >= 5:
        o["bytearray"] = bytearray(b"ab\x00")
    return o


for p in range(6):
    write("plain-p%d" % p, pickle.dumps(plain(p), protocol=p), small=True)
    big = {"d": {str(i): i for i in range(1100)}, "l": list(range(2500)),
           "s": ["s%d" % i for i in range(300)]}
    write("big-p%d" % p, pickle.dumps(big, protocol=p))

# The structure of a revisitop ground-truth file: bbx mixes ints and floats.
gnd = {
    "gnd": [{"bbx": [136.5, 34.1, 648.5, 955.7], "easy": [30, 69, 296],
             "hard": [1, 2], "junk": [4000, 4992]},
            {"bbx": [78, 5, 714, 1000], "easy": [], "hard": [7],
             "junk": []}],
    "imlist": ["ashmolean_000283", "oxford_002124", "radcliffe_camera_000158"],
    "qimlist": ["all_souls_000013", "all_souls_000026"],
}
for p in (2, 3, 4, 5):
    write("gnd-p%d" % p, pickle.dumps(gnd, protocol=p))

# Opcodes Python 3's pickler does not write (Python 2 str, I01, text LONG,
# the 8-byte lengths) and stack opcodes in odd orders.
u8 = lambda n: struct.pack("<Q", n)
hand = {
    "py2-text": b"(dp0\nS'k'\np1\n(lp2\nI01\naI00\naF2.5\naL12L\naI-7\naVx\\u00e9"
                b"\\U0001f600\\\\u\np3\nag3\nasS'esc \\x41\\101\\n\\t\\\\ \\'q\\' "
                b"\\xe9\\q'\np4\nI7\nsS\"dq\"\nNsS'\xe9'\nL-123456789012345678\ns.",
    "py2-bin": b"\x80\x02]q\x00(T\x03\x00\x00\x00abcU\x02\xe9\xffU\x00e.",
    "long4": b"\x80\x02(\x8b\x02\x00\x00\x00\xff\x7f\x8b\x00\x00\x00\x00"
             b"\x8a\x01\x80\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80t.",
    "len8": b"\x80\x05(\x8d" + u8(2) + b"\xc3\xa9\x8e" + u8(3) + b"abc\x96" +
            u8(1) + b"z\x8d" + u8(0) + b"t.",
    "frame": b"\x80\x04\x95" + u8(6) + b"K\x01K\x02\x86.",
    "marks": b"(K\x01K\x02l2\x86(K\x03K\x041(K\x05K\x06t0(K\x07K\x08d"
             b"(K\x09(0t\x87.",
    "sets": b"\x80\x04\x8f(K\x01K\x02\x90(K\x03\x91\x86.",
    "longmemo": b"]r\x05\x00\x00\x00(j\x05\x00\x00\x00K\x01t.",
    "textmemo": b"(lp0\ng0\na.",
    "setitem": b"}(K\x01K\x02K\x03K\x04uK\x05K\x06s.",
    "float-text": b"(F-0.0\nFinf\nF1e+16\nF0.1\nt.",
}
for name, data in hand.items():
    write(name, data)

# Refused: the classic exploits, in both GLOBAL and STACK_GLOBAL forms.
write("os-system-global", b"cos\nsystem\n(S'echo hi'\ntR.",
      err="refused global 'os.system' (pickle offset 0)")
write("eval-global", b"cbuiltins\neval\n(S'1+1'\ntR.",
      err="refused global 'builtins.eval' (pickle offset 0)")
write("eval-stack-global", pickle.dumps(eval, protocol=4),
      err="refused global 'builtins.eval'")


class Evil:
    def __reduce__(self):
        return (os.system, ("echo hi",))


# os.system pickles as posix.system on Linux
write("os-system-reduce", pickle.dumps(Evil(), protocol=4),
      err="refused global '%s.system'" % os.system.__module__)
write("os-system-reduce-p0", pickle.dumps(Evil(), protocol=0),
      err="refused global '%s.system'" % os.system.__module__)
# Protocols 0-3 have no set opcodes, 0-2 no bytes opcodes: globals.
write("set-p2", pickle.dumps({1, 2}, protocol=2),
      err="refused global '__builtin__.set'")
write("bytes-p2", pickle.dumps(b"ab", protocol=2),
      err="refused global '_codecs.encode'")
write("inst", b"(S'x'\nios\nsystem\n.", err="refused global 'os.system'")
write("persid", b"\x80\x02X\x01\x00\x00\x000Q.", err="refused persistent id")
# Memo indices are bounded by the pickle's length (a pickler counts up
# from 0); Python itself would take this one.
write("memo-huge", b"]r\x00\x00\x01\x00(j\x00\x00\x01\x00K\x01t.",
      err="memo index 65536 beyond the pickle's length (pickle offset 1)")
write("magic-80-bits", pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2),
      err="LONG1: integer of 10 bytes beyond 64 bits (pickle offset 2)")
