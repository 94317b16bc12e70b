"""sitecustomize for tests/tools/import-torch2.test: on a torch older than
torch.compile and torch.serialization.set_crc32_options (Debian's 1.13),
stand-ins that name and save as torch 2's do, so that the CPU tests can run
tests/gpu/import_torch2.sh, which the GPU check runs on a real torch 2:
torch.compile(m) wraps m as the submodule "_orig_mod" (its state_dict's
names), and after set_crc32_options(False) torch.save leaves every CRC-32
of the zip 0.  On a torch that has them it changes nothing."""
import torch

if not hasattr(torch, "compile"):
    class OptimizedModule(torch.nn.Module):
        def __init__(self, mod):
            super().__init__()
            self._orig_mod = mod

    torch.compile = OptimizedModule

if not hasattr(torch.serialization, "set_crc32_options"):
    from tkzip import without_crcs

    _crc32 = [True]
    _save = torch.save

    def set_crc32_options(compute_crc32):
        _crc32[0] = bool(compute_crc32)

    def save(obj, f, *args, **kwargs):
        _save(obj, f, *args, **kwargs)
        if not _crc32[0]:
            with open(f, "rb") as fp:
                b = fp.read()
            with open(f, "wb") as fp:
                fp.write(without_crcs(b))

    torch.serialization.set_crc32_options = set_crc32_options
    torch.save = save
