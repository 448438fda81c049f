"""DCGAN (Radford et al. 2016): a convolutional generator that doubles its resolution block by
block from a 4x4 projection, and a discriminator of strided convolutions down to one logit.

    G: z (B, latent) -> 4x4 -> 8x8 -> ... -> (B, C, size, size) in [-1, 1]   [norms per class]
    D: (B, C, size, size) -> ... -> 4x4 -> (B,) logits [+ class projection]

Both keep their layers in one flat `nn.Sequential`, as the first releases did, so that their
checkpoint keys (`blocks.3.weight`, `net.2.weight`, ...) never change.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.gan.families.base import Family, ModelConfig
from ganforge.gan.families.layers import (channels, class_projection, class_term, down_layers, g_bias, logit_layers, norm_layer, projection,
                                          through, up)


class DCGANGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        top = cfg.size // 2  # g_width is the width of the last hidden block, at half the output size
        bias = g_bias(cfg)
        self.num_classes = cfg.num_classes
        self.project = projection(cfg, channels(cfg.g_width, top, 4))
        blocks, res, c_in = [], 4, channels(cfg.g_width, top, 4)
        while res * 2 < cfg.size:
            res *= 2
            c_out = channels(cfg.g_width, top, res)
            blocks += [up(c_in, c_out, cfg.upsample, bias), norm_layer(cfg.g_norm, c_out, cfg.num_classes), nn.ReLU(True)]
            c_in = c_out
        blocks += [up(c_in, cfg.channels, cfg.upsample, bias=True), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if not self.num_classes:
            return self.blocks(self.project(z))  # (B, C, H, W) in [-1, 1]
        return through(self.blocks, through(self.project, z, y), y)


class DCGANDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        top = cfg.size // 2
        layers, res, c_in = [], cfg.size, cfg.channels
        while res > 4:
            res //= 2
            c_out = channels(cfg.d_width, top, res)
            # No BatchNorm on the block that reads the image, as in DCGAN. That block is told by
            # its input width, as the first release did, so that checkpoint keys stay the same.
            layers += down_layers(c_in, c_out, cfg, batch_norm=c_in != cfg.channels)
            c_in = c_out
        self.net = nn.Sequential(*layers, *logit_layers(c_in, cfg))
        self.project_class = class_projection(cfg, c_in)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.project_class is None:
            return self.net(x)  # (B,) logits
        features = self.net[:-2](x)  # (B, C, 4, 4): what the logit layer reads
        return self.net[-2:](features) + class_term(self.project_class, y, features)


class DCGAN(Family):
    name = title = "dcgan"
    Generator = DCGANGenerator
    Discriminator = DCGANDiscriminator
