"""Neural style transfer (Gatys et al.): repaint a photograph in the style of one or more paintings.

    import ganforge
    ganforge.stylize("photo.jpg", ["starry_night.jpg"]).save("out.png")

The image's pixels are optimised so that its CNN features match the photo's (content loss), the
Gram matrices of its features match the paintings' (style loss), and neighbouring pixels stay
close (total-variation loss). `stylize`'s signature is the single source of defaults: the CLI
(`ganforge.style_cli`) derives its options from it.

EfficientNet-Lite0, the default feature network, is ~10x cheaper per step than VGG-19, but
non-VGG features need care (Wang et al., CVPR 2021: peaky, low-entropy activations make a Gram
loss chase a few pixels and leave high-frequency colour noise). The lite0 recipe below uses the
non-negative, wide activations after each block's 1x1 expansion and ReLU6 (the closest analogue
of VGG's ReLU layers), per-layer normalised losses, a start from the photo recoloured to the
painting's palette, and coarse-to-fine optimisation. The paper's remedy, a softmax over each
channel's activations (`swag`), is available per recipe; with these layers it added visible colour
speckle in side-by-side 512-px runs, so it is off by default.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ganforge.backbones import BACKBONES, build_backbone, layer_names
from ganforge.devices import pick_device
from ganforge.errors import GanforgeError
from ganforge.images import load_image, save_image_atomic, as_upright_rgb

INITS = ("content", "random")
OPTIMIZERS = ("adam", "lbfgs")
PRESERVE_COLORS = ("none", "luminance", "histogram")
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class BackboneRecipe:
    """How a feature network is used for style transfer: its layers and activation treatment."""

    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    swag_temperature: float | None  # None: raw activations; else softmax(a / T) over positions


RECIPES = {
    "lite0": BackboneRecipe(
        content_layers=("blocks.5.expand",),
        style_layers=("stem", "blocks.1.expand", "blocks.3.expand", "blocks.5.expand", "blocks.11.expand"),
        swag_temperature=None,
    ),
    # The classic choice (Gatys et al.; jcjohnson/neural-style).
    "vgg19": BackboneRecipe(
        content_layers=("relu4_2",),
        style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        swag_temperature=None,
    ),
}


@dataclass
class StyleProgress:
    """What the progress callback receives after every optimisation step."""

    step: int  # 1-based, counted over all scales
    total: int  # steps over all scales
    scale: int  # 1-based index of the current scale
    scales: int
    size: tuple[int, int]  # (width, height) being optimised now
    losses: dict[str, float]  # weighted terms: content, style, tv, total
    _image: Callable[[], Image.Image] = field(repr=False)

    def image(self) -> Image.Image:
        """The current image (computed only when asked for)."""
        return self._image()


def stylize(
    content: str | os.PathLike | Image.Image,
    styles: str | os.PathLike | Image.Image | Sequence[str | os.PathLike | Image.Image],
    *,
    size: int = 512,
    content_weight: float = 2.0,
    style_weight: float = 1e3,
    tv_weight: float = 20.0,
    content_layers: str | Sequence[str] | None = None,
    style_layers: str | Sequence[str] | None = None,
    init: str = "content",
    optimizer: str = "adam",
    steps: int = 150,
    lr: float = 0.02,
    seed: int = 0,
    backbone: str = "lite0",
    weights: str | os.PathLike | None = None,
    scales: int = 2,
    style_weights: str | Sequence[float] | None = None,
    style_scale: float = 1.0,
    preserve_color: str = "none",
    save_every: int = 0,
    save_path: str | os.PathLike | None = None,
    max_size: int = 4096,
    device: str = "auto",
    callback: Callable[[StyleProgress], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> Image.Image:
    """Repaint `content` in the style of `styles`; returns an RGB image whose long edge is `size`.

    content, styles: paths or PIL images (one style or a list; several are blended).
    size: long edge of the output in pixels; any aspect ratio.
    content_weight, style_weight, tv_weight: weights of the content, style and total-variation
        losses (each loss is normalised, so the weights mean the same for every backbone).
    content_layers, style_layers: layer names (see `ganforge.backbones.layer_names`), a list or a
        comma-separated string; None picks the backbone's recipe.
    init: "content" starts from the photo (recoloured to the painting's palette unless colours are
        preserved), "random" from noise.
    optimizer: "adam" or "lbfgs"; steps: optimisation steps per scale; lr: Adam's step size (pixels
        in 0..1) or L-BFGS's learning rate.
    backbone: "lite0" (EfficientNet-Lite0, ImageNet weights shipped with its package) or "vgg19"
        (torchvision's ImageNet weights, downloaded once); weights: a local weights file instead.
    scales: optimise at `scales` sizes, each twice the previous, ending at `size` (coarse to fine).
    style_weights: one weight per style ("0.7,0.3" or a list), normalised to sum to 1.
    style_scale: size of the style image relative to the output (larger: larger brush strokes).
    preserve_color: "none", "luminance" (transfer only the brightness) or "histogram" (match the
        painting's colours to the photo's first).
    save_every, save_path: every N steps write the current image next to `save_path`
        (`out.png` -> `out-0100.png`).
    max_size: inputs with a longer edge are reduced first (with a message through `log`).
    device: "auto" (cuda, then mps, then cpu), "cpu", "cuda" or "mps".
    callback: called with a StyleProgress after every step.
    """
    # ---- check everything before any heavy work
    _choice("init", init, INITS)
    _choice("optimizer", optimizer, OPTIMIZERS)
    _choice("backbone", backbone, BACKBONES)
    _choice("preserve-color", preserve_color, PRESERVE_COLORS)
    _choice("device", device, DEVICES)
    for name, value, low in (("size", size, 16), ("steps", steps, 1), ("scales", scales, 1),
                             ("max-size", max_size, 16), ("save-every", save_every, 0)):
        if value < low:
            raise GanforgeError(f"--{name} must be at least {low}, got {value}.")
    for name, value in (("content-weight", content_weight), ("style-weight", style_weight),
                        ("tv-weight", tv_weight)):
        if not (value >= 0 and math.isfinite(value)):
            raise GanforgeError(f"--{name} must be a non-negative number, got {value}.")
    if not (lr > 0 and math.isfinite(lr)):
        raise GanforgeError(f"--lr must be positive, got {lr}.")
    if not (style_scale > 0 and math.isfinite(style_scale)):
        raise GanforgeError(f"--style-scale must be positive, got {style_scale}.")
    if save_every and save_path is None:
        raise GanforgeError("save_every needs save_path, the file the intermediate images are named after.")
    log = log or (lambda msg: None)
    recipe = RECIPES[backbone]
    available = layer_names(backbone)
    c_layers = _layers("content-layers", content_layers, recipe.content_layers, available, backbone)
    s_layers = _layers("style-layers", style_layers, recipe.style_layers, available, backbone)
    style_list = [styles] if isinstance(styles, (str, os.PathLike, Image.Image)) else list(styles)
    if not style_list:
        raise GanforgeError("give at least one style image.")
    mix = _style_mix(style_weights, len(style_list))
    if size > max_size:
        log(f"--size {size} is larger than --max-size {max_size}; using {max_size}.")
        size = max_size

    content_img = _open(content, max_size, log)
    style_imgs = [_open(s, max_size, log) for s in style_list]
    dev = pick_device(device)
    net = build_backbone(backbone, pretrained=True, weights=weights).to(dev)

    # ---- colour handling (Gatys et al., "Preserving Color in Neural Artistic Style Transfer")
    content_t = _to_tensor(content_img)
    style_ts = [_to_tensor(s) for s in style_imgs]
    colours = None  # with "luminance", the photo whose colours the result is given back
    if preserve_color == "histogram":
        style_ts = [match_color(s, content_t) for s in style_ts]
    elif preserve_color == "luminance":
        content_y = _luminance(content_t)
        style_ts = [_match_luminance(_luminance(s), content_y).expand(-1, 3, -1, -1) for s in style_ts]
        colours, content_t = content_t, content_y.expand(-1, 3, -1, -1)

    # ---- coarse to fine
    full_w, full_h = _fit(content_img.size, size)
    sizes = [_fit(content_img.size, max(16, round(size / 2 ** (scales - 1 - i)))) for i in range(scales)]
    total = steps * scales
    gen = torch.Generator().manual_seed(seed)
    image: Tensor | None = None
    step = 0
    weights_ = dict(content=content_weight, style=style_weight, tv=tv_weight)

    for scale_idx, (w, h) in enumerate(sizes):
        c = _resize(content_t, (w, h)).to(dev)
        targets = _Targets(net, recipe, c, [_resize(s, _fit(s.shape[-1:-3:-1], round(max(w, h) * style_scale)))
                                            for s in style_ts], mix, c_layers, s_layers, dev)
        if image is None:
            if init == "random":
                image = torch.rand(1, 3, h, w, generator=gen).to(dev)
            elif preserve_color == "none":
                image = match_color(c, targets.style_pixels)
            else:
                image = c.clone()
        else:
            image = F.interpolate(image, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
        image = image.detach().requires_grad_(True)

        if optimizer == "adam":
            # A constant rate: decaying it (tried: cosine to lr/10) froze colour speckle in place
            # that further full-size steps would have smoothed away.
            opt = torch.optim.Adam([image], lr=lr)
        else:
            opt = torch.optim.LBFGS([image], lr=lr, max_iter=1, history_size=50)

        for _ in range(steps):
            record: dict[str, float] = {}

            def evaluate() -> Tensor:
                opt.zero_grad(set_to_none=True)
                weighted = {k: weights_[k] * v for k, v in targets.losses(image).items()}
                loss = sum(weighted.values())
                loss.backward()
                record.update({k: v.item() for k, v in weighted.items()}, total=loss.item())
                return loss

            if optimizer == "lbfgs":
                opt.step(evaluate)  # L-BFGS calls evaluate itself, possibly more than once
            else:
                evaluate()
                opt.step()
            with torch.no_grad():
                image.clamp_(0, 1)
            step += 1
            current = image.detach().clone()  # the optimiser keeps changing `image` in place
            as_pil = (lambda t=current, wh=(w, h): _finish(t, wh, colours))
            if save_every and step % save_every == 0:
                save_image_atomic(as_pil(), _intermediate_path(Path(save_path), step))
            if callback is not None:
                callback(StyleProgress(step, total, scale_idx + 1, scales, (w, h), record, as_pil))

    assert image is not None
    return _finish(image, (full_w, full_h), colours)


# --------------------------------------------------------------------------------------------------
# Losses


def gram_matrix(features: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, C): channel correlations averaged over positions, F F^T / (H W)."""
    b, c, h, w = features.shape
    return _Gram.apply(features.reshape(b, c, h * w))


class _Gram(torch.autograd.Function):
    """F F^T / N with a backward of one (C, C) x (C, N) product.

    Autograd's generic backward for F @ F.transpose(1, 2) does two large products and adds an
    (N, C) result to a (C, N) one through a transposed, cache-hostile view; for the wide early
    layers that was a fifth of each style-transfer step.
    """

    @staticmethod
    def forward(ctx, f: Tensor) -> Tensor:  # f: (B, C, N)
        ctx.save_for_backward(f)
        return f @ f.transpose(1, 2) / f.shape[-1]

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # grad: (B, C, C)
        (f,) = ctx.saved_tensors
        return ((grad + grad.transpose(1, 2)) / f.shape[-1]) @ f  # divide the small factor


def swag(features: Tensor, temperature: float) -> Tensor:
    """Softmax over spatial positions per channel, rescaled so that a flat map is all ones.

    Peaky activations become a smooth spatial distribution per channel (higher entropy), so the
    Gram matrix no longer hinges on a handful of pixels.
    """
    b, c, h, w = features.shape
    p = torch.softmax(features.reshape(b, c, h * w) / temperature, dim=-1)
    return (p * (h * w)).reshape(b, c, h, w)


def total_variation(image: Tensor) -> Tensor:
    """Mean squared difference between horizontally and vertically neighbouring pixels."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.square().mean() + dy.square().mean()


class _Targets:
    """The content features and the blended style Gram matrices for one scale, and the losses."""

    def __init__(self, net, recipe: BackboneRecipe, content: Tensor, styles: list[Tensor],
                 mix: list[float], c_layers: list[str], s_layers: list[str], device: torch.device):
        self.net, self.recipe = net, recipe
        self.c_layers, self.s_layers = c_layers, s_layers
        self.layers = list(dict.fromkeys(c_layers + s_layers))
        with torch.no_grad():
            feats = self.net.features(content, self.layers)
            self.content = {k: feats[k] for k in c_layers}
            self.grams: dict[str, Tensor] = {}
            for s, m in zip(styles, mix):
                sf = self.net.features(s.to(device), s_layers)
                for k in s_layers:
                    g = m * gram_matrix(self._treat(sf[k]))
                    self.grams[k] = self.grams[k] + g if k in self.grams else g
        # All style pixels together, for recolouring the initial image to the paintings' palette.
        self.style_pixels = torch.cat([s.reshape(3, -1) for s in styles], dim=1).to(device)

    def _treat(self, f: Tensor) -> Tensor:
        t = self.recipe.swag_temperature
        return f if t is None else swag(f, t)

    def losses(self, image: Tensor) -> dict[str, Tensor]:
        feats = self.net.features(image, self.layers)
        # Each term is a relative error, so layers of any magnitude count alike.
        content = sum(F.mse_loss(feats[k], v) / (v.square().mean() + 1e-8) for k, v in self.content.items())
        style = sum(F.mse_loss(gram_matrix(self._treat(feats[k])), g) / (g.square().mean() + 1e-8)
                    for k, g in self.grams.items())
        return dict(content=content / len(self.content), style=style / len(self.grams), tv=total_variation(image))


# --------------------------------------------------------------------------------------------------
# Colour


def match_color(source: Tensor, target: Tensor, eps: float = 1e-5) -> Tensor:
    """Recolour `source` (1, 3, H, W) so its pixel mean and covariance match `target`'s pixels.

    `target` is an image (1, 3, h, w) or a (3, N) set of pixels. Uses the symmetric matrix square
    roots (the "linear colour transfer" of Gatys et al. 2016).
    """
    src = source.reshape(3, -1)
    tgt = target.reshape(3, -1) if target.ndim != 2 else target
    mu_s, mu_t = src.mean(1, keepdim=True), tgt.mean(1, keepdim=True)
    cov_s = torch.cov(src) + eps * torch.eye(3, device=src.device)
    cov_t = torch.cov(tgt) + eps * torch.eye(3, device=src.device)
    transform = _sqrtm(cov_t) @ torch.linalg.inv(_sqrtm(cov_s))
    out = transform @ (src - mu_s) + mu_t
    return out.reshape(source.shape).clamp(0, 1)


def _sqrtm(m: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh(m)
    return vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T


_Y = (0.299, 0.587, 0.114)


def _luminance(x: Tensor) -> Tensor:
    return (x * torch.tensor(_Y, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _match_luminance(y: Tensor, ref: Tensor) -> Tensor:
    return ((y - y.mean()) / (y.std() + 1e-5) * ref.std() + ref.mean()).clamp(0, 1)


def _with_luminance(colour: Tensor, y: Tensor) -> Tensor:
    """`colour`'s chroma (YIQ's I and Q) with brightness `y`."""
    m = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=colour.device)
    yiq = torch.einsum("ij,bjhw->bihw", m, colour)
    yiq = torch.cat([y, yiq[:, 1:]], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), yiq).clamp(0, 1)


# --------------------------------------------------------------------------------------------------
# Helpers


def _finish(image: Tensor, size: tuple[int, int], colours: Tensor | None = None) -> Image.Image:
    """The optimised tensor as a PIL image of `size`; with `colours`, only its brightness is kept."""
    out = image.detach().float().cpu()
    if out.shape[-2:] != (size[1], size[0]):
        out = F.interpolate(out, size=(size[1], size[0]), mode="bicubic", align_corners=False).clamp(0, 1)
    if colours is not None:
        out = _with_luminance(_resize(colours, size), _luminance(out))
    return _to_pil(out)


def _open(src, max_size: int, log: Callable[[str], None]) -> Image.Image:
    if isinstance(src, Image.Image):
        img = as_upright_rgb(src)
        name = "an image"
    else:
        img = load_image(src, draft_size=max_size)
        name = str(src)
    if max(img.size) > max_size:
        w, h = img.size
        img = img.resize(_fit(img.size, max_size), Image.LANCZOS)
        log(f"{name} is {w}x{h}; reduced to {img.size[0]}x{img.size[1]} (--max-size {max_size}).")
    return img


def _fit(wh: Sequence[int], long_edge: int) -> tuple[int, int]:
    w, h = int(wh[0]), int(wh[1])
    s = long_edge / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _resize(x: Tensor, wh: tuple[int, int]) -> Tensor:
    w, h = wh
    if x.shape[-2:] == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def _to_tensor(img: Image.Image) -> Tensor:
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()  # (1, 3, H, W)


def _to_pil(x: Tensor) -> Image.Image:
    arr = (x[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _choice(option: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise GanforgeError(f"--{option} must be one of {', '.join(choices)}, got {value!r}.")


def _layers(option: str, value, default: Sequence[str], available: list[str], backbone: str) -> list[str]:
    if value is None:
        return list(default)
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    names = [n for n in names if n]
    if not names:
        raise GanforgeError(f"--{option} is empty; name at least one layer (see --list-layers).")
    for n in names:
        if n not in available:
            raise GanforgeError(f"--{option}: {backbone} has no layer {n!r}; see `ganforge stylize --list-layers "
                                f"--backbone {backbone}`.")
    return names


def _style_mix(value, n: int) -> list[float]:
    if value is None:
        return [1.0 / n] * n
    try:
        ws = [float(v) for v in value.split(",")] if isinstance(value, str) else [float(v) for v in value]
    except ValueError:
        raise GanforgeError(f"--style-weights must be numbers separated by commas, got {value!r}.") from None
    if len(ws) != n:
        raise GanforgeError(f"--style-weights has {len(ws)} weights for {n} style images; give one per style.")
    if any(not (w >= 0 and math.isfinite(w)) for w in ws) or sum(ws) <= 0:
        raise GanforgeError("--style-weights must be non-negative with a positive sum.")
    return [w / sum(ws) for w in ws]


def _intermediate_path(path: Path, step: int) -> Path:
    return path.with_name(f"{path.stem}-{step:04d}{path.suffix or '.png'}")
