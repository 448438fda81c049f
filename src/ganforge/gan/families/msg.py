"""Multi-Scale Gradient GAN (Karnewar and Wang 2019): G emits an image at every scale and D sees all
of them, each joined to D's features at the matching resolution, so gradients reach every G block
directly.

    G(z, all_scales=True): z -> [(B, C, 4, 4), (B, C, 8, 8), ..., (B, C, size, size)]
    D: that list (or a pyramid of a real batch) -> (B,) logits
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.gan.families.base import Family, ModelConfig
from ganforge.gan.families.layers import (class_projection, class_term, down_block, from_rgb, g_bias, norm_layer, projection, through, to_logit, up,
                                          widths)


class MultiScaleGenerator(nn.Module):
    """A DCGAN-like stack with an image head ("to RGB") at every resolution, shared by MSG-GAN and
    progressive growing.

    forward(z[, y]) -> the image at `self.resolution` (full size unless growing; y: class labels of a
    conditional generator);
    forward(z, y, all_scales=True) -> [image at 4 px, ..., image at full size] (MSG-GAN). (An argument
    rather than a method of its own, so that wrappers such as DistributedDataParallel see the call.)
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg, self.num_classes = cfg, cfg.num_classes
        w, bias = widths(cfg.g_width, cfg.size), g_bias(cfg)
        self.project = projection(cfg, w[4])
        self.blocks = nn.ModuleDict()
        self.to_rgb = nn.ModuleDict({"4": nn.Conv2d(w[4], cfg.channels, 1)})
        for res in list(w)[1:]:
            k = cfg.num_classes
            self.blocks[str(res)] = nn.Sequential(up(w[res // 2], w[res], cfg.upsample, bias), norm_layer(cfg.g_norm, w[res], k), nn.ReLU(True),
                                                  nn.Conv2d(w[res], w[res], 3, 1, 1, bias=bias), norm_layer(cfg.g_norm, w[res], k), nn.ReLU(True))
            self.to_rgb[str(res)] = nn.Conv2d(w[res], cfg.channels, 1)
        self.resolution, self.alpha = cfg.size, 1.0  # the growing stage; full size when done

    def set_stage(self, resolution: int, alpha: float) -> None:
        self.resolution, self.alpha = resolution, alpha

    def _features(self, z: torch.Tensor, y: torch.Tensor | None, up_to: int) -> list[torch.Tensor]:
        h = [through(self.project, z, y)]  # (B, C4, 4, 4)
        res = 4
        while res < up_to:
            res *= 2
            h.append(through(self.blocks[str(res)], h[-1], y))
        return h

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, all_scales: bool = False) -> torch.Tensor | list[torch.Tensor]:
        if all_scales:
            return [torch.tanh(self.to_rgb[str(f.shape[-1])](f)) for f in self._features(z, y, self.cfg.size)]
        feats = self._features(z, y, self.resolution)
        img = torch.tanh(self.to_rgb[str(self.resolution)](feats[-1]))
        if self.alpha < 1 and len(feats) > 1:  # fading in the newest block
            prev = torch.tanh(self.to_rgb[str(self.resolution // 2)](feats[-2]))
            img = torch.lerp(F.interpolate(prev, scale_factor=2, mode="nearest"), img, self.alpha)
        return img


class MSGDiscriminator(nn.Module):
    """Takes [image at 4 px, ..., image at full size]; each scale is concatenated to D's features
    at its resolution (MSG-GAN's simple combine)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w, c = widths(cfg.d_width, cfg.size), cfg.channels
        self.from_rgb = from_rgb(c, w[cfg.size], cfg)
        self.blocks = nn.ModuleDict()
        for res in list(w)[::-1][:-1]:  # size, ..., 8: each halves
            self.blocks[str(res)] = down_block(w[res] + (c if res < cfg.size else 0), w[res // 2], cfg)
        self.final = to_logit(w[4] + c, cfg)
        self.project_class = class_projection(cfg, w[4] + c)

    def forward(self, images: list[torch.Tensor], y: torch.Tensor | None = None) -> torch.Tensor:
        by_res = {x.shape[-1]: x for x in images}
        size = max(by_res)
        h = self.from_rgb(by_res[size])
        res = size
        while res > 4:
            if res < size:
                h = torch.cat([h, by_res[res]], 1)
            h = self.blocks[str(res)](h)
            res //= 2
        h = torch.cat([h, by_res[4]], 1)  # (B, C + channels, 4, 4)
        return self.final(h) + class_term(self.project_class, y, h)  # (B,) logits


def pyramid(x: torch.Tensor, lowest: int = 4) -> list[torch.Tensor]:
    """(B, C, S, S) -> [x at lowest px, ..., x at S px], each an average of the one above."""
    out = [x]
    while out[-1].shape[-1] > lowest:
        out.append(F.avg_pool2d(out[-1], 2))
    return out[::-1]


class MSG(Family):
    name = title = "msg"
    Generator = MultiScaleGenerator
    Discriminator = MSGDiscriminator
    # The paper upsamples with nearest + conv; transposed convolutions leave a checkerboard here.
    default_upsample = "nearest"

    def fake(self, G, z, y=None):
        return G(z, y, all_scales=True)

    def real(self, real, G):
        return pyramid(real)

    def detach(self, fake):
        return [f.detach() for f in fake]
