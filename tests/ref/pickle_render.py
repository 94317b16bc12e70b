"""pickle_render - render an unpickled Python value as tests/unit/test_pickle
renders what common/pickle.c built, so the two can be compared as text.

  None True False 12 1.5 (%.17g)  "str" b"bytes"  (bytes outside printable
  ASCII, and " and \\, as \\xHH of the UTF-8 / raw bytes)
  [list] (tuple) {k: v} set{sorted items}  ... for a container met again
  on its own path (a cycle)
  G<module.name>  C(fn, args[, kwargs=][, state=][, items=][, list=])
  P(pid)

RestrictedUnpickler is the same allow-list idea done in Python: allowed
globals become Global, calls become Call, persistent ids Persid; nothing
runs.  It is the reference for the C reader's PK_GLOBAL/PK_CALL trees.
"""
import pickle
import sys

sys.setrecursionlimit(20000)


class Global:
    def __init__(self, name):
        self.name = name

    def __call__(self, *args):  # REDUCE
        return Call(self, args)


class Call:
    def __init__(self, fn, args, kwargs=None):
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.state = None
        self.items = None
        self.list = None

    def __setstate__(self, state):  # BUILD
        if self.state is not None:
            raise pickle.UnpicklingError("BUILD twice")
        self.state = state

    def __setitem__(self, k, v):  # SETITEM(S)
        if self.items is None:
            self.items = []
        self.items.append((k, v))

    def append(self, v):  # APPEND(S)
        if self.list is None:
            self.list = []
        self.list.append(v)

    def extend(self, vs):
        for v in vs:
            self.append(v)


class Persid:
    def __init__(self, pid):
        self.pid = pid


class RestrictedUnpickler(pickle._Unpickler):
    """Pure-Python unpickler (its dispatch can be hooked) with an allow-list."""

    def __init__(self, f, allow=(), persid=False):
        super().__init__(f, encoding="latin1")
        self.allow = set(allow)
        self.persid = persid

    def find_class(self, module, name):
        full = module + "." + name
        if full not in self.allow:
            raise pickle.UnpicklingError("refused global '%s'" % full)
        return Global(full)

    def persistent_load(self, pid):
        if not self.persid:
            raise pickle.UnpicklingError("refused persistent id")
        return Persid(pid)

    dispatch = dict(pickle._Unpickler.dispatch)

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(Call(cls, args))

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(Call(cls, args, kwargs))

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex


def quote(b):
    out = ['"']
    for c in b:
        if 0x20 <= c < 0x7F and c not in (0x22, 0x5C):
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    out.append('"')
    return "".join(out)


def render(v, path=()):
    if isinstance(v, (list, dict, set, frozenset, tuple, Call, Persid)):
        if any(v is p for p in path):
            return "..."
        path = path + (v,)
    r = lambda x: render(x, path)
    if v is None:
        return "None"
    if v is True:
        return "True"
    if v is False:
        return "False"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "%.17g" % v
    if isinstance(v, str):
        return quote(v.encode("utf-8", "surrogatepass"))
    if isinstance(v, (bytes, bytearray)):
        return "b" + quote(bytes(v))
    if isinstance(v, list):
        return "[" + ", ".join(r(x) for x in v) + "]"
    if isinstance(v, tuple):
        return "(" + ", ".join(r(x) for x in v) + ")"
    if isinstance(v, dict):
        return "{" + ", ".join(r(k) + ": " + r(x) for k, x in v.items()) + "}"
    if isinstance(v, (set, frozenset)):
        return "set{" + ", ".join(sorted(r(x) for x in v)) + "}"
    if isinstance(v, Global):
        return "G" + v.name
    if isinstance(v, Persid):
        return "P(" + r(v.pid) + ")"
    if isinstance(v, Call):
        s = "C(" + r(v.fn) + ", " + r(tuple(v.args))
        if v.kwargs is not None:
            s += ", kwargs=" + r(v.kwargs)
        if v.state is not None:
            s += ", state=" + r(v.state)
        if v.items is not None:
            s += ", items={" + ", ".join(r(k) + ": " + r(x) for k, x in v.items) + "}"
        if v.list is not None:
            s += ", list=" + r(v.list)
        return s + ")"
    raise TypeError("cannot render %r" % type(v))
