"""eval_stub - stand-ins for tk-decode, tk-extract and tk-aggregate, so that
pipelines/eval.mk can be tested without a network: they keep the frames'
keys and metadata and make each image's descriptor from its key alone
(desc_of), and log what they did to $STUB_LOG (tk-extract's stand-in
also the GOMP_SPINCOUNT it was given); the stand-in for
tk-extract given a --device fails when another holds it.  tk-decode's
stops with an error at the key $STUB_FAIL, and at the key $STUB_HANG
creates $STUB_LOG.hang and sleeps (a job to interrupt).

  eval_stub.py decode|extract|aggregate [OPTIONS...]     a tool, stdin to stdout
  eval_stub.py expect GND.pkl DB.list Q.list [R1M.list] OUT.bin
      the ranking the pipeline must produce, by NumPy
"""
import os
import sys
import time
import zlib

import numpy as np

import tkio

DIM = 8


def desc_of(key):
    """Quantised, so that every score is exact and ties rank alike."""
    r = np.random.default_rng(zlib.crc32(key.encode()))
    return (r.integers(-2, 3, DIM) / 4).astype(np.float32)


def log(*words):
    with open(os.environ["STUB_LOG"], "a") as f:
        f.write(" ".join(words) + "\n")


def frames_in():
    while True:
        d = tkio.read_doc(sys.stdin.buffer)
        if d is None:
            return
        yield d


def decode(args):
    log("decode-args", *args)
    fail = os.environ.get("STUB_FAIL")
    for line in sys.stdin:
        path, key, label, bbox = (line.rstrip("\n").split("\t") + [""] * 4)[:4]
        if key == fail:
            sys.stderr.write(f"tk-decode: error: {path}: stub failure\n")
            sys.exit(2)
        if key == os.environ.get("STUB_HANG"):
            sys.stdout.flush()
            open(os.environ["STUB_LOG"] + ".hang", "w").close()
            time.sleep(600)
        log("decode", key, bbox or "-")
        meta = {"key": key, "src": path}
        if bbox:
            meta["crop"] = bbox
        tkio.write_doc(sys.stdout.buffer, meta, {"image": np.zeros((1, 1, 3), np.uint8)})


def extract(args):
    log("extract-args", *args)
    log("extract-spin", os.environ.get("GOMP_SPINCOUNT", "unset"))
    gpu = None
    if "--device" in args:  # a GPU is one job's while it runs
        gpu = os.environ["STUB_LOG"] + ".busy-" + args[args.index("--device") + 1]
        try:
            os.close(os.open(gpu, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            sys.stderr.write(f"tk-extract: error: two jobs at once on {gpu}\n")
            sys.exit(2)
        time.sleep(0.3)  # long enough for the jobs to overlap
    for meta, _ in frames_in():
        for s in ("1", "1.41421356", "0.70710678"):
            tkio.write_doc(sys.stdout.buffer, dict(meta, scale=s, grid="1,1"),
                           {"local": np.zeros((1, 4), np.float32)})
    if gpu:
        os.remove(gpu)


def aggregate(args):
    log("aggregate-args", *args)
    last = None
    for meta, _ in frames_in():
        if meta["key"] == last:
            continue  # the other scales of the same image
        last = meta["key"]
        log("aggregate", last)
        m = {k: v for k, v in meta.items() if k not in ("scale", "grid")}
        tkio.write_doc(sys.stdout.buffer, m, {"desc": desc_of(last)})


def keys(path):
    with open(path) as f:
        return [line.split("\t")[1] for line in f]


def expect(gnd, db_list, q_list, *rest):
    *r1m, out = rest
    db = keys(db_list) + (keys(r1m[0]) if r1m else [])
    D = np.stack([desc_of(k) for k in db])
    qk = keys(q_list)
    frames = []
    for k in qk:
        s = D @ desc_of(k)
        order = np.lexsort((np.arange(len(s)), -s)).astype(np.int32)
        frames.append(({"key": k}, {"rank": order, "score": s[order]}))
    tkio.write_frames(out, frames)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"decode": decode, "extract": extract, "aggregate": aggregate}.get(
        cmd, lambda a: expect(*a))(args)
    sys.stdout.flush()
