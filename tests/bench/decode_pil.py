"""decode_pil - PIL's side of tests/bench/decode.sh: images per second of
the reference loader (open, convert("RGB"), thumbnail((n, n), LANCZOS)) or
of PIL's draft path (open, thumbnail, convert), in 1 or more processes.

  python3 decode_pil.py ref|draft N PROCESSES REPEAT FILE..."""
import sys
import time
from multiprocessing import Pool

from PIL import Image


def ref(path, n):
    with open(path, "rb") as f:
        img = Image.open(f).convert("RGB")
    img.thumbnail((n, n), Image.Resampling.LANCZOS)
    return img.size


def draft(path, n):
    img = Image.open(path)
    img.thumbnail((n, n), Image.Resampling.LANCZOS)
    return img.convert("RGB").size


def run(args):
    mode, n, files = args
    fn = draft if mode == "draft" else ref
    for f in files:
        fn(f, n)


def main():
    mode, n, procs, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    files = sys.argv[5:]
    best = 0.0
    with Pool(procs) as pool:
        pool.map(run, [(mode, n, files[:1])] * procs)  # warm up the workers
        for _ in range(repeat):
            t = time.perf_counter()
            pool.map(run, [(mode, n, files[i::procs]) for i in range(procs)])
            best = max(best, len(files) / (time.perf_counter() - t))
    print(f"{best:.2f}")


if __name__ == "__main__":
    main()
