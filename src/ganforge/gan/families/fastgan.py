"""A FastGAN-style pair (Liu et al. 2021, "Towards Faster and Stabilized GAN Training for
High-fidelity Few-shot Image Synthesis"), for folders of a few hundred pictures of one kind:

    G: z (B, latent) -> 4x4 -> 8x8 -> ... -> (B, C, size, size) in [-1, 1]
       each doubling: nearest upsampling, a 3x3 convolution to twice the channels, a norm, then a
       gated linear unit (GLU: one half of the channels gates the other); every resolution r >= 64
       is also gated channel by channel by the features at r / 16 (skip-layer excitation), which
       carries the coarse layout straight to the fine layers.
    D: (B, C, size, size) -> ... -> 8x8 -> (B,) logits, with BatchNorm (and spectral norm on every
       convolution with --spectral-norm, as in the paper; off by default, see config.ARCH_DEFAULTS); on real
       pictures it must also rebuild the picture from its 8x8 features and one quadrant of the
       picture from the matching crop of its 16x16 features (small decoders), so it has to learn
       what the pictures look like rather than only a tell between real and generated.

The reconstruction is an L1 distance to the picture at half the training size (capped at 128 px),
cheaper than the paper's perceptual distance on a CPU. The trainer asks for it through
`Family.judge_real`; G never sees the decoders.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.gan.families.base import Family, ModelConfig
from ganforge.gan.families.layers import class_projection, class_term, maybe_sn, norm_layer, strided_conv, through, up, widths

MIN_SIZE = 64  # the first resolution with a skip-layer excitation (4 -> 64)
EXCITE_RATIO = 16  # resolution r is gated by the features at r / 16, as in the paper
REBUILD_MAX = 128  # the decoders draw at half the training size, at most this


class Excite(nn.Module):
    """Skip-layer excitation: a low-resolution map (B, c_low, h, w) -> per-channel gates (B, c_high, 1, 1)
    in (0, 1) for a high-resolution one."""

    def __init__(self, c_low: int, c_high: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(c_low, c_high, 4, 1, 0, bias=False), nn.SiLU(),
                                  nn.Conv2d(c_high, c_high, 1, bias=False), nn.Sigmoid())

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return high * self.gate(low)


class Noise(nn.Module):
    """Noise injection (--g-noise): x + w * n, with n (B, 1, H, W) standard normal and w one learnt
    weight that starts at 0. In training n is drawn afresh (from the trainer's RNG, which a
    checkpoint carries); in eval mode it is one draw kept with the weights, so that a latent vector
    always gives the same picture and a walk does not shimmer."""

    def __init__(self, res: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.register_buffer("fixed", torch.randn(1, 1, res, res, generator=torch.Generator().manual_seed(res)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        noise = torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype) if self.training else self.fixed.to(x.dtype).expand(b, -1, -1, -1)
        return x + self.weight * noise


def glu_block(c_in: int, c_out: int, res: int, cfg: ModelConfig, double: bool) -> nn.Sequential:
    """A doubling of resolution to `res`: upsample + conv to 2 * c_out, norm, GLU; with `double`, a
    second 3x3 conv, norm and GLU at the new resolution (the paper alternates the two kinds), and
    with --g-noise noise after both convolutions of such a block, as the paper has it."""
    k, bias = cfg.num_classes, cfg.g_norm == "pixel"
    noise = [Noise(res)] if cfg.g_noise and double else []
    layers = [up(c_in, 2 * c_out, cfg.upsample, bias), *noise, norm_layer(cfg.g_norm, 2 * c_out, k), nn.GLU(1)]
    if double:
        layers += [nn.Conv2d(c_out, 2 * c_out, 3, 1, 1, bias=bias), *([Noise(res)] if noise else []), norm_layer(cfg.g_norm, 2 * c_out, k), nn.GLU(1)]
    return nn.Sequential(*layers)


class FastGANGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.size < MIN_SIZE:
            raise ValueError(f"the fastgan family starts at {MIN_SIZE} px, not {cfg.size}")
        self.num_classes = cfg.num_classes
        w = widths(cfg.g_width, cfg.size)
        self.project = nn.Sequential(nn.Linear(cfg.latent_dim, 2 * w[4] * 16, bias=cfg.g_norm == "pixel"), nn.Unflatten(1, (2 * w[4], 4, 4)),
                                     norm_layer(cfg.g_norm, 2 * w[4], cfg.num_classes), nn.GLU(1))
        self.blocks = nn.ModuleDict({str(r): glu_block(w[r // 2], w[r], r, cfg, double=(r.bit_length() % 2 == 0)) for r in list(w)[1:]})
        self.excite = nn.ModuleDict({str(r): Excite(w[r // EXCITE_RATIO], w[r]) for r in w if r // EXCITE_RATIO in w})
        self.to_rgb = nn.Sequential(nn.Conv2d(w[cfg.size], cfg.channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = {4: through(self.project, z, y)}  # (B, C4, 4, 4)
        for name, block in self.blocks.items():
            r = int(name)
            x = through(block, h[r // 2], y)  # (B, Cr, r, r)
            h[r] = self.excite[name](x, h[r // EXCITE_RATIO]) if name in self.excite else x
        return self.to_rgb(h[max(h)])  # (B, C, size, size) in [-1, 1]


def leaky() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class DownBlock(nn.Module):
    """Halve the resolution along two paths averaged: strided 4x4 conv + 3x3 conv, and average
    pooling + 1x1 conv (the paper's residual-like down block); BatchNorm, LeakyReLU. The convolutions
    before a BatchNorm have no bias (the norm's shift is one)."""

    def __init__(self, c_in: int, c_out: int, cfg: ModelConfig):
        super().__init__()
        self.main = nn.Sequential(strided_conv(c_in, c_out, sn=cfg.spectral_norm, blur=cfg.d_blur), nn.BatchNorm2d(c_out), leaky(),
                                  maybe_sn(nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), cfg.spectral_norm), nn.BatchNorm2d(c_out), leaky())
        self.skip = nn.Sequential(nn.AvgPool2d(2), maybe_sn(nn.Conv2d(c_in, c_out, 1, bias=False), cfg.spectral_norm), nn.BatchNorm2d(c_out), leaky())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.skip(x)) / 2


def decoder(c_in: int, rebuild: int, channels: int, width: int, sn: bool) -> nn.Sequential:
    """An 8x8 feature map -> a picture (B, channels, rebuild, rebuild) in [-1, 1]."""
    layers, res, c = [], 8, c_in
    while res < rebuild:
        res *= 2
        c_out = width * min(8, rebuild // res)
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), maybe_sn(nn.Conv2d(c, 2 * c_out, 3, 1, 1, bias=False), sn),
                   nn.BatchNorm2d(2 * c_out), nn.GLU(1)]
        c = c_out
    return nn.Sequential(*layers, maybe_sn(nn.Conv2d(c, channels, 3, 1, 1), sn), nn.Tanh())


class FastGANDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.size < MIN_SIZE:
            raise ValueError(f"the fastgan family starts at {MIN_SIZE} px, not {cfg.size}")
        w, size = widths(cfg.d_width, cfg.size), cfg.size
        # The first halving reads the picture: no BatchNorm on it, as in DCGAN.
        self.from_rgb = nn.Sequential(strided_conv(cfg.channels, w[size // 2], sn=cfg.spectral_norm, blur=cfg.d_blur), leaky())
        self.blocks = nn.ModuleDict({str(r): DownBlock(w[r], w[r // 2], cfg) for r in sorted(w, reverse=True) if 8 < r < size})  # size/2 -> ... -> 8
        self.logit = maybe_sn(nn.Conv2d(w[8], 1, 4, 1, 0), cfg.spectral_norm)  # (B, 1, 5, 5): a logit per overlapping patch, averaged
        self.project_class = class_projection(cfg, w[8])
        self.rebuild = min(size // 2, REBUILD_MAX)
        self.rebuild_all = decoder(w[8], self.rebuild, cfg.channels, cfg.d_width, cfg.spectral_norm)
        self.rebuild_part = decoder(w[16], self.rebuild, cfg.channels, cfg.d_width, cfg.spectral_norm)
        self.quadrant = 0  # which quarter of the picture the crop decoder rebuilds; set per step by the family

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, reconstruct: bool = False):
        """(B,) logits; with `reconstruct`, also the reconstruction loss of x (a scalar)."""
        h, feats = self.from_rgb(x), {}
        for name, block in self.blocks.items():
            h = feats[int(name) // 2] = block(h)
        logits = self.logit(h).mean((1, 2, 3)) + class_term(self.project_class, y, h)
        if not reconstruct:
            return logits
        return logits, self.reconstruction_loss(x, feats[8], feats[16])

    def reconstruction_loss(self, x: torch.Tensor, f8: torch.Tensor, f16: torch.Tensor) -> torch.Tensor:
        """Mean L1 distance of the two decoders' pictures to x at the rebuild size, and to its quadrant."""
        size, half = x.shape[-1], x.shape[-1] // 2
        qy, qx = divmod(self.quadrant, 2)
        whole = F.avg_pool2d(x, size // self.rebuild)
        part = x[..., qy * half:(qy + 1) * half, qx * half:(qx + 1) * half]
        part = F.avg_pool2d(part, half // self.rebuild) if half > self.rebuild else part
        crop = f16[..., qy * 8:(qy + 1) * 8, qx * 8:(qx + 1) * 8]  # (B, C16, 8, 8): the quadrant's features
        return (self.rebuild_all(f8) - whole).abs().mean() + (self.rebuild_part(crop) - part).abs().mean()


class FastGAN(Family):
    name = title = "fastgan"
    Generator = FastGANGenerator
    Discriminator = FastGANDiscriminator
    default_upsample = "nearest"
    min_size = MIN_SIZE

    @classmethod
    def default_width(cls, size, channels):
        """Narrow at full size (channels still double per halving, up to 8x): at 64 px, widths 8
        scored better than 16 for the same CPU time on the small-data benchmark, in twice the steps."""
        return 4 if size >= 512 else 8

    def judge_real(self, D, x, y=None):
        return D(x, y, reconstruct=True)  # (logits, reconstruction loss)

    def begin_step(self, step, nets):
        for net in nets:  # a new quadrant each step, from the step alone, so that a resumed run repeats it
            if isinstance(net, FastGANDiscriminator):
                net.quadrant = step % 4
