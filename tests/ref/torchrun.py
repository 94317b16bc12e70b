"""torchrun, as `python3 torchrun.py ARGS` runs it: the tests launch
tk-train's ranks through PyTorch's own launcher with it.

Debian's torch 1.13 under Python 3.11 cannot parse torchrun's default
--redirects and --tee ("0"): Std.from_str looks the value up by iterating
an IntFlag, which no longer yields the zero member, and gets None.  This
reads a single number as the flag itself, then runs torchrun unchanged."""
import re
import sys

try:
    import torch.distributed.elastic.multiprocessing.api as api

    _from_str = api.Std.from_str.__func__

    def from_str(cls, vm):
        if re.match(api._VALUE_REGEX, vm):
            return cls(int(vm))
        return _from_str(cls, vm)

    api.Std.from_str = classmethod(from_str)
except (ImportError, AttributeError):  # another torch: nothing to mend
    pass

from torch.distributed.run import main  # noqa: E402

sys.exit(main())
