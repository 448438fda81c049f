"""Drawing pictures from a generator.

    from ganforge.gan.sampling import sample_images
    images = sample_images("runs/00000-digits", n=16, seed=0)   # (16, C, H, W) in [-1, 1]
"""

from __future__ import annotations

import os
from typing import Annotated

import torch
from torch import nn

from ganforge.devices import DEVICE
from ganforge.gan.config import SEED_RANGE
from ganforge.options import Opt, check


def latents(n: int, latent_dim: int, seed: int) -> torch.Tensor:
    """n latent vectors (n, latent_dim) for `seed`, drawn on the CPU so that every device gets the same."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Generator output (N, C, H, W) in [-1, 1] on the CPU, in eval mode; the mode is restored."""
    was_training = generator.training
    device = next(generator.parameters()).device
    generator.eval()
    try:
        return torch.cat([generator(z[i : i + batch].to(device)).float().cpu() for i in range(0, len(z), batch)])
    finally:
        generator.train(was_training)


def sample_images(source: str | os.PathLike,
                  n: Annotated[int, Opt("How many images.", min=1, short="-n", long="--num")] = 64,
                  seed: Annotated[int, Opt("Seed for the latent vectors.", min=-SEED_RANGE, max=SEED_RANGE)] = 0,
                  device: Annotated[str, DEVICE] = "auto",
                  batch: int = 256) -> torch.Tensor:
    """`n` pictures (n, C, H, W) in [-1, 1] from a run folder (its newest generator), a generator
    .safetensors file or a checkpoint .pt; the same seed gives the same pictures."""
    check(sample_images, locals())
    from ganforge.devices import pick_device
    from ganforge.gan.checkpoint import load_generator

    generator, cfg, _ = load_generator(source)
    return generate(generator.to(pick_device(device)), latents(n, cfg.latent_dim, seed), batch)
