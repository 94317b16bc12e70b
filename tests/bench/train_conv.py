"""train_conv - training's convolutions of a ResNet-50, layer by layer:
tk's forward and backward (tests/bench/bench_train_conv.c) against
Debian's PyTorch 1.13 (torch.nn.functional.conv2d and autograd, its
oneDNN kernels) on the same shapes, batch and thread count, alternating
in one run; with the share of tk's time its OpenBLAS GEMMs take alone
on the same matrices (the rest is im2col, col2im and the copies).

    /usr/bin/python3 tests/bench/train_conv.py [--width 16] [--batch 32]
        [--size 224] [--threads 1] [--reps 3] [--runs 2]

Run from the repository root after make; builds build/bench_train_conv
when it is missing or older than build/cpu/libtk.a.  Times are wall
milliseconds, the best of --reps calls in each of --runs runs a side; a
layer's total is its time by how often the network has it (the stem's
backward computes no input gradient on either side).  The ratio is
PyTorch's time over tk's."""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import extract  # noqa: E402  (tests/bench/extract.py: blas())

BIN = os.path.join(ROOT, "build", "bench_train_conv")
LIB = os.path.join(ROOT, "build", "cpu", "libtk.a")


def build():
    src = os.path.join(ROOT, "tests", "bench", "bench_train_conv.c")
    if (os.path.exists(BIN) and os.path.getmtime(BIN) >= os.path.getmtime(LIB)
            and os.path.getmtime(BIN) >= os.path.getmtime(src)):
        return
    libs = subprocess.run(["pkg-config", "--libs", "openblas"], capture_output=True,
                          text=True).stdout.split() or ["-lopenblas"]
    subprocess.run(["gcc", "-O2", "-fopenmp", "-I" + ROOT, src, LIB] + libs +
                   ["-lm", "-o", BIN], check=True)


def run_tk(a):
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    out = subprocess.run([BIN, str(a.width), str(a.batch), str(a.size), str(a.threads),
                          str(a.reps)], check=True, capture_output=True, text=True,
                         env=env).stdout
    layers = []
    for line in out.splitlines():
        if line.startswith("layer "):
            name, rest = line[6:].split("|")
            v = rest.split()
            layers.append((name, tuple(map(int, v[:6])), tuple(map(float, v[6:]))))
    return layers


def torch_worker(spec, batch, threads, reps):
    import torch
    torch.set_num_threads(threads)
    for i, s in enumerate(spec.split(";")):
        C, OC, K, st, H = map(int, s.split(","))
        x = torch.rand(batch, C, H, H) - 0.5
        x.requires_grad_(i > 0)
        w = (torch.rand(OC, C, K, K) - 0.5).requires_grad_()
        f = b = 1e9
        for _ in range(reps):
            t = time.perf_counter()
            y = torch.nn.functional.conv2d(x, w, None, st, K // 2)
            f = min(f, time.perf_counter() - t)
            g = torch.rand_like(y) - 0.5
            t = time.perf_counter()
            y.backward(g)
            b = min(b, time.perf_counter() - t)
            x.grad = w.grad = None
        print("%.3f %.3f" % (f * 1e3, b * 1e3), flush=True)


def run_torch(a, layers):
    spec = ";".join("%d,%d,%d,%d,%d" % s[:5] for _, s, _ in layers)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads),
               OPENBLAS_NUM_THREADS=str(a.threads))
    out = subprocess.run([sys.executable, __file__, "--torch-worker", spec, str(a.batch),
                          str(a.threads), str(a.reps)], check=True, capture_output=True,
                         text=True, env=env).stdout
    return [tuple(map(float, l.split())) for l in out.splitlines()]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-worker":
        torch_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    build()
    print("ResNet-50 of width %d, batch %d, %dx%d, %d thread(s); best of %d calls in "
          "%d runs a side" % (a.width, a.batch, a.size, a.size, a.threads, a.reps, a.runs))
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())
    print(extract.blas())
    tk = th = None
    for _ in range(a.runs):
        t = run_tk(a)
        p = run_torch(a, t)
        tk = t if tk is None else [(n, s, tuple(map(min, v, w)))
                                   for (n, s, v), (_, _, w) in zip(tk, t)]
        th = p if th is None else [tuple(map(min, v, w)) for v, w in zip(th, p)]
    print("| layer | C -> OC, KxK/s, input | x | tk fwd ms (GEMM) | tk bwd ms (GEMM) "
          "| PyTorch fwd / bwd ms | ratio fwd / bwd |")
    print("|---|---|---|---|---|---|---|")
    tot = [0.0] * 6
    for (name, s, v), (pf, pb) in zip(tk, th):
        C, OC, K, st, H, n = s
        f, b, gf, gb = v
        print("| %s | %d -> %d, %dx%d/%d, %d² | %d | %.2f (%.0f %%) | %.2f (%.0f %%) "
              "| %.2f / %.2f | %.2fx / %.2fx |" %
              (name, C, OC, K, K, st, H, n, f, 100 * gf / f, b, 100 * gb / b, pf, pb,
               pf / f, pb / b))
        for i, x in enumerate((f, b, gf, gb, pf, pb)):
            tot[i] += n * x
    f, b, gf, gb, pf, pb = tot
    print("| all, by count | | | %.1f (%.0f %%) | %.1f (%.0f %%) | %.1f / %.1f "
          "| %.2fx / %.2fx |" % (f, 100 * gf / f, b, 100 * gb / b, pf, pb, pf / f, pb / b))
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
