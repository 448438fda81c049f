"""Feature networks that turn images into vectors for the statistics in `ganforge.metrics.stats`.

    extractor = build_extractor("lite0", device="cpu")
    features = extractor(images)   # (N, 1280) float32 on the CPU

Images are uint8 (N, C, H, W) or generator output in [-1, 1] (converted with `images.to_uint8`
first, exactly as it would be saved, so a run and a folder of its samples score the same). Gray
images are repeated to three channels; each network resizes to its input.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.devices import pick_device
from ganforge.errors import GanforgeError
from ganforge.images import to_uint8

FEATURES = ("lite0", "inception")
# EfficientNet-Lite0 was trained at 224 px, but 128 px costs a quarter as much on a CPU and keeps
# ImageNet-meaningful features (4x4 before pooling). Scores are comparable only at equal settings.
LITE0_SIZE = 128
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"


# --------------------------------------------------------------------------------------------------
# Feature extraction


def as_uint8(images: Tensor) -> Tensor:
    """uint8 stays; float images are taken to be generator output in [-1, 1]."""
    return images if images.dtype == torch.uint8 else to_uint8(images)


def to_rgb(images: Tensor) -> Tensor:
    """uint8 (N, 1, 3 or 4, H, W) -> (N, 3, H, W); transparent pictures are composited on white,
    as training without --transparent would have seen them."""
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    if images.shape[1] == 4:
        from ganforge.images import composite

        return composite(images, 255)
    if images.shape[1] != 3:
        raise ValueError(f"expected 1, 3 or 4 channels, got {images.shape[1]}")
    return images


class FeatureExtractor:
    """Turns images into one feature vector each: `extractor(images) -> (N, dim)` float32 on the CPU.

    `images` is uint8 (N, C, H, W), or floats in [-1, 1]; any size, 1, 3 or 4 (RGBA) channels.
    """

    def __init__(self, name: str, dim: int, embed, device: torch.device, batch_size: int = 64):
        self.name, self.dim, self._embed, self.device, self.batch_size = name, dim, embed, device, batch_size

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = to_rgb(as_uint8(images[i : i + self.batch_size])).to(self.device)
            out.append(self._embed(batch).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)


def _lite0_embed(size: int):
    from ganforge.backbones import lite0_pooled_features

    def embed(batch_u8: Tensor) -> Tensor:
        x = batch_u8.float() / 255.0
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return lite0_pooled_features(x)  # (B, 1280)

    return embed


def _inception_network(weights: str | os.PathLike | None, pretrained: bool) -> nn.Module:
    """torch-fidelity's FID Inception (the TF graph's weights), given its weights by us.

    torch-fidelity would unpickle a weights file with weights_only=False; we load it ourselves
    (safetensors, or torch.load with weights_only=True, for the download too), then hand the state
    dict over through the constructor's own loading hook.
    """
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    if weights is not None:
        from ganforge.backbones import read_weights

        state = read_weights(Path(weights))
    elif pretrained:
        try:
            state = torch.hub.load_state_dict_from_url(INCEPTION_URL, map_location="cpu", progress=False, weights_only=True)
        except Exception as exc:  # network errors come in many types
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise GanforgeError(f"could not download the Inception weights ({reason}); "
                                "pass --inception-weights PATH to a local copy, or use --features lite0.") from None
    else:
        state = None  # random weights, for tests

    class Inception(fe.FeatureExtractorInceptionV3):
        def load_state_dict(self, sd, strict=True, assign=False):
            return None if sd is None else super().load_state_dict(sd, strict=strict, assign=assign)

    original = fe.load_state_dict_from_url
    fe.load_state_dict_from_url = lambda *a, **k: state  # the constructor's only source of weights
    try:
        return Inception("inception-v3-compat", ["2048"])
    except RuntimeError:
        raise GanforgeError(f"{weights} does not hold torch-fidelity's Inception-v3 weights.") from None
    finally:
        fe.load_state_dict_from_url = original


def build_extractor(name: str = "lite0", device: str | torch.device = "cpu", inception_weights: str | os.PathLike | None = None,
                    pretrained: bool = True, lite0_size: int = LITE0_SIZE) -> FeatureExtractor:
    """`lite0`: pooled EfficientNet-Lite0 features (1280) at `lite0_size` px, offline.
    `inception`: the standard FID network's pool features (2048) at 299 px; downloaded once unless
    `inception_weights` names a local file; `pretrained=False` gives random weights (tests)."""
    dev = pick_device(device) if isinstance(device, str) else device
    if name == "lite0":
        return FeatureExtractor("lite0", 1280, _lite0_embed(lite0_size), dev)
    if name == "inception":
        net = _inception_network(inception_weights, pretrained).to(dev)
        return FeatureExtractor("inception", 2048, lambda b: net(b)[0], dev, batch_size=32)
    raise GanforgeError(f"unknown feature network {name!r}; choose one of {', '.join(FEATURES)}.")
