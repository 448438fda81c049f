"""`--device auto` everywhere: CUDA, then Apple's MPS, then the CPU; never hard-coded.

torch is imported only when a device is picked, so option lists can name DEVICES cheaply.
"""

from __future__ import annotations

import re

from ganforge.errors import GanforgeError
from ganforge.options import Opt

DEVICES = ("auto", "cpu", "cuda", "mps")  # and "cuda:N" for the N-th GPU


def check_device(name) -> None:
    """GanforgeError unless `name` is one of DEVICES or cuda:N."""
    if not (isinstance(name, str) and (name in DEVICES or re.fullmatch(r"cuda:\d+", name))):
        raise GanforgeError(f"--device must be one of {', '.join(DEVICES)} or cuda:N, not {name!r}.")


# The --device setting of every command.
DEVICE = Opt("Where to compute: auto picks cuda, then mps, then cpu; cuda:N picks the N-th GPU.", metavar="[auto|cpu|cuda|cuda:N|mps]",
             check=check_device)


def pick_device(name: str):
    """The torch.device for `name` (one of DEVICES); GanforgeError when it is not available."""
    import torch

    check_device(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GanforgeError(f"--device {name} was asked for, but PyTorch sees no CUDA GPU here.")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise GanforgeError(f"--device {name} was asked for, but PyTorch sees only {torch.cuda.device_count()} CUDA GPU(s) here (cuda:0 is the first).")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise GanforgeError("--device mps was asked for, but this machine has no Apple GPU available to PyTorch.")
    return torch.device(name)
