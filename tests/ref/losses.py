"""losses - tk-train's per-step losses against the reference loop's
(train_ref.py train logs a loss per batch; a step's loss is the mean of
its batches), with torch in float64 as the yardstick.

    losses.py TK.jsonl REF64.jsonl REF32.jsonl [--tol T]
    losses.py --falls TK.jsonl REF32.jsonl

The first form: the learning rates of every step equal the reference's;
at every step tk's loss is no further from float64 torch's than twice the
largest distance of float32 torch's so far, plus --tol (1e-4): a step
where float32 rounding tips a ReLU or a max-pool over changes the later
steps of both.  --falls: both runs' mean loss over their last five
steps is under a tenth of their first five's, and tk's no more than twice
torch's."""
import json
import sys


def tk_steps(path):
    return [r for r in map(json.loads, open(path)) if "step" in r and "loss" in r
            and "val_loss" not in r]


def ref_steps(path):
    steps, cur = [], []
    for r in map(json.loads, open(path)):
        cur.append(r["loss"])
        if "step" in r:
            steps.append({"step": r["step"], "lr": r["lr"],
                          "loss": sum(cur) / len(cur)})
            cur = []
    return steps


def main():
    args = sys.argv[1:]
    if args[0] == "--falls":
        tk, ref = tk_steps(args[1]), ref_steps(args[2])
        f = lambda s, sl: sum(x["loss"] for x in s[sl]) / len(s[sl])
        t0, t1 = f(tk, slice(0, 5)), f(tk, slice(-5, None))
        r0, r1 = f(ref, slice(0, 5)), f(ref, slice(-5, None))
        print("tk:    %.4f -> %.4f over %d steps" % (t0, t1, len(tk)))
        print("torch: %.4f -> %.4f over %d steps" % (r0, r1, len(ref)))
        ok = len(tk) == len(ref) and t1 < 0.1 * t0 and r1 < 0.1 * r0 and t1 <= 2 * r1
        print("ok" if ok else "FAIL: the losses do not fall as torch's")
        sys.exit(0 if ok else 1)
    tol = 1e-4
    if "--tol" in args:
        i = args.index("--tol")
        tol = float(args[i + 1])
        del args[i:i + 2]
    tk, r64, r32 = tk_steps(args[0]), ref_steps(args[1]), ref_steps(args[2])
    bad = 0
    if not (len(tk) == len(r64) == len(r32)):
        print("FAIL: %d steps, torch %d" % (len(tk), len(r64)))
        sys.exit(1)
    d32 = 0.0
    print("step  lr            tk           torch64      torch32      |tk-64|   |32-64|")
    for a, b, c in zip(tk, r64, r32):
        e = abs(a["loss"] - b["loss"]) / b["loss"]
        e32 = abs(c["loss"] - b["loss"]) / b["loss"]
        d32 = max(d32, e32)
        lr_ok = abs(a["lr"] - b["lr"]) <= 1e-15 * abs(b["lr"])
        print("%4d  %-12.6g  %-11.7g  %-11.7g  %-11.7g  %.2e  %.2e%s" %
              (a["step"], a["lr"], a["loss"], b["loss"], c["loss"], e, e32,
               "" if lr_ok else "  learning rate differs"))
        bad += not lr_ok
        if e > 2 * d32 + tol:
            print("FAIL: step %d strays %.2e from float64 torch" % (a["step"], e))
            bad += 1
    worst = max(abs(a["loss"] - b["loss"]) / b["loss"] for a, b in zip(tk, r64))
    print("%s: tk within %.2e of float64 torch, float32 torch within %.2e" %
          ("FAIL" if bad else "ok", worst, d32))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
