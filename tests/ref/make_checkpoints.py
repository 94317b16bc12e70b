"""make_checkpoints - PyTorch checkpoints for tk-import's tests, written
with torch.save as people write them: Token state_dicts (token_ref.py) and
torchvision ResNets, in the zip and the legacy format, bare and wrapped as
the reference's train.py saves them ({'epoch', 'state_dict', 'optim'},
the optimizer's learning rates numpy scalars, as its WarmupCos_Scheduler
sets them), with other entries people save beside them (an
argparse.Namespace, numpy scalars and arrays, a set, bytes),
with DDP's "module." prefixes and torch.compile's "_orig_mod.", in fp16
and bf16, with a non-contiguous tensor, tensors sharing a storage, and
nn.Parameters; and one re-packed with compression.

    make_checkpoints.py DIR [--large]

writes DIR/<case>.pth and DIR/cases.txt, one line per case:
"<case> <option>..." where the options are those check_import.py takes."""
import argparse
import os
import sys

import numpy as np
import torch
import torchvision

import token_ref
from tkzip import repack_deflated

SMALL = dict(depth=50, width=8, mid_dim=32, out_dim=32, heads=4, classes=10)


def save(path, obj, legacy, protocol=2):
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy,
               pickle_protocol=protocol)


def trained_optimizer(model):
    """An SGD state_dict with momentum buffers, as after a step of the
    reference's train.py, whose scheduler sets each group's learning rate
    to an element of a numpy array (a numpy.float64)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                          weight_decay=1e-4, nesterov=True, dampening=0.0)
    schedule = np.linspace(1e-4, 0.01, 10)
    for g in opt.param_groups:
        g["lr"] = schedule[3]
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    state = opt.state_dict()
    assert type(state["param_groups"][0]["lr"]) is np.float64
    return state


def extras():
    """What else people save beside a state_dict, none of it tensors:
    objects of globals tk-import does not read."""
    return {"args": argparse.Namespace(lr=0.01, arch="r101", seed=11),
            "best_map": np.float64(82.16), "iters": np.int64(3),
            "schedule": np.linspace(0, 1, 5), "tags": {"a", "b"},
            "blob": b"\x00\xff", "big": 2**70}


def odd_layouts(sd):
    """The same values in awkward storages: a transposed view, two tensors
    in one storage (one at an offset), a strided slice, a 0-d tensor."""
    sd = dict(sd)
    w = sd["tr.token_norm.0.weight"]
    sd["tr.token_norm.0.weight"] = w.t().contiguous().t()  # strides (1, n)
    assert not sd["tr.token_norm.0.weight"].is_contiguous()
    a, b = sd["tr.encoder.0.attn.q.weight"], sd["tr.encoder.0.attn.k.weight"]
    big = torch.cat([a.reshape(-1), b.reshape(-1)])
    sd["tr.encoder.0.attn.q.weight"] = big[:a.numel()].view(a.shape)
    sd["tr.encoder.0.attn.k.weight"] = big[a.numel():].view(b.shape)
    q = sd["tr.query"]
    wide = torch.zeros(q.numel() * 2)
    wide[1::2] = q.reshape(-1)
    sd["tr.query"] = wide[1::2].view(q.shape)  # offset 1, stride 2
    assert sd["tr.query"].storage_offset() == 1
    return sd


def main():
    out = sys.argv[1]
    large = "--large" in sys.argv
    cases = []

    def case(name, obj, legacy, *opts):
        save(os.path.join(out, name + ".pth"), obj, legacy)
        cases.append(" ".join((name,) + opts))

    torch.manual_seed(0)
    model = token_ref.token(**SMALL)
    sd = model.state_dict()
    optim = trained_optimizer(model)
    sd = model.state_dict()  # after the step
    for legacy, fmt in ((False, "zip"), (True, "legacy")):
        case("token-%s" % fmt, sd, legacy)
        case("token-%s-wrapped" % fmt,
             {"epoch": 7, "state_dict": sd, "optim": optim}, legacy,
             "--epoch=7")
        case("token-%s-ddp" % fmt,
             {"epoch": 8, "state_dict": {"module." + k: v for k, v in sd.items()},
              "optim": optim}, legacy, "--epoch=8")
        case("token-%s-extras" % fmt,
             dict(extras(), epoch=6, state_dict=sd, optim=optim), legacy,
             "--epoch=6")
        case("token-%s-layouts" % fmt, odd_layouts(sd), legacy)
        case("token-%s-params" % fmt, model.state_dict(keep_vars=True), legacy)
    # AdamW's state (tensor steps, tuples) in pickle protocols 4 and 5.
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-3)
    adamw.step()
    for legacy, fmt, proto in ((False, "zip", 4), (True, "legacy", 5)):
        name = "token-%s-adamw-p%d" % (fmt, proto)
        save(os.path.join(out, name + ".pth"),
             {"epoch": 9, "state_dict": sd, "optim": adamw.state_dict()},
             legacy, proto)
        cases.append(name + " --epoch=9")
    case("token-zip-f16", {k: v.half() if v.is_floating_point() else v
                           for k, v in sd.items()}, False)
    case("token-legacy-bf16", {"state_dict": {k: v.bfloat16() if v.is_floating_point() else v
                                              for k, v in sd.items()}}, True)
    case("token-zip-f64", {k: v.double() if v.is_floating_point() else v
                           for k, v in sd.items()}, False)
    case("token-zip-noclass", sd, False, "--classes=0")
    # torch.compile's wrapper prefixes "_orig_mod." (torch 2), alone and
    # under DDP's "module.", in both orders.
    case("token-zip-compiled", {"_orig_mod." + k: v for k, v in sd.items()}, False)
    case("token-legacy-ddp-compiled",
         {"epoch": 5, "state_dict": {"module._orig_mod." + k: v for k, v in sd.items()}},
         True, "--epoch=5")
    case("token-zip-compiled-ddp", {"_orig_mod.module." + k: v for k, v in sd.items()}, False)
    # Re-packed with compression (zipfile.ZIP_DEFLATED, as zip -r would):
    # torch.load reads it, and tk-import copies its members out of
    # libarchive's inflater rather than reading them in place.
    repack_deflated(os.path.join(out, "token-zip-wrapped.pth"),
                    os.path.join(out, "token-zip-deflated.pth"))
    cases.append("token-zip-deflated --epoch=7")

    r50 = torchvision.models.resnet50().state_dict()
    case("tv-resnet50-zip", r50, False, "--torchvision")
    # torchvision's weights of 2017 predate BatchNorm's counters.
    old = {k: v for k, v in r50.items() if not k.endswith("num_batches_tracked")}
    case("tv-resnet50-old-legacy", old, True, "--torchvision")
    r101 = torchvision.models.resnet101().state_dict()
    case("tv-resnet101-legacy", r101, True, "--torchvision")
    del r50, r101, old

    if large:
        torch.manual_seed(1)
        big = token_ref.token(depth=101, classes=1000)
        case("token-r101-zip-wrapped",
             {"epoch": 30, "state_dict": big.state_dict(), "optim": {}}, False,
             "--epoch=30")

    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")


main()
