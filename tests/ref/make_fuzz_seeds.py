"""make_fuzz_seeds - small torch.save files as the seed corpus of
tests/fuzz/fuzz_torchload.c: both formats, bare and wrapped, a view, a
shared storage, fp16, a Parameter, a tiny Token-named state_dict, and a
zip re-packed with compression.

    make_fuzz_seeds.py DIR"""
import collections
import os
import sys

import torch

from tkzip import repack_deflated


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    a = torch.randn(2, 3)
    big = torch.arange(12.0)
    sd = collections.OrderedDict()
    sd["backbone.block1.0.weight"] = a
    sd["tr.query"] = big[2:8:2]
    sd["tr.conv.1.num_batches_tracked"] = torch.tensor(5)
    sd["v"] = big[:4].view(2, 2).t()
    seeds = {
        "bare": sd,
        "wrapped": {"epoch": 3, "state_dict": sd, "optim": {"state": {0: {"momentum_buffer": a}},
                                                           "param_groups": [{"lr": 0.1, "params": [0]}]}},
        "ddp": {"module." + k: v for k, v in sd.items()},
        "half": {k: v.half() if v.is_floating_point() else v for k, v in sd.items()},
        "param": {"w": torch.nn.Parameter(a)},
        "empty": {},
    }
    for name, obj in seeds.items():
        for legacy in (False, True):
            path = os.path.join(out, "%s-%s.pth" % (name, "legacy" if legacy else "zip"))
            torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    # A zip re-packed with compression: members inflated, not in place.
    repack_deflated(os.path.join(out, "wrapped-zip.pth"),
                    os.path.join(out, "wrapped-deflated.pth"))


main()
