"""The fully connected GAN, the lesson's simplest: both networks see the image as one flat vector.

    G: z (B, latent) -> 4w -> 8w -> 16w -> (B, C, size, size) in [-1, 1]    (w = g_width) [norms per class]
    D: (B, C, size, size) -> 8w -> 4w -> (B,) logits [+ class projection]                  (w = d_width)
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.gan.families.base import Family, ModelConfig
from ganforge.gan.families.layers import batch_norm_1d, class_projection, class_term, maybe_sn, through


class MLPGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg, self.num_classes = cfg, cfg.num_classes
        layers, c_in = [], cfg.latent_dim
        for h in (cfg.g_width * 4, cfg.g_width * 8, cfg.g_width * 16):
            layers += [nn.Linear(c_in, h), batch_norm_1d(h, cfg.num_classes), nn.LeakyReLU(0.2, inplace=True)]
            c_in = h
        layers += [nn.Linear(c_in, cfg.channels * cfg.size * cfg.size), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return through(self.net, z, y).view(-1, self.cfg.channels, self.cfg.size, self.cfg.size)


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
        self.project_class = class_projection(cfg, w * 4)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.project_class is None:
            return self.net(x)
        features = self.net[:-2](x)  # (B, 4w)
        return self.net[-2:](features) + class_term(self.project_class, y, features)


class MLP(Family):
    name = title = "mlp"
    Generator = MLPGenerator
    Discriminator = MLPDiscriminator
    channels_last = False  # nothing convolutional to gain from NHWC
