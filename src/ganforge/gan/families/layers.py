"""Layers that the network families share: the generator's projection and upsampling, the
discriminator's downsampling and logit, normalisation, anti-aliasing and weight initialisation.

Each builder returns either a module or, where a family keeps its layers in one flat
`nn.Sequential` (DCGAN), a list of modules, so that sharing a block never renames a checkpoint key.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.transforms.v2.functional import gaussian_blur

from ganforge.gan.families.base import ModelConfig


def channels(base: int, top: int, res: int) -> int:
    """Channels at resolution `res`: `base` at resolution `top`, doubling per halving, capped at 8x."""
    return base * min(8, top // res)


def widths(base: int, size: int) -> dict[int, int]:
    """Channels at each resolution 4, 8, ..., size, with `base` at full size."""
    return {4 * 2**i: channels(base, size, 4 * 2**i) for i in range(int(math.log2(size // 4)) + 1)}


def init_weights(module: nn.Module) -> None:
    """Radford et al.: weights from N(0, 0.02), BatchNorm scales from N(1, 0.02), biases zero; the
    same for the scales and shifts per class of a conditional generator's norms."""
    if isinstance(module, ClassNorm):
        nn.init.normal_(module.scale.weight, 1.0, 0.02)
        nn.init.zeros_(module.shift.weight)
    elif isinstance(module, ClassProjection):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        parametrized = nn.utils.parametrize.is_parametrized(module, "weight")  # spectral norm
        nn.init.normal_(module.parametrizations.weight.original if parametrized else module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class PixelNorm(nn.Module):
    """Scales each pixel's feature vector to unit root-mean-square (Karras et al. 2018), so that,
    unlike BatchNorm, no sample depends on the rest of its batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)  # (B, C, H, W)


def norm_layer(kind: str, channels: int, classes: int = 0) -> nn.Module:
    """G's normalisation: BatchNorm or PixelNorm; for a conditional generator (`classes` > 0), with a
    scale and shift per class (`ClassNorm`)."""
    if classes:
        return ClassNorm(PixelNorm() if kind == "pixel" else nn.BatchNorm2d(channels, affine=False), channels, classes)
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


# ---- class conditioning ---------------------------------------------------------------------------
#
# A class-conditional pair (`--conditional`) gives every normalisation of G a scale and shift per
# class (conditional BatchNorm, as in BigGAN), and D a projection head (Miyato and Koyama 2018):
# the logit gains the inner product of a learned vector per class with D's last features, so D
# judges "a real picture of this class" rather than "a real picture". Both work the same way in
# every family. (A learned class code joined to z instead drew the digits' classes less reliably
# and with less variety within a class: 97.5% and 0.81 against 99.7% and 0.90 in
# benchmarks/conditional_digits.py.)


class ClassNorm(nn.Module):
    """A normalisation without scale and shift of its own (BatchNorm with affine=False, PixelNorm),
    then a scale and shift chosen by each sample's class: x (B, C, ...), y (B,)."""

    def __init__(self, norm: nn.Module, channels: int, classes: int):
        super().__init__()
        self.norm = norm
        self.scale, self.shift = nn.Embedding(classes, channels), nn.Embedding(classes, channels)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError("a class-conditional generator needs class labels: G(z, labels)")
        shape = (y.shape[0], -1) + (1,) * (x.ndim - 2)  # y.shape[0], not len(y): export keeps the batch size free
        return self.norm(x) * self.scale(y).view(shape) + self.shift(y).view(shape)


def through(layers: nn.Sequential, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """`layers(x)`, handing the class labels y to the class norms among them."""
    for layer in layers:
        x = layer(x, y) if isinstance(layer, ClassNorm) else layer(x)
    return x


def batch_norm_1d(channels: int, classes: int) -> nn.Module:
    """The fully connected generator's BatchNorm, per class when conditional."""
    return ClassNorm(nn.BatchNorm1d(channels, affine=False), channels, classes) if classes else nn.BatchNorm1d(channels)


class ClassProjection(nn.Embedding):
    """D's projection head: (B,) class indices -> (B, C), one vector per class in D's last feature space."""

    def forward(self, y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """features (B, C) or (B, C, H, W), summed over positions -> (B,) class term of the logit."""
        pooled = features.sum((2, 3)) if features.ndim == 4 else features
        return (super().forward(y) * pooled).sum(1)


def class_projection(cfg: ModelConfig, features: int) -> ClassProjection | None:
    return ClassProjection(cfg.num_classes, features) if cfg.classes else None


def class_term(projection: ClassProjection | None, y: torch.Tensor | None, features: torch.Tensor) -> torch.Tensor | float:
    if projection is None:
        return 0.0
    if y is None:
        raise ValueError("a class-conditional discriminator needs class labels: D(x, labels)")
    return projection(y, features)


# ---- generator ------------------------------------------------------------------------------------


def g_bias(cfg: ModelConfig) -> bool:
    """Generator convolutions need a bias only under PixelNorm; BatchNorm brings its own shift."""
    return cfg.g_norm == "pixel"


def projection(cfg: ModelConfig, c4: int) -> nn.Sequential:
    """The latent vector to a 4x4 feature map (B, c4, 4, 4): DCGAN's first "transposed conv" as a dense layer."""
    return nn.Sequential(nn.Linear(cfg.latent_dim, c4 * 16, bias=g_bias(cfg)), nn.Unflatten(1, (c4, 4, 4)),
                         norm_layer(cfg.g_norm, c4, cfg.num_classes), nn.ReLU(True))


def up(c_in: int, c_out: int, mode: str, bias: bool) -> nn.Module:
    """Double the resolution: a 4x4 transposed convolution of stride 2, or nearest upsampling and
    a 3x3 convolution (which avoids the transposed convolution's checkerboard)."""
    if mode == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias))
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)


# ---- discriminator --------------------------------------------------------------------------------


def strided_conv(c_in: int, c_out: int, sn: bool, blur: bool) -> nn.Module:
    """The discriminator's downsampling step: a 4x4 convolution of stride 2, optionally blurred first.
    It has a bias only with spectral norm, which replaces the BatchNorm (and its shift) that follows."""
    conv = maybe_sn(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=sn), sn)
    return nn.Sequential(Blur(), conv) if blur else conv


def down_layers(c_in: int, c_out: int, cfg: ModelConfig, batch_norm: bool = True) -> list[nn.Module]:
    """One halving of resolution: a strided convolution, BatchNorm (unless spectral norm is on or
    `batch_norm` is False), LeakyReLU."""
    layers = [strided_conv(c_in, c_out, sn=cfg.spectral_norm, blur=cfg.d_blur)]
    if batch_norm and not cfg.spectral_norm:
        layers.append(nn.BatchNorm2d(c_out))
    return layers + [nn.LeakyReLU(0.2, inplace=True)]


def down_block(c_in: int, c_out: int, cfg: ModelConfig) -> nn.Sequential:
    return nn.Sequential(*down_layers(c_in, c_out, cfg))


def from_rgb(channels: int, c_out: int, cfg: ModelConfig) -> nn.Sequential:
    """A 1x1 convolution that lifts an image into the discriminator's features at its resolution."""
    return nn.Sequential(maybe_sn(nn.Conv2d(channels, c_out, 1), cfg.spectral_norm), nn.LeakyReLU(0.2, True))


def logit_layers(c_in: int, cfg: ModelConfig) -> list[nn.Module]:
    """The discriminator's last layer: a 4x4 feature map to one logit per image, (B,)."""
    return [maybe_sn(nn.Conv2d(c_in, 1, 4, 1, 0), cfg.spectral_norm), nn.Flatten(0)]


def to_logit(c_in: int, cfg: ModelConfig) -> nn.Sequential:
    return nn.Sequential(*logit_layers(c_in, cfg))
