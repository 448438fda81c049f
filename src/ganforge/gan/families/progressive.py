"""Progressive growing (Karras et al. 2018): train at 8x8 first, then fade in each higher resolution,
blending the new block's image with the upsampled previous one as alpha goes 0 -> 1.

The generator is MSG-GAN's multi-scale stack drawing at its current resolution; the discriminator
starts from a "from RGB" layer at that resolution. Both change stage between steps, set from the
step number alone, so a resumed run grows exactly as an uninterrupted one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.gan.families.base import Family, ModelConfig
from ganforge.gan.families.layers import class_projection, class_term, down_block, from_rgb, to_logit, widths
from ganforge.gan.families.msg import MultiScaleGenerator

GROW_START = 8  # the first resolution progressive growing trains at


class ProgressiveDiscriminator(nn.Module):
    """Takes an image at the current growing resolution; while alpha < 1 the newest block's
    output is blended with the downsampled image entering through the previous "from RGB"."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w, c = widths(cfg.d_width, cfg.size), cfg.channels
        self.from_rgb = nn.ModuleDict({str(r): from_rgb(c, w[r], cfg) for r in w if r >= GROW_START})
        self.blocks = nn.ModuleDict()
        for res in [r for r in w if r >= GROW_START]:
            self.blocks[str(res)] = down_block(w[res], w[res // 2], cfg)
        self.final = to_logit(w[4], cfg)
        self.project_class = class_projection(cfg, w[4])
        self.alpha = 1.0

    def set_stage(self, resolution: int, alpha: float) -> None:
        self.alpha = alpha

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        res = x.shape[-1]
        h = self.blocks[str(res)](self.from_rgb[str(res)](x))
        if self.alpha < 1 and res > GROW_START:
            h = torch.lerp(self.from_rgb[str(res // 2)](F.avg_pool2d(x, 2)), h, self.alpha)
        res //= 2
        while res > 4:
            h = self.blocks[str(res)](h)
            res //= 2
        return self.final(h) + class_term(self.project_class, y, h)


def grow_stages(size: int) -> int:
    return int(math.log2(size // GROW_START)) + 1


def stage_start(step: int, size: int, steps_per_stage: int) -> int:
    """The step at which the growing stage that `step` falls in began."""
    return min(step // steps_per_stage, grow_stages(size) - 1) * steps_per_stage


def grow_stage(step: int, size: int, steps_per_stage: int) -> tuple[int, float]:
    """(resolution, alpha) at `step`: 8 px first, then each doubling fades in over half a stage."""
    start = stage_start(step, size, steps_per_stage)
    stage, into = start // steps_per_stage, step - start
    resolution = GROW_START * 2**stage
    alpha = 1.0 if stage == 0 else min(1.0, into / max(1, steps_per_stage // 2))
    return resolution, alpha


class Progressive(Family):
    name = "progressive"
    title = "dcgan grown from 8px"
    Generator = MultiScaleGenerator
    Discriminator = ProgressiveDiscriminator
    # As the paper does; a growing generator built from transposed convolutions showed a
    # checkerboard from 32 px on, still there after 1,000 steps at 128 px.
    default_upsample = "nearest"
    unused_parameters = True  # the blocks above the growing resolution take no part yet

    def begin_step(self, step, nets):
        stage = grow_stage(step, self.model.size, self.train.grow_stage_steps)
        for net in nets:
            net.set_stage(*stage)

    def real(self, real, G):
        res, alpha = G.resolution, G.alpha
        real = F.adaptive_avg_pool2d(real, res) if res < real.shape[-1] else real
        if alpha < 1:  # reals fade in like the generator's new block
            real = torch.lerp(F.interpolate(F.avg_pool2d(real, 2), scale_factor=2, mode="nearest"), real, alpha)
        return real

    def ema_decay(self, step, decay):
        """Each stage's new block starts from its initial weights, and a long average blends those
        into the samples (washed-out, blocky pictures for hundreds of steps after every fade-in).
        So the average restarts short at every stage and lengthens as the stage goes on, with
        TensorFlow's ExponentialMovingAverage ramp, up to `decay`."""
        into = step - stage_start(step, self.model.size, self.train.grow_stage_steps)
        return min(decay, (1 + into) / (10 + into))

    def progress(self, G):
        return {"resolution": G.resolution, "alpha": round(G.alpha, 3)}

    def sample_resolution(self, G):
        return G.resolution
