"""Generators and discriminators: the fully connected GAN and DCGAN (MSG-GAN and progressive
growing are in multiscale.py).

Every size is an explicit argument, carried in `ModelConfig`, which travels inside checkpoints
and safetensors metadata so that `ganforge sample` can rebuild a generator from its file alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torchvision.transforms.v2.functional import gaussian_blur

ARCHS = ("dcgan", "mlp", "msg", "progressive")
UPSAMPLES = ("transpose", "nearest")


def default_width(size: int, channels: int = 3) -> int:
    """Channels of the highest-resolution block: the DCGAN paper's 64, narrowed above 64 px so
    the widest (8x) layers stay affordable on a laptop CPU, and halved for gray pictures, which
    hold a third of the information (on the digits, 32 learns as well as 64 at a third of the cost)."""
    width = {16: 64, 32: 64, 64: 64, 128: 32, 256: 16}[size]
    return width // 2 if channels == 1 else width


@dataclass
class ModelConfig:
    arch: str = "dcgan"
    size: int = 32
    channels: int = 1
    latent_dim: int = 100
    g_width: int = 64
    d_width: int = 64
    upsample: str = "transpose"
    g_norm: str = "batch"  # convolutional generators: batch (BatchNorm) or pixel (PixelNorm)
    spectral_norm: bool = False  # discriminator only
    d_blur: bool = False  # blur before D's strided convs; files written before it existed had none

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al.: weights from N(0, 0.02), BatchNorm scales from N(1, 0.02), biases zero."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        parametrized = nn.utils.parametrize.is_parametrized(module, "weight")  # spectral norm
        nn.init.normal_(module.parametrizations.weight.original if parametrized else module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class PixelNorm(nn.Module):
    """Scales each pixel's feature vector to unit root-mean-square (Karras et al. 2018), so that,
    unlike BatchNorm, no sample depends on the rest of its batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)  # (B, C, H, W)


def norm_layer(kind: str, channels: int) -> nn.Module:
    return PixelNorm() if kind == "pixel" else nn.BatchNorm2d(channels)


class Blur(nn.Module):
    """A [1, 2, 1] x [1, 2, 1] / 16 low-pass filter, as StyleGAN2 applies before downsampling.

    A strided convolution samples every other pixel: detail finer than the new grid folds into it
    (aliasing), and the gradient it hands back to the generator is patterned on the same grid. It
    cancels the finest checkerboard completely, so a discriminator that blurs before every stride
    cannot see it, and its generator is free to draw it (measured in the README).
    """

    SIGMA = math.sqrt(0.5 / math.log(2))  # torchvision's 3-tap Gaussian with this sigma is [1, 2, 1] / 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(x, [3, 3], [self.SIGMA, self.SIGMA])


def maybe_sn(layer: nn.Module, on: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if on else layer


def strided_conv(c_in: int, c_out: int, sn: bool, blur: bool) -> nn.Module:
    """The discriminator's downsampling step: a 4x4 convolution of stride 2, optionally blurred first.
    It has a bias only with spectral norm, which replaces the BatchNorm (and its shift) that follows."""
    conv = maybe_sn(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=sn), sn)
    return nn.Sequential(Blur(), conv) if blur else conv


def _width(base: int, size: int, res: int) -> int:
    """Channels at resolution `res`: `base` at size/2, doubling per halving, capped at 8x."""
    return base * min(8, (size // 2) // res)


class DCGANGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c4 = _width(cfg.g_width, cfg.size, 4)
        # The projection: a dense layer to a 4x4 feature map (the first "transposed conv" of DCGAN).
        bias = cfg.g_norm == "pixel"  # BatchNorm brings its own shift; PixelNorm has none
        self.project = nn.Sequential(nn.Linear(cfg.latent_dim, c4 * 16, bias=bias), nn.Unflatten(1, (c4, 4, 4)), norm_layer(cfg.g_norm, c4), nn.ReLU(True))
        blocks, res, c_in = [], 4, c4
        while res * 2 < cfg.size:
            res *= 2
            c_out = _width(cfg.g_width, cfg.size, res)
            blocks += [self._up(c_in, c_out, bias=bias), norm_layer(cfg.g_norm, c_out), nn.ReLU(True)]
            c_in = c_out
        blocks += [self._up(c_in, cfg.channels, bias=True), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)

    def _up(self, c_in: int, c_out: int, bias: bool) -> nn.Module:
        if self.cfg.upsample == "nearest":  # avoids the checkerboard of strided transposed convs
            return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias))
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.project(z))  # (B, C, H, W) in [-1, 1]


class DCGANDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers, res, c_in = [], cfg.size, cfg.channels
        while res > 4:
            res //= 2
            c_out = _width(cfg.d_width, cfg.size, res)
            layers.append(strided_conv(c_in, c_out, sn=cfg.spectral_norm, blur=cfg.d_blur))
            if c_in != cfg.channels and not cfg.spectral_norm:  # no BatchNorm on the first block, as in DCGAN
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in = c_out
        layers += [maybe_sn(nn.Conv2d(c_in, 1, 4, 1, 0), cfg.spectral_norm), nn.Flatten(0)]  # 4x4 -> one logit
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B,) logits


class MLPGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        hidden = [cfg.g_width * 4, cfg.g_width * 8, cfg.g_width * 16]
        layers, c_in = [], cfg.latent_dim
        for h in hidden:
            layers += [nn.Linear(c_in, h), nn.BatchNorm1d(h), nn.LeakyReLU(0.2, inplace=True)]
            c_in = h
        layers += [nn.Linear(c_in, cfg.channels * cfg.size * cfg.size), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, self.cfg.channels, self.cfg.size, self.cfg.size)


class MLPDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        n_in = cfg.channels * cfg.size * cfg.size
        sn = cfg.spectral_norm
        self.net = nn.Sequential(
            nn.Flatten(),
            maybe_sn(nn.Linear(n_in, cfg.d_width * 8), sn), nn.LeakyReLU(0.2, inplace=True),
            maybe_sn(nn.Linear(cfg.d_width * 8, cfg.d_width * 4), sn), nn.LeakyReLU(0.2, inplace=True),
            maybe_sn(nn.Linear(cfg.d_width * 4, 1), sn), nn.Flatten(0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_generator(cfg: ModelConfig) -> nn.Module:
    from ganforge.multiscale import MultiScaleGenerator

    g = {"dcgan": DCGANGenerator, "mlp": MLPGenerator, "msg": MultiScaleGenerator, "progressive": MultiScaleGenerator}[cfg.arch](cfg)
    g.apply(init_dcgan_weights)
    return g


def build_discriminator(cfg: ModelConfig) -> nn.Module:
    from ganforge.multiscale import MSGDiscriminator, ProgressiveDiscriminator

    d = {"dcgan": DCGANDiscriminator, "mlp": MLPDiscriminator, "msg": MSGDiscriminator, "progressive": ProgressiveDiscriminator}[cfg.arch](cfg)
    d.apply(init_dcgan_weights)
    return d


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def grid_rows(n: int) -> int:
    """Images per row for a near-square grid of n images."""
    return max(1, math.ceil(math.sqrt(n)))


@torch.no_grad()
def recalibrate_batchnorm(generator: nn.Module, latent_dim: int, seed: int = 0, batches: int = 4, batch_size: int = 128) -> nn.Module:
    """A copy of `generator` whose BatchNorm statistics are measured afresh on its own outputs.

    An exponential moving average of weights also averages the running statistics, which then
    no longer match the averaged weights; sampling in eval mode needs statistics that do.
    """
    import copy

    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return generator
    g = copy.deepcopy(generator)
    device = next(g.parameters()).device
    norms = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batches below
    g.train()
    rng = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        g(torch.randn(batch_size, latent_dim, generator=rng).to(device))
    for m in norms:
        m.momentum = 0.1
    return g.eval()
