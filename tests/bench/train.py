"""train - one training step on the CPU: tk-train against Debian's
PyTorch 1.13 running the reference loop (tests/ref/train_ref.py: the same
model, weights, batch, dropout (torch's own) and SGD step), at the same
thread count (OMP_NUM_THREADS and torch.set_num_threads),
alternating in one run; seconds per step (wall and CPU), images per
second, the ratio, and each side's peak resident memory.

    /usr/bin/python3 tests/bench/train.py [--arch r101:classes=81313]
        [--size 224] [--batch 8] [--threads 1,2] [--steps 3] [--reps 2]
        [--dir /tmp/tk-bench-train]

Run from the repository root after make.  Each run times --steps steps
after a first one that is not counted (allocation, first touch); the best
of --reps runs is kept.  CPU time (user + system, all threads) is given
because on a shared machine a thread that waits for a core loses wall time
but not CPU time; the load average before and after is printed with the
figures.  The ratio is PyTorch's time over tk's."""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF = os.path.join(ROOT, "tests", "ref")
sys.path.insert(0, REF)
import extract  # noqa: E402  (tests/bench/extract.py: blas())
PY = "/usr/bin/python3"


def torch_worker(model_path, frames, batch, steps, threads, dropout):
    """In a process of its own: per-step wall and CPU times of the
    reference loop, and the peak resident memory."""
    import resource
    import torch
    import train_ref as tr
    torch.set_num_threads(threads)
    tr.Ctx.native = True  # the reference's own dropout, not tk's flags
    model, a, _, _ = tr.load_model(model_path)
    imgs, labels = tr.read_batches(frames, 0)
    opt = torch.optim.SGD(tr.add_weight_decay(model, 1e-4), lr=0.01 * batch / 256,
                          momentum=0.9, nesterov=True, dampening=0.0)
    walls, cpus = [], []
    for i in range(steps + 1):
        lo = i * batch
        w, c = time.perf_counter(), time.process_time()
        x = tr.normalise(imgs[lo:lo + batch])
        y = torch.from_numpy(labels[lo:lo + batch])
        model.train()
        tr.Ctx.p, tr.Ctx.seed = dropout, i
        loss, _ = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i:
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"wall": min(walls), "cpu": min(cpus), "rss": rss}))


def run_torch(model, frames, batch, steps, threads, dropout):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run([PY, __file__, "--torch-worker", model, frames, str(batch),
                          str(steps), str(threads), str(dropout)],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.splitlines()[-1])


def run_tk(model, frames, batch, steps, threads, dropout, workdir):
    log = os.path.join(workdir, "tk.log")
    if os.path.exists(log):
        os.unlink(log)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with open(frames, "rb") as f:
        p = subprocess.Popen([os.path.join(ROOT, "bin", "tk-train"), "-q", "-m", model,
                              "-o", os.path.join(workdir, "ck.st"), "--batch", str(batch),
                              "--epoch-size", str(batch * (steps + 1)), "--epochs", "1",
                              "--warmup-epochs", "0", "--dropout", str(dropout),
                              "--threads", str(threads), "-l", log], stdin=f, env=env)
        _, status, ru = os.wait4(p.pid, 0)
    if status:
        raise SystemExit("tk-train failed (status %d)" % status)
    recs = [json.loads(l) for l in open(log) if '"loss"' in l][1:]
    return {"wall": min(r["seconds"] for r in recs),
            "cpu": min(r["cpu_seconds"] for r in recs), "rss": ru.ru_maxrss / 1024.0}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-worker":
        a = sys.argv[2:]
        torch_worker(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), float(a[5]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="r101:classes=81313")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--dir", default="/tmp/tk-bench-train")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    model = os.path.join(args.dir, "model.st")
    frames = os.path.join(args.dir, "frames.bin")
    tag = os.path.join(args.dir, "made")
    want = "%s %d %d %d" % (args.arch, args.size, args.batch, args.steps)
    if not os.path.exists(tag) or open(tag).read() != want:
        import train_ref as tr
        classes = tr.parse_arch(args.arch)["classes"]
        subprocess.run([PY, os.path.join(REF, "train_ref.py"), "model", args.arch, model,
                        "--init", "default", "--seed", "1"], check=True)
        subprocess.run([PY, os.path.join(REF, "train_ref.py"), "frames", frames,
                        str(args.batch * (args.steps + 1)), str(args.size), str(classes),
                        "--seed", "2"], check=True)
        open(tag, "w").write(want)
    print("model %s, %dx%d images, batch %d, dropout %g; best of %d runs of %d steps"
          % (args.arch, args.size, args.size, args.batch, args.dropout, args.reps,
             args.steps))
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())
    print(extract.blas())
    print("| threads | PyTorch s/step (CPU s) | tk s/step (CPU s) | ratio wall / CPU "
          "| tk images/s | peak RSS PyTorch / tk |")
    print("|---|---|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        best = {"torch": None, "tk": None}
        for _ in range(args.reps):
            for side in ("tk", "torch"):
                r = (run_tk(model, frames, args.batch, args.steps, threads, args.dropout,
                            args.dir) if side == "tk" else
                     run_torch(model, frames, args.batch, args.steps, threads,
                               args.dropout))
                b = best[side]
                best[side] = r if b is None else {k: min(b[k], r[k]) for k in r}
        t, k = best["torch"], best["tk"]
        print("| %d | %.2f (%.2f) | %.2f (%.2f) | %.2fx / %.2fx | %.2f | %.0f / %.0f MB |" %
              (threads, t["wall"], t["cpu"], k["wall"], k["cpu"], t["wall"] / k["wall"],
               t["cpu"] / k["cpu"], args.batch / k["wall"], t["rss"], k["rss"]))
        sys.stdout.flush()
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
