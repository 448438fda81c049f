"""Networks for higher resolutions: Multi-Scale Gradient GAN and progressive growing.

Both use one generator: a DCGAN-like stack with an image head ("to RGB") at every resolution.
- MSG-GAN (Karnewar and Wang 2019): G emits an image at every scale and D sees all of them, each
  joined to D's features at the matching resolution, so gradients reach every G block directly.
- Progressive growing (Karras et al. 2018): train at 8x8 first, then fade in each higher
  resolution, blending the new block's image with the upsampled previous one as alpha goes 0 -> 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.models import maybe_sn, norm_layer, strided_conv

GROW_START = 8  # the first resolution progressive growing trains at


def widths(base: int, size: int) -> dict[int, int]:
    """Channels at each resolution 4..size: `base` at full size, doubling per halving, capped at 8x."""
    return {4 * 2**i: base * min(8, size // (4 * 2**i)) for i in range(int(math.log2(size // 4)) + 1)}


def pyramid(x: torch.Tensor, lowest: int = 4) -> list[torch.Tensor]:
    """(B, C, S, S) -> [x at lowest px, ..., x at S px], each an average of the one above."""
    out = [x]
    while out[-1].shape[-1] > lowest:
        out.append(F.avg_pool2d(out[-1], 2))
    return out[::-1]


def down_block(c_in: int, c_out: int, cfg) -> nn.Sequential:
    """One halving of resolution in the MSG and progressive discriminators: a strided convolution,
    BatchNorm unless spectral norm is on, LeakyReLU."""
    layers = [strided_conv(c_in, c_out, sn=cfg.spectral_norm, blur=cfg.d_blur)]
    if not cfg.spectral_norm:
        layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2, True))


def from_rgb(channels: int, c_out: int, cfg) -> nn.Sequential:
    """A 1x1 convolution that lifts an image into the discriminator's features at its resolution."""
    return nn.Sequential(maybe_sn(nn.Conv2d(channels, c_out, 1), cfg.spectral_norm), nn.LeakyReLU(0.2, True))


def to_logit(c_in: int, cfg) -> nn.Sequential:
    """The discriminator's last layer: a 4x4 feature map to one logit per image."""
    return nn.Sequential(maybe_sn(nn.Conv2d(c_in, 1, 4, 1, 0), cfg.spectral_norm), nn.Flatten(0))


class MultiScaleGenerator(nn.Module):
    """forward(z) -> the image at `self.resolution` (full size unless growing);
    forward_scales(z) -> [image at 4 px, ..., image at full size] (MSG-GAN)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        w = widths(cfg.g_width, cfg.size)
        bias = cfg.g_norm == "pixel"  # BatchNorm brings its own shift; PixelNorm has none
        self.project = nn.Sequential(nn.Linear(cfg.latent_dim, w[4] * 16, bias=bias), nn.Unflatten(1, (w[4], 4, 4)), norm_layer(cfg.g_norm, w[4]), nn.ReLU(True))
        self.blocks = nn.ModuleDict()
        self.to_rgb = nn.ModuleDict({"4": nn.Conv2d(w[4], cfg.channels, 1)})
        for res in list(w)[1:]:
            up = (nn.ConvTranspose2d(w[res // 2], w[res], 4, 2, 1, bias=bias) if cfg.upsample == "transpose"
                  else nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w[res // 2], w[res], 3, 1, 1, bias=bias)))
            self.blocks[str(res)] = nn.Sequential(up, norm_layer(cfg.g_norm, w[res]), nn.ReLU(True),
                                                  nn.Conv2d(w[res], w[res], 3, 1, 1, bias=bias), norm_layer(cfg.g_norm, w[res]), nn.ReLU(True))
            self.to_rgb[str(res)] = nn.Conv2d(w[res], cfg.channels, 1)
        self.resolution, self.alpha = cfg.size, 1.0  # the growing stage; full size when done

    def set_stage(self, resolution: int, alpha: float) -> None:
        self.resolution, self.alpha = resolution, alpha

    def _features(self, z: torch.Tensor, up_to: int) -> list[torch.Tensor]:
        h = [self.project(z)]  # (B, C4, 4, 4)
        res = 4
        while res < up_to:
            res *= 2
            h.append(self.blocks[str(res)](h[-1]))
        return h

    def forward_scales(self, z: torch.Tensor) -> list[torch.Tensor]:
        feats = self._features(z, self.cfg.size)
        return [torch.tanh(self.to_rgb[str(f.shape[-1])](f)) for f in feats]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        feats = self._features(z, self.resolution)
        img = torch.tanh(self.to_rgb[str(self.resolution)](feats[-1]))
        if self.alpha < 1 and len(feats) > 1:  # fading in the newest block
            prev = torch.tanh(self.to_rgb[str(self.resolution // 2)](feats[-2]))
            img = torch.lerp(F.interpolate(prev, scale_factor=2, mode="nearest"), img, self.alpha)
        return img


class MSGDiscriminator(nn.Module):
    """Takes [image at 4 px, ..., image at full size]; each scale is concatenated to D's features
    at its resolution (MSG-GAN's simple combine)."""

    def __init__(self, cfg):
        super().__init__()
        w, c = widths(cfg.d_width, cfg.size), cfg.channels
        self.from_rgb = from_rgb(c, w[cfg.size], cfg)
        self.blocks = nn.ModuleDict()
        for res in list(w)[::-1][:-1]:  # size, ..., 8: each halves
            self.blocks[str(res)] = down_block(w[res] + (c if res < cfg.size else 0), w[res // 2], cfg)
        self.final = to_logit(w[4] + c, cfg)

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        by_res = {x.shape[-1]: x for x in images}
        size = max(by_res)
        h = self.from_rgb(by_res[size])
        res = size
        while res > 4:
            if res < size:
                h = torch.cat([h, by_res[res]], 1)
            h = self.blocks[str(res)](h)
            res //= 2
        return self.final(torch.cat([h, by_res[4]], 1))  # (B,) logits


class ProgressiveDiscriminator(nn.Module):
    """Takes an image at the current growing resolution; while alpha < 1 the newest block's
    output is blended with the downsampled image entering through the previous "from RGB"."""

    def __init__(self, cfg):
        super().__init__()
        w, c = widths(cfg.d_width, cfg.size), cfg.channels
        self.from_rgb = nn.ModuleDict({str(r): from_rgb(c, w[r], cfg) for r in w if r >= GROW_START})
        self.blocks = nn.ModuleDict()
        for res in [r for r in w if r >= GROW_START]:
            self.blocks[str(res)] = down_block(w[res], w[res // 2], cfg)
        self.final = to_logit(w[4], cfg)
        self.alpha = 1.0

    def set_stage(self, resolution: int, alpha: float) -> None:
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x.shape[-1]
        h = self.blocks[str(res)](self.from_rgb[str(res)](x))
        if self.alpha < 1 and res > GROW_START:
            h = torch.lerp(self.from_rgb[str(res // 2)](F.avg_pool2d(x, 2)), h, self.alpha)
        res //= 2
        while res > 4:
            h = self.blocks[str(res)](h)
            res //= 2
        return self.final(h)


def grow_stage(step: int, size: int, steps_per_stage: int) -> tuple[int, float]:
    """(resolution, alpha) at `step`: 8 px first, then each doubling fades in over half a stage."""
    start = stage_start(step, size, steps_per_stage)
    stage, into = start // steps_per_stage, step - start
    resolution = GROW_START * 2**stage
    alpha = 1.0 if stage == 0 else min(1.0, into / max(1, steps_per_stage // 2))
    return resolution, alpha


def stage_start(step: int, size: int, steps_per_stage: int) -> int:
    """The step at which the growing stage that `step` falls in began."""
    return min(step // steps_per_stage, grow_stages(size) - 1) * steps_per_stage


def grow_stages(size: int) -> int:
    return int(math.log2(size // GROW_START)) + 1
