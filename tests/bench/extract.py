"""extract - seconds per 1024x768 image, single scale, R101-Token at full
size: tk-extract | tk-aggregate against Debian's PyTorch 1.13 on the CPU,
the same weights, the same thread count, interleaved in one run; with
OpenBLAS sgemm measured in the same run (the practical ceiling) and tk's
peak resident memory.

    /usr/bin/python3 tests/bench/extract.py [--threads 1,2] [--reps 3]
        [--dir /tmp/tk-bench] [--arch r101]

Run from the repository root after make.  Wall-clock times are the best
of --reps; CPU times (user + system, all threads) are given too because
on a shared machine a thread that waits for a core loses wall time but
not CPU time.  The ratio is PyTorch's time over tk's."""
import argparse
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF = os.path.join(ROOT, "tests", "ref")
sys.path.insert(0, REF)
PY = "/usr/bin/python3"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def torch_worker(model, image, threads, reps):
    """In a process of its own: per-image times of the reference forward."""
    import torch
    import torch.nn.functional as F
    import tkio
    import token_forward
    torch.set_num_threads(threads)
    net, _ = token_forward.load(model)
    x = token_forward.normalise(tkio.read_frames(image)[0][1]["image"])[None]
    walls, cpus = [], []
    with torch.no_grad():
        for i in range(reps + 1):
            w, c = time.perf_counter(), time.process_time()
            F.normalize(net.tr.head(net.tr.local(net.backbone(x))), dim=-1)
            if i:  # the first is a warm-up
                walls.append(time.perf_counter() - w)
                cpus.append(time.process_time() - c)
    print(min(walls), min(cpus))


def run_torch(model, image, threads, reps):
    # Debian's torch runs its GEMMs (1x1 convolutions with one thread,
    # linear layers) in the system OpenBLAS, whose own thread pool
    # torch.set_num_threads does not bound: the environment must.
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = sh([PY, __file__, "--torch-worker", model, image, str(threads),
              str(reps)], capture_output=True, text=True, env=env).stdout.split()
    return float(out[0]), float(out[1])


def run_tk(model, images, threads):
    """Wall and CPU seconds of tk-extract | tk-aggregate on a stream."""
    bin_ = os.path.join(ROOT, "bin")
    cmd = (f"{bin_}/tk-extract -m {model} --scales 1 -j {threads} {images} | "
           f"{bin_}/tk-aggregate -m {model} -j {threads} > /dev/null")
    c, w = children_cpu(), time.perf_counter()
    sh(["sh", "-c", cmd])
    return time.perf_counter() - w, children_cpu() - c


def peak_rss(model, image, tool):
    """Peak resident memory (MB) of one tool on one image, alone."""
    bin_ = os.path.join(ROOT, "bin")
    if tool == "tk-extract":
        cmd = f"{bin_}/tk-extract -m {model} --scales 1 {image} > /dev/null"
    else:
        cmd = (f"{bin_}/tk-extract -m {model} --scales 1 {image} > {image}.local && "
               f"/usr/bin/time -f %M -o {image}.rss {bin_}/tk-aggregate -m {model} "
               f"{image}.local > /dev/null")
        sh(["sh", "-c", cmd])
        return int(open(f"{image}.rss").read().split()[-1]) / 1024
    sh(["/usr/bin/time", "-f", "%M", "-o", f"{image}.rss", "sh", "-c", cmd])
    return int(open(f"{image}.rss").read().split()[-1]) / 1024


def flops(arch):
    """Multiply-adds x 2 of R101/R50-Token on a 768x1024 image."""
    import token_forward
    a = token_forward.parse_arch(arch)
    h, w = 768, 1024
    f = 2 * 3 * a["width"] * 49 * (h // 2) * (w // 2)
    h, w = h // 4, w // 4
    cin = a["width"]
    for s, n in enumerate(token_forward.BLOCKS[a["depth"]]):
        p = a["width"] << s
        for i in range(n):
            st = 2 if i == 0 and s else 1
            h2, w2 = h // st, w // st
            f += 2 * (cin * p * h * w + 9 * p * p * h2 * w2 + p * 4 * p * h2 * w2)
            if i == 0:
                f += 2 * cin * 4 * p * h2 * w2
            cin, h, w = 4 * p, h2, w2
    n, d, t = h * w, a["mid_dim"], a["tokens"]
    f += 2 * n * cin * d                                    # tr.conv
    f += a["encoder_layers"] * 2 * (5 * n * d * d + 2 * n * n * d)
    f += a["decoder_layers"] * 2 * (2 * n * d * d + 2 * t * d * d + 4 * t * d * d
                                    + 2 * t * n * d + 2 * t * d * d)
    f += 2 * t * d * a["out_dim"]
    return f


def blas():
    """The OpenBLAS kernels both sides run (the library's choice for this
    CPU, or OPENBLAS_CORETYPE's), as tk's --version names them."""
    v = sh([os.path.join(ROOT, "bin", "tk-rank"), "--version"],
           capture_output=True, text=True).stdout
    return next((l for l in v.splitlines() if l.startswith("BLAS: ")), "BLAS: ?")


def load():
    return open("/proc/loadavg").read().split()[0]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-worker":
        torch_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/tk-bench")
    ap.add_argument("--arch", default="r101")
    o = ap.parse_args()
    os.makedirs(o.dir, exist_ok=True)
    model = os.path.join(o.dir, o.arch.replace(":", "_") + ".safetensors")
    if not os.path.exists(model):
        print(f"making {model} ...", file=sys.stderr)
        sh([PY, os.path.join(REF, "token_forward.py"), "make", o.arch, "3", model])
    one = os.path.join(o.dir, "img1.bin")
    sh([PY, os.path.join(REF, "synth_images.py"), one, "9", "768x1024"])
    data = open(one, "rb").read()
    many = os.path.join(o.dir, "imgN.bin")
    with open(many, "wb") as f:
        f.write(data * (o.reps + 1))
    bench = os.path.join(ROOT, "build", "bench_conv")
    sh(["sh", "-c", f"gcc -O2 -fopenmp -I{ROOT} $(pkg-config --cflags openblas) "
        f"{ROOT}/tests/bench/bench_conv.c {ROOT}/build/cpu/libtk.a "
        f"$(pkg-config --libs openblas) -lm -o {bench}"])
    fl = flops(o.arch)
    print(f"{o.arch}-Token, 1024x768, single scale, {fl / 1e9:.1f} GFLOP; "
          f"load average {load()} on {os.cpu_count()} cores at the start")
    print(blas())
    for t in [int(x) for x in o.threads.split(",")]:
        tw, tc = run_torch(model, one, t, o.reps)
        # tk: one image, then 1 + reps; the difference is reps images
        # without loading the models.
        w1, c1 = run_tk(model, one, t)
        wn, cn = run_tk(model, many, t)
        kw, kc = (wn - w1) / o.reps, (cn - c1) / o.reps
        tw2, tc2 = run_torch(model, one, t, o.reps)
        tw, tc = min(tw, tw2), min(tc, tc2)
        g = sh([bench, "sgemm", str(t), "3"], capture_output=True,
               text=True).stdout.strip()
        print(f"threads {t}: PyTorch {tw:.3f} s/image (CPU {tc:.3f} s), tk "
              f"{kw:.3f} s/image (CPU {kc:.3f} s): {tw / kw:.2f}x wall, "
              f"{tc / kc:.2f}x CPU; tk {fl / kw / 1e9:.1f} effective GFLOP/s "
              f"({fl / kc / 1e9:.1f} per CPU-second)")
        print(f"  {g}")
    print(f"peak RSS: tk-extract {peak_rss(model, one, 'tk-extract'):.0f} MB, "
          f"tk-aggregate {peak_rss(model, one, 'tk-aggregate'):.0f} MB; "
          f"weights {os.path.getsize(model) / 2**20:.0f} MB; load average "
          f"{load()} at the end")


if __name__ == "__main__":
    main()
