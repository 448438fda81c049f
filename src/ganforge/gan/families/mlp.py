"""The fully connected GAN, the lesson's simplest: both networks see the image as one flat vector.

    G: z (B, latent) -> 4w -> 8w -> 16w -> (B, C, size, size) in [-1, 1]     (w = g_width)
    D: (B, C, size, size) -> 8w -> 4w -> (B,) logits                          (w = d_width)
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.gan.families.base import Family, ModelConfig
from ganforge.gan.families.layers import maybe_sn


class MLPGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        layers, c_in = [], cfg.latent_dim
        for h in (cfg.g_width * 4, cfg.g_width * 8, cfg.g_width * 16):
            layers += [nn.Linear(c_in, h), nn.BatchNorm1d(h), nn.LeakyReLU(0.2, inplace=True)]
            c_in = h
        layers += [nn.Linear(c_in, cfg.channels * cfg.size * cfg.size), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, self.cfg.channels, self.cfg.size, self.cfg.size)


class MLPDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        n_in, w, sn = cfg.channels * cfg.size * cfg.size, cfg.d_width, cfg.spectral_norm
        self.net = nn.Sequential(
            nn.Flatten(),
            maybe_sn(nn.Linear(n_in, w * 8), sn), nn.LeakyReLU(0.2, inplace=True),
            maybe_sn(nn.Linear(w * 8, w * 4), sn), nn.LeakyReLU(0.2, inplace=True),
            maybe_sn(nn.Linear(w * 4, 1), sn), nn.Flatten(0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLP(Family):
    name = title = "mlp"
    Generator = MLPGenerator
    Discriminator = MLPDiscriminator
    channels_last = False  # nothing convolutional to gain from NHWC
