"""`--device auto` everywhere: CUDA, then Apple's MPS, then the CPU; never hard-coded."""

from __future__ import annotations

import torch

from ganforge.errors import GanforgeError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GanforgeError("--device cuda was asked for, but PyTorch sees no CUDA GPU here.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise GanforgeError("--device mps was asked for, but this machine has no Apple GPU available to PyTorch.")
    return torch.device(name)
