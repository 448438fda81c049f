"""The registry of network families, and building a generator or discriminator from a ModelConfig.

    from ganforge.gan.networks import build_generator
    G = build_generator(ModelConfig(arch="dcgan", size=64, channels=3))
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.gan.families.base import Family, ModelConfig
from ganforge.gan.families.dcgan import DCGAN
from ganforge.gan.families.fastgan import FastGAN
from ganforge.gan.families.layers import init_weights
from ganforge.gan.families.mlp import MLP
from ganforge.gan.families.msg import MSG
from ganforge.gan.families.progressive import Progressive

FAMILIES: dict[str, type[Family]] = {f.name: f for f in (DCGAN, MLP, MSG, Progressive, FastGAN)}


def family(cfg: ModelConfig) -> type[Family]:
    if cfg.arch not in FAMILIES:
        raise GanforgeError(f"unknown network family {cfg.arch!r}; this version knows {', '.join(FAMILIES)}.")
    return FAMILIES[cfg.arch]


def build_generator(cfg: ModelConfig) -> nn.Module:
    g = family(cfg).Generator(cfg)
    g.apply(init_weights)
    return g


def build_discriminator(cfg: ModelConfig) -> nn.Module:
    d = family(cfg).Discriminator(cfg)
    d.apply(init_weights)
    return d


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """(n,) class indices 0, 1, ..., K-1, 0, 1, ...: an equal share of every class."""
    return torch.arange(n) % num_classes


@torch.no_grad()
def recalibrate_batchnorm(generator: nn.Module, latent_dim: int, seed: int = 0, batches: int = 4, batch_size: int = 128) -> nn.Module:
    """A copy of `generator` whose BatchNorm statistics are measured afresh on its own outputs.

    An exponential moving average of weights also averages the running statistics, which then
    no longer match the averaged weights; sampling in eval mode needs statistics that do.
    """
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in generator.modules()):
        return generator
    g = copy.deepcopy(generator)
    device = next(g.parameters()).device
    norms = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batches below
    g.eval()  # only the norms measure; the rest (noise injection, say) runs as when sampling
    for m in norms:
        m.train()
    rng = torch.Generator().manual_seed(seed)
    classes = getattr(generator, "num_classes", 0)
    for _ in range(batches):
        z = torch.randn(batch_size, latent_dim, generator=rng).to(device)
        g(z) if not classes else g(z, balanced_labels(batch_size, classes).to(device))  # every class alike
    for m in norms:
        m.momentum = 0.1
    return g.eval()
