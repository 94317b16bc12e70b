"""check_import - compare tk-import's output with the checkpoint it came
from, loaded by torch.load: the same tensor names after the mapping tk
documents ("module." and "_orig_mod." removed; torchvision's
conv1/bn1/layerN as backbone.block1.0/block1.1/blockN+1; fc dropped), and
every value bitwise equal to the checkpoint's converted to float32
(counters as int64).

    check_import.py CKPT OUT [--torchvision] [--classes=0] [--epoch=N]
    check_import.py --cases DIR/cases.txt   (DIR/<case>.pth against .st)"""
import os
import sys

import numpy as np
import torch

import tkio
import token_ref


def state_dict(obj):
    if isinstance(obj, dict) and "state_dict" in obj:
        return obj["state_dict"]
    return obj


def check(ckpt, out, opts):
    obj = torch.load(ckpt, map_location="cpu")
    sd = {}
    for k, v in state_dict(obj).items():
        while k.startswith(("module.", "_orig_mod.")):
            k = k.split(".", 1)[1]
        if "--torchvision" in opts:
            k = token_ref.torchvision_to_tk(k)
            if k is None:
                continue
        if "--classes=0" in opts and k == "classifier.weight":
            continue
        sd[k] = v.detach()
    (meta, ours), = tkio.read_frames(out)
    if "--torchvision" in opts:
        assert meta["format"] == "tk-backbone", meta
        # Counters absent from old files are added as 0.
        for k in list(ours):
            if k.endswith("num_batches_tracked") and k not in sd:
                assert ours[k] == 0, k
                sd[k] = torch.tensor(0)
    else:
        assert meta["format"] == "tk-model", meta
    for o in opts:
        if o.startswith("--epoch="):
            assert meta.get("epoch") == o[8:], meta
    missing, extra = set(sd) - set(ours), set(ours) - set(sd)
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
    for k, v in sd.items():
        a = ours[k]
        if k.endswith("num_batches_tracked"):
            assert a.dtype == np.int64 and a.shape == () and a == v.item(), k
            continue
        want = v.float().contiguous().numpy()
        assert a.dtype == np.float32 and a.shape == want.shape, (k, a.shape, want.shape)
        assert np.array_equal(a.view(np.uint32), want.view(np.uint32)), k
    print("%s: %d tensors equal" % (out, len(sd)))


def main():
    if sys.argv[1] == "--cases":
        d = os.path.dirname(sys.argv[2])
        for line in open(sys.argv[2]):
            name, *opts = line.split()
            check(os.path.join(d, name + ".pth"), os.path.join(d, name + ".st"), opts)
    else:
        check(sys.argv[1], sys.argv[2], sys.argv[3:])


main()
