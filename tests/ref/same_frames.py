"""same_frames - compare two tk streams frame by frame.

  python3 same_frames.py A B [--ignore KEY,...]   same tensors, same
      metadata except the keys named (e.g. src, which names an archive
      member instead of a file)
  python3 same_frames.py --shards FULL N SHARD0 ... SHARDN-1
      the shards interleave to FULL: frame k of FULL is frame k // N of
      shard k % N, whose metadata has besides 'index' k (tk-decode --shard
      gives each frame its place in the whole stream)
  python3 same_frames.py --meta A KEY VALUE,...   the frames' KEY values"""
import sys

import numpy as np

import tkio


def same(a, b, ignore=()):
    if len(a) != len(b):
        return f"{len(a)} frames against {len(b)}"
    for i, ((ma, ta), (mb, tb)) in enumerate(zip(a, b)):
        ka = {k: v for k, v in ma.items() if k not in ignore}
        kb = {k: v for k, v in mb.items() if k not in ignore}
        if ka != kb:
            return f"frame {i}: metadata {ka} != {kb}"
        if ta.keys() != tb.keys():
            return f"frame {i}: tensors {list(ta)} != {list(tb)}"
        for k in ta:
            if ta[k].shape != tb[k].shape or not np.array_equal(ta[k], tb[k]):
                return f"frame {i}: tensor {k} differs"
    return None


def main():
    if sys.argv[1] == "--shards":
        full = tkio.read_frames(sys.argv[2])
        n = int(sys.argv[3])
        shards = [tkio.read_frames(p) for p in sys.argv[4:4 + n]]
        merged = [shards[k % n][k // n] for k in range(sum(map(len, shards)))]
        err = None
        for k, (meta, _) in enumerate(merged):
            if meta.pop("index", None) != str(k):
                err = f"frame {k // n} of shard {k % n}: no 'index' {k}"
                break
        err = err or same(full, merged)
    elif sys.argv[1] == "--meta":
        frames = tkio.read_frames(sys.argv[2])
        got = ",".join(m.get(sys.argv[3], "-") for m, _ in frames)
        err = None if got == sys.argv[4] else f"{sys.argv[3]}: {got} != {sys.argv[4]}"
    else:
        ignore = ()
        if len(sys.argv) > 4 and sys.argv[3] == "--ignore":
            ignore = tuple(sys.argv[4].split(","))
        err = same(tkio.read_frames(sys.argv[1]), tkio.read_frames(sys.argv[2]),
                   ignore)
    if err:
        print(err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
