"""Drawing pictures from a generator.

    from ganforge.gan.sampling import sample_images
    images = sample_images("runs/00000-digits", n=16, seed=0)   # (16, C, H, W) in [-1, 1]
    images = sample_images("runs/00001-digits", n=16, truncation=0.7, class_="3")

A class-conditional generator (`ModelConfig.classes`) takes class indices beside the latent
vectors: `G(z, labels)`; unconditional ones take `G(z)`.
"""

from __future__ import annotations

import os
from typing import Annotated

import torch
from torch import nn

from ganforge.devices import DEVICE
from ganforge.errors import GanforgeError
from ganforge.gan.config import SEED_RANGE
from ganforge.gan.families.base import ModelConfig
from ganforge.gan.networks import balanced_labels
from ganforge.options import Opt, check

TRUNCATION = Opt("Truncation: pull the latent vectors towards the latent distribution's mean (0) by this factor; below 1 trades "
                 "variety for cleaner pictures, 1 is off, 0 gives the mean picture.", min=0, max=2)
CLASS = Opt("Draw this class of a class-conditional generator, by name or index.", long="--class", metavar="NAME|INDEX",
            default_text="every class in turn")


def latents(n: int, latent_dim: int, seed: int) -> torch.Tensor:
    """n latent vectors (n, latent_dim) for `seed`, drawn on the CPU so that every device gets the same."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))


def truncate(z: torch.Tensor, psi: float) -> torch.Tensor:
    """The truncation trick: latents pulled towards the mean of N(0, I), which is 0."""
    return z * psi


def class_index(cfg: ModelConfig, spec: str | int) -> int:
    """The index of a class of a conditional generator, given by name or index; one sentence otherwise."""
    if not cfg.classes:
        raise GanforgeError("--class needs a class-conditional generator (trained with --conditional); this one has no classes.")
    names = list(cfg.classes)
    if str(spec) in names:
        return names.index(str(spec))
    try:
        index = int(spec)
    except (TypeError, ValueError):
        index = -1
    if 0 <= index < len(names):
        return index
    shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
    raise GanforgeError(f"--class {spec!r} is not one of this generator's classes ({shown}), nor an index from 0 to {len(names) - 1}.")


def labels_for(cfg: ModelConfig, n: int, class_: str | int | None) -> torch.Tensor | None:
    """Class indices (n,) for `n` pictures of a conditional generator: all of `class_`, or every
    class in turn when it is None; None for an unconditional generator (where `class_` is refused)."""
    if class_ is not None:
        return torch.full((n,), class_index(cfg, class_), dtype=torch.long)
    return balanced_labels(n, cfg.num_classes) if cfg.classes else None


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None, batch: int = 128) -> torch.Tensor:
    """Generator output (N, C, H, W) in [-1, 1] on the CPU, in eval mode; the mode is restored.
    A conditional generator without `labels` draws every class in turn."""
    was_training = generator.training
    device = next(generator.parameters()).device
    classes = getattr(generator, "num_classes", 0)
    if classes and labels is None:
        labels = balanced_labels(len(z), classes)
    generator.eval()
    try:
        parts = [(z[i : i + batch].to(device),) + (() if not classes else (labels[i : i + batch].to(device),)) for i in range(0, len(z), batch)]
        return torch.cat([generator(*inputs).float().cpu() for inputs in parts])
    finally:
        generator.train(was_training)


def sample_images(source: str | os.PathLike,
                  n: Annotated[int, Opt("How many images.", min=1, short="-n", long="--num")] = 64,
                  seed: Annotated[int, Opt("Seed for the latent vectors.", min=-SEED_RANGE, max=SEED_RANGE)] = 0,
                  device: Annotated[str, DEVICE] = "auto",
                  batch: int = 256,
                  truncation: Annotated[float, TRUNCATION] = 1.0,
                  class_: Annotated[str | int | None, CLASS] = None) -> torch.Tensor:
    """`n` pictures (n, C, H, W) in [-1, 1] from a run folder (its newest generator), a generator
    .safetensors file or a checkpoint .pt; the same seed gives the same pictures."""
    check(sample_images, locals())
    from ganforge.devices import pick_device
    from ganforge.gan.checkpoint import load_generator

    generator, cfg, _ = load_generator(source)
    labels = labels_for(cfg, n, class_)
    return generate(generator.to(pick_device(device)), truncate(latents(n, cfg.latent_dim, seed), truncation), labels, batch)
