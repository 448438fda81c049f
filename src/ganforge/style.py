"""Neural style transfer (Gatys et al.): repaint a photograph in the style of one or more paintings.

    import ganforge
    ganforge.stylize("photo.jpg", ["starry_night.jpg"]).save("out.png")

The image's pixels are optimised so that its CNN features match the photo's (content loss), the
Gram matrices of its features match the paintings' (style loss), and neighbouring pixels stay
close (total-variation loss). `stylize`'s signature is the single source of defaults, help texts
and choices: the CLI (`ganforge.cli.stylize`) derives its options from it.

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

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ganforge.backbones import BACKBONES, build_backbone, layer_names
from ganforge.devices import DEVICE, pick_device
from ganforge.errors import GanforgeError
from ganforge.images import LUMA, as_upright_rgb, load_image, luma, save_image_atomic
from ganforge.options import Opt, check
from ganforge.tiles import Tiler

INITS = ("content", "random")
MAX_STYLE_SCALE = 4.0  # beyond it, the picture shows less than a quarter of the painting
MIN_SIDE = {"lite0": 1, "vgg19": 16}  # VGG's relu5_1 comes after four halving max-pools
OPTIMIZERS = ("adam", "lbfgs")
PRESERVE_COLORS = ("none", "luminance", "histogram")


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
    size: Annotated[int, Opt("Long edge of the output in pixels (any aspect ratio).", min=16)] = 512,
    content_weight: Annotated[float, Opt("Weight of the content loss (keeps the photo's shapes).", min=0)] = 2.0,
    style_weight: Annotated[float, Opt("Weight of the style loss (Gram matrices of the painting's features).", min=0)] = 1e3,
    tv_weight: Annotated[float, Opt("Weight of the total-variation loss (smoothness between neighbouring pixels).", min=0)] = 20.0,
    content_layers: Annotated[str | Sequence[str] | None, Opt("Comma-separated layers for the content loss; see --list-layers.",
                                                      default_text="backbone's recipe")] = None,
    style_layers: Annotated[str | Sequence[str] | None, Opt("Comma-separated layers for the style loss; see --list-layers.",
                                                    default_text="backbone's recipe")] = None,
    init: Annotated[str, Opt("Start from the photo (recoloured to the painting's palette) or from noise.", choices=INITS)] = "content",
    optimizer: Annotated[str, Opt("Optimiser over the image's pixels.", choices=OPTIMIZERS)] = "adam",
    steps: Annotated[int, Opt("Optimisation steps at each scale.", min=1)] = 150,
    lr: Annotated[float, Opt("Step size (pixel values are in 0..1).", above=0)] = 0.02,
    seed: Annotated[int, Opt("Random seed; the same seed gives the same image.")] = 0,
    backbone: Annotated[str, Opt("Feature network: lite0 (EfficientNet-Lite0, offline) or vgg19 (downloaded once).", choices=BACKBONES)] = "lite0",
    weights: Annotated[str | os.PathLike | None, Opt("Local weights file for the backbone instead of the default ImageNet weights.")] = None,
    scales: Annotated[int, Opt("Optimise at N sizes, coarse to fine, each twice the previous (larger strokes).", min=1)] = 3,
    style_octaves: Annotated[int, Opt("Match the painting's style statistics at N resolutions, each half the previous "
                                      "(larger strokes).", min=1)] = 1,
    base_size: Annotated[int, Opt("Larger pictures are first stylised at this size or less (with --scales and --steps), then "
                                  "doubled up to --size with half the steps at each doubling.", min=16)] = 512,
    style_weights: Annotated[str | Sequence[float] | None, Opt("One weight per style image, e.g. 0.7,0.3.", default_text="equal")] = None,
    style_scale: Annotated[float, Opt("Size of the style image relative to the output (larger: bigger strokes).", above=0)] = 1.0,
    preserve_color: Annotated[str, Opt("Keep the photo's colours: transfer brightness only, or match the painting's colours first.",
                               choices=PRESERVE_COLORS)] = "none",
    save_every: Annotated[int, Opt("Write the current image every N steps as OUT-0100.png and so on (0: never).", min=0)] = 0,
    save_path: str | os.PathLike | None = None,
    max_size: Annotated[int, Opt("Inputs with a longer edge are reduced to this first.", min=16)] = 4096,
    device: Annotated[str, DEVICE] = "auto",
    callback: Callable[[StyleProgress], None] | None = None,
    log: Callable[[str], None] | None = None,
    start: Image.Image | Tensor | None = None,
    extra_losses: dict[str, Callable[[Tensor], Tensor]] | None = None,
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
    scales, base_size: optimise at `scales` sizes, each twice the previous, ending at `size` (coarse
        to fine) with `steps` at each. A larger `size` than `base_size` first ends them at `size`
        halved until it is `base_size` or less, then doubles the picture up to `size` with half the
        steps of the scale before at each doubling (at least MIN_FINE_STEPS): the strokes of a
        `base_size` picture, at a fraction of the time (see `scale_schedule`). Pictures larger than
        the memory allows are optimised tile by tile, with the same gradient (`_TiledTerms`).
        Three scales (128, 256, 512 px) are the default because the strokes, laid out at 128 px,
        then come out at the painting's scale (benchmarks/stroke_scale.py); two left a fine
        texture, four lose the scene.
    style_octaves: also match the painting's Gram matrices with picture and painting both halved,
        up to `style_octaves` - 1 times (larger strokes, some colour speckle; off by default).
    style_weights: one weight per style ("0.7,0.3" or a list), normalised to sum to 1.
    style_scale: size of the style image relative to the output (larger: larger brush strokes).
    preserve_color: "none", "luminance" (transfer only the brightness) or "histogram" (match the
        painting's colours to the photo's first).
    save_every, save_path: every N steps write the current image next to `save_path`
        (`out.png` -> `out-0100.png`).
    max_size: inputs with a longer edge are reduced first (with a message through `log`).
    device: "auto" (cuda, then mps, then cpu), "cpu", "cuda" or "mps".
    callback: called with a StyleProgress after every step.
    start: a picture (PIL, or a (1, 3, H, W) tensor in 0..1) to optimise from instead of `init`'s;
        `ganforge.stylevideo` passes the previous frame's result, warped to this frame.
    extra_losses: name -> function of the image being optimised ((1, 3, h, w) in 0..1; with
        "luminance", its brightness in all three channels) returning a weighted scalar loss that
        is added to the others and reported under that name.
    """
    # ---- check everything before any heavy work
    check(stylize, locals())  # first, so that locals() holds the arguments alone
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
    if style_scale > MAX_STYLE_SCALE:
        log(f"--style-scale {style_scale:g} is more than {MAX_STYLE_SCALE:g}, where the picture shows a quarter of the painting's width; using {MAX_STYLE_SCALE:g}.")
        style_scale = MAX_STYLE_SCALE
    dev = pick_device(device)
    # A start picture has its strokes already: it is refined at `size` and `scales` alone.
    schedule = scale_schedule(content_img.size, size, scales, steps, size if start is not None else base_size)
    sizes = [wh for wh, _ in schedule]
    smallest = min([min(wh) for wh in sizes] + [min(style_size(s.size, max(sizes[0]), style_scale, max_size)) for s in style_imgs])
    if smallest < MIN_SIDE[backbone]:
        raise GanforgeError(f"--size {size} with --scales {scales} is too small for {backbone}: its smallest picture would be {smallest} px "
                            f"on its short side, and {backbone} needs {MIN_SIDE[backbone]}; raise --size or lower --scales.")
    tile = check_memory(backbone, content_img.size, [s.size for s in style_imgs], size, style_scale, max_size, dev)
    if tile is not None and sizes[-1][0] * sizes[-1][1] > tile:
        log(f"{sizes[-1][0]}x{sizes[-1][1]} px: the scales larger than {tile / 2**20:g} Mpx are optimised tile by tile "
            "(the same result, with less memory and more time).")
    net = _network(backbone, weights, dev)

    # ---- colour handling (Gatys et al., "Preserving Color in Neural Artistic Style Transfer")
    content_t = to_tensor(content_img)
    style_ts = [to_tensor(s) for s in style_imgs]
    colours = None  # with "luminance", the photo whose colours the result is given back
    if preserve_color == "histogram":
        style_ts = [match_color(s, content_t) for s in style_ts]
    elif preserve_color == "luminance":
        content_y = luma(content_t)
        style_ts = [_match_luminance(luma(s), content_y).expand(-1, 3, -1, -1) for s in style_ts]
        colours, content_t = content_t, content_y.expand(-1, 3, -1, -1)

    # ---- coarse to fine
    full_w, full_h = fit_long_edge(content_img.size, size)
    total = sum(n for _, n in schedule)
    gen = torch.Generator().manual_seed(seed)
    image: Tensor | None = None
    step = 0
    weights_ = dict(content=content_weight, style=style_weight, tv=tv_weight)

    for scale_idx, ((w, h), scale_steps) in enumerate(schedule):
        c = resize_image(content_t, (w, h)).to(dev)
        targets = StyleTargets(net, recipe, c, [resize_image(s, style_size(s.shape[-1:-3:-1], max(w, h), style_scale, max_size))
                                                for s in style_ts], mix, c_layers, s_layers, dev, octaves=style_octaves, tile=tile)
        if image is None:
            if start is not None:
                # A copy: the optimiser changes `image` in place, and the caller's tensor must stay as it was.
                image = resize_image(to_tensor(start) if isinstance(start, Image.Image) else start.detach().cpu().float().clone(), (w, h)).to(dev)
                if colours is not None:  # "luminance" optimises brightness alone
                    image = luma(image).repeat(1, 3, 1, 1)
            elif init == "random":
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

        for _ in range(scale_steps):
            record: dict[str, float] = {}

            def evaluate() -> Tensor:
                opt.zero_grad(set_to_none=True)
                weighted = {k: weights_[k] * v for k, v in targets.losses(image).items()}
                weighted |= {k: f(image) for k, f in (extra_losses or {}).items()}
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
                callback(StyleProgress(step, total, scale_idx + 1, len(schedule), (w, h), record, as_pil))

    assert image is not None
    return _finish(image, (full_w, full_h), colours)


MIN_FINE_STEPS = 20  # the fewest steps at a doubling above --base-size (unless --steps is fewer)


def scale_schedule(content_wh: Sequence[int], size: int, scales: int, steps: int, base_size: int) -> list[tuple[tuple[int, int], int]]:
    """[((width, height), steps)] of each scale, coarse to fine.

    `scales` sizes, each twice the previous, with `steps` each, end at the long edge `size` or,
    when `size` is well above `base_size`, at `size` halved as often as it takes to come nearest to
    `base_size` (within a factor of sqrt(2), so that 640 px and 1,280 px both start from a
    640-px run, not from a 320-px one whose coarsest scale would lose the scene); the doublings
    from there to `size` get half the steps of the scale before. A scale's
    cost grows with its pixels, so each doubling then costs only about twice the one before, and
    the strokes, drawn at the small scales, are those of a `base_size` picture. With 3 scales of
    150 steps and a base of 512 px, 4096 px is optimised at 128, 256, 512 (150 steps each), 1024
    (75), 2048 (38) and 4096 px (20).
    """
    doublings = 0
    while size / 2 ** (doublings + 1) >= base_size / math.sqrt(2):
        doublings += 1
    n = scales + doublings
    out = []
    for i in range(n):
        above = i - (scales - 1)  # > 0: this scale is the `above`-th doubling past the base
        n_steps = steps if above <= 0 else max(math.ceil(steps / 2**above), min(steps, MIN_FINE_STEPS))
        out.append((fit_long_edge(content_wh, max(16, round(size / 2 ** (n - 1 - i)))), n_steps))
    return out


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


class StyleTargets:
    """The content features and the blended style Gram matrices for one scale, and the losses."""

    def __init__(self, net, recipe: BackboneRecipe, content: Tensor, styles: list[Tensor],
                 mix: list[float], c_layers: list[str], s_layers: list[str], device: torch.device, octaves: int = 1,
                 tile: int | None = None):
        self.net, self.recipe = net, recipe
        self.c_layers, self.s_layers = c_layers, s_layers
        self.layers = list(dict.fromkeys(c_layers + s_layers))
        self.octaves = octaves
        # tile: the most pixels of a picture optimised that the network sees at once (None: any);
        # larger pictures go tile by tile (see `_TiledTerms`). Not with swag: its softmax spans the
        # whole picture.
        self.tile = tile if recipe.swag_temperature is None else None
        self.tiler = Tiler(net, self.layers) if self.tile else None
        with torch.no_grad():
            _, self.content = self._statistics(content, [], c_layers)
            # grams[(octave, layer)]: the painting halved `octave` times, so that a layer's fixed
            # receptive field spans twice as much of the painting at each octave.
            self.grams: dict[tuple[int, str], Tensor] = {}
            for s, m in zip(styles, mix):
                for o in range(octaves):
                    sg, _ = self._statistics(halve(s.to(device), o), s_layers, [])
                    for k in s_layers:
                        g = m * sg[k]
                        self.grams[o, k] = self.grams[o, k] + g if (o, k) in self.grams else g
        # All style pixels together, for recolouring the initial image to the paintings' palette.
        self.style_pixels = torch.cat([s.reshape(3, -1) for s in styles], dim=1).to(device)

    def _treat(self, f: Tensor) -> Tensor:
        t = self.recipe.swag_temperature
        return f if t is None else swag(f, t)

    def _statistics(self, x: Tensor, layers: list[str], keep: list[str]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Without gradients: picture x's Gram matrices at `layers` and whole feature maps at `keep`."""
        if self.tiler is None or x.shape[-2] * x.shape[-1] <= NO_GRAD_TILES * self.tile:
            f = self.net.features(x, list(dict.fromkeys(layers + keep)))
            return {k: gram_matrix(self._treat(f[k])) for k in layers}, {k: f[k] for k in keep}
        grams, kept, _ = tiled_statistics(self.net, self.tiler, x, NO_GRAD_TILES * self.tile, layers, keep)
        return grams, kept

    def losses(self, image: Tensor) -> dict[str, Tensor]:
        if self.tiler is not None and image.shape[-2] * image.shape[-1] > self.tile:
            content, style = _TiledTerms.apply(self, *[halve(image, o) for o in range(self.octaves)])
            return dict(content=content, style=style, tv=total_variation(image))
        feats = [self.net.features(image, self.layers)]
        feats += [self.net.features(halve(image, o), self.s_layers) for o in range(1, self.octaves)]
        stats = {(o, k): gram_matrix(self._treat(feats[o][k])) for o, k in self.grams}
        return self.terms({k: feats[0][k] for k in self.content}, stats) | dict(tv=total_variation(image))

    def terms(self, feats: dict[str, Tensor], stats: dict[tuple[int, str], Tensor]) -> dict[str, Tensor]:
        """The content and style losses from the picture's features at the content layers and its Gram
        matrices (keyed like `grams`); the tiled path computes those two tile by tile."""
        # Each term is a relative error, so layers of any magnitude count alike.
        content = sum(F.mse_loss(feats[k], v) / (v.square().mean() + 1e-8) for k, v in self.content.items())
        style = sum(F.mse_loss(stats[key], g) / (g.square().mean() + 1e-8) for key, g in self.grams.items())
        return dict(content=content / len(self.content), style=style / len(self.grams))


def halve(x: Tensor, times: int) -> Tensor:
    """(B, C, H, W) reduced `times` times to half its size, antialiased (differentiable)."""
    if times == 0:
        return x
    h, w = x.shape[-2:]
    size = (max(1, round(h / 2**times)), max(1, round(w / 2**times)))
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


# --------------------------------------------------------------------------------------------------
# Large pictures, tile by tile
#
# A 4096x3072 picture would need ~20 GB of activations for one step (MEMORY_MODEL). The losses
# are sums over positions, or functions of such sums (the Gram matrices), so the exact gradient
# can be had a tile at a time: first every Gram matrix, accumulated over tiles without gradients;
# then, per tile, the features again with gradients and a backward pass of a surrogate whose
# gradient is the true one. ganforge.tiles makes the tiles' features equal the whole picture's.


@torch.no_grad()
def tiled_statistics(net, tiler: Tiler, x: Tensor, budget: int, layers: list[str], keep: list[str]
                     ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, int]]:
    """Picture x's Gram matrices at `layers`, whole feature maps at `keep`, and the number of
    positions at each of `layers`, computed on tiles of at most `budget` pixels."""
    sums: dict[str, Tensor] = {}
    positions = dict.fromkeys(layers, 0)
    rows: dict[str, list[Tensor]] = {k: [] for k in keep}
    for row in tiler.tiles(*x.shape[-2:], budget):
        pieces: dict[str, list[Tensor]] = {k: [] for k in keep}
        for tile in row:
            feats = net.features(x[tile.crop], list(dict.fromkeys(layers + keep)))
            for k in layers:
                own = tile.own(feats[k], tiler.stride[k])
                n = own.shape[-2] * own.shape[-1]
                if n == 0:  # a sliver at the far edge that a deep layer's positions do not reach
                    continue
                sums[k] = sums[k] + n * gram_matrix(own) if k in sums else n * gram_matrix(own)
                positions[k] += n
            for k in keep:
                pieces[k].append(tile.own(feats[k], tiler.stride[k]))
        for k in keep:
            rows[k].append(torch.cat(pieces[k], dim=-1))
    grams = {k: sums[k] / positions[k] for k in layers}
    return grams, {k: torch.cat(rows[k], dim=-2) for k in keep}, positions


class _TiledTerms(torch.autograd.Function):
    """StyleTargets.terms (content, style) of a picture given at each octave, tile by tile.

    Forward: the whole picture's content features and Gram matrices G, tile by tile without
    gradients, the two losses from them, and the losses' gradients with respect to those small
    tensors. Backward, per tile: the features again, with gradients, and the gradient of
    sum <dL/dG, G_tile> + sum <dL/dF, F_tile>, where G_tile is the tile's share of G and F_tile its
    own content features. That is the true gradient: L depends on the picture only through G (a
    sum of the tiles' shares) and F (the tiles' parts put together).
    """

    @staticmethod
    def forward(ctx, targets: StyleTargets, *octaves: Tensor) -> tuple[Tensor, Tensor]:
        feats: dict[str, Tensor] = {}
        stats: dict[tuple[int, str], Tensor] = {}
        ctx.positions = {}
        for o, x in enumerate(octaves):
            layers = [k for oo, k in targets.grams if oo == o]
            grams, kept, positions = tiled_statistics(targets.net, targets.tiler, x, targets.tile, layers,
                                                      targets.c_layers if o == 0 else [])
            stats |= {(o, k): g for k, g in grams.items()}
            ctx.positions |= {(o, k): n for k, n in positions.items()}
            feats |= kept
        leaves = [t.requires_grad_(True) for t in (*feats.values(), *stats.values())]
        with torch.enable_grad():
            terms = targets.terms(feats, stats)
            grads = torch.autograd.grad(terms["content"] + terms["style"], leaves)
        ctx.d_feats = dict(zip(feats, grads[:len(feats)]))
        ctx.d_stats = dict(zip(stats, grads[len(feats):]))
        ctx.targets = targets
        ctx.save_for_backward(*octaves)
        return terms["content"].detach(), terms["style"].detach()

    @staticmethod
    def backward(ctx, d_content: Tensor, d_style: Tensor):
        t = ctx.targets
        grads = []
        for o, x in enumerate(ctx.saved_tensors):
            layers = list(t.layers) if o == 0 else [k for oo, k in t.grams if oo == o]
            grad = torch.zeros_like(x)
            for tile in [tile for row in t.tiler.tiles(*x.shape[-2:], t.tile) for tile in row]:
                with torch.enable_grad():
                    part = x[tile.crop].detach().requires_grad_(True)
                    feats = t.net.features(part, layers)
                    surrogate = part.new_zeros(())
                    for k in layers:
                        stride = t.tiler.stride[k]
                        own = tile.own(feats[k], stride)
                        if (o, k) in ctx.d_stats and own.numel():
                            share = gram_matrix(own) * (own.shape[-2] * own.shape[-1] / ctx.positions[o, k])
                            surrogate = surrogate + d_style * (ctx.d_stats[o, k] * share).sum()
                        if o == 0 and k in ctx.d_feats:
                            r, c = tile.origin(stride)
                            d_f = ctx.d_feats[k][..., r:r + own.shape[-2], c:c + own.shape[-1]]
                            surrogate = surrogate + d_content * (d_f * own).sum()
                    grad[tile.crop] += torch.autograd.grad(surrogate, part)[0]
            grads.append(grad)
        return (None, *grads)


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


def _match_luminance(y: Tensor, ref: Tensor) -> Tensor:
    return ((y - y.mean()) / (y.std() + 1e-5) * ref.std() + ref.mean()).clamp(0, 1)


def _with_luminance(colour: Tensor, y: Tensor) -> Tensor:
    """`colour`'s chroma (YIQ's I and Q) with brightness `y`."""
    m = torch.tensor([LUMA, [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=colour.device)
    yiq = torch.einsum("ij,bjhw->bihw", m, colour)
    yiq = torch.cat([y, yiq[:, 1:]], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), yiq).clamp(0, 1)


# --------------------------------------------------------------------------------------------------
# Memory

# Peak memory of stylize, in bytes: the interpreter, torch and the network (VGG-19's peak is while
# its weights load), plus so many bytes per pixel of the largest picture optimised (activations
# kept for the backward pass, the gradient, Adam's moments) or of the largest style image whose
# features are taken (no gradient), whichever is more, plus the inputs as floats (12 bytes a
# pixel, twice). Measured on a CPU at sizes up to 1536 px by benchmarks/stylize_memory.py (lite0:
# 0.89 GB + 1,360-1,520 and 420-480 bytes per pixel, and later up to 800 bytes per pixel of a
# painting read at 1536x1024; the same run's peak varied by up to 25%
# between quiet and busy moments of one machine), with that much to spare. On a GPU the network
# and the pixels count, not the interpreter (these per-pixel figures are assumed there; they were
# measured on a CPU).
#
# A picture optimised tile by tile needs one tile's activations at a time, plus the last figure
# per pixel of the whole picture: itself, its gradient, Adam's moments, the photo and its content
# features at that scale, and the previous scale's leftovers (measured 105-210 bytes at 1536 and
# 2048 px in tiles of 0.5 and 1 Mpx; a default 4096x3072 run in 4-Mpx tiles peaked at 8.1 GB
# against an estimate of 12.4 GB).
MEMORY_MODEL = {"lite0": (1000e6, 1900.0, 900.0, 250.0), "vgg19": (2000e6, 1700.0, 850.0, 250.0)}
NETWORK_BYTES = {"lite0": 50e6, "vgg19": 200e6}  # on a GPU
# A pass without gradients needs at most half the bytes per pixel of an optimised one (above), so
# its tiles may hold twice as many pixels.
NO_GRAD_TILES = 2
# The tile sizes tried, largest first, when a whole picture does not fit: halving a tile adds
# halo work (at 4096x3072 px, lite0 computes 1.2x the picture's pixels in 4-Mpx tiles, 1.5x in
# 2-Mpx ones, 3.5x in 0.5-Mpx ones), so the largest that fits is taken.
TILES = (2**22, 2**21, 2**20, 2**19)


def style_size(style_wh: Sequence[int], long_edge: int, style_scale: float, max_size: int) -> tuple[int, int]:
    """The size a style image is used at beside a picture whose long edge is `long_edge`: at most
    MAX_STYLE_SCALE times as large, and never beyond `max_size`."""
    return fit_long_edge(style_wh, max(16, min(round(long_edge * min(style_scale, MAX_STYLE_SCALE)), max_size)))


def estimate_memory(backbone: str, content_wh: Sequence[int], style_whs: list[Sequence[int]], size: int, style_scale: float,
                    max_size: int, gpu: bool = False, tile: int | None = None) -> int:
    """Peak bytes of `stylize` with these settings, in the process (or on the GPU), when the network
    sees at most `tile` pixels at once (None: whole pictures); see MEMORY_MODEL."""
    base, per_optimised, per_style, per_kept = MEMORY_MODEL[backbone]
    w, h = fit_long_edge(content_wh, size)  # the finest scale is the largest
    picture = w * h
    style_pixels = max(sw * sh for sw, sh in (style_size(wh, max(w, h), style_scale, max_size) for wh in style_whs))
    kept = 0.0
    if tile is not None and picture > tile:
        picture, kept = tile, per_kept * picture
    if tile is not None and style_pixels > NO_GRAD_TILES * tile:
        style_pixels, kept = NO_GRAD_TILES * tile, kept + 24 * style_pixels  # the painting itself, and halved
    work = max(per_optimised * picture, per_style * style_pixels) + kept
    if gpu:
        return int(NETWORK_BYTES[backbone] + work)
    inputs = 24 * (content_wh[0] * content_wh[1] + sum(sw * sh for sw, sh in style_whs))
    return int(base + inputs + work)


def _linux_number(path: str, key: str | None = None) -> int | None:
    """A number from a /proc or /sys file (a `key: value kB` line of it), or None."""
    try:
        with open(path) as f:
            if key is None:
                text = f.read().strip()
                return None if text == "max" else int(text)
            for line in f:
                if line.startswith(key + ":"):
                    value = line.split(":", 1)[1].split()
                    return int(value[0]) * (1024 if value[1:] == ["kB"] else 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory(device) -> int | None:
    """Bytes this process may still take on `device` (a torch.device): the GPU's free memory, or
    on Linux the smaller of the machine's available memory and what is left of a container's
    limit. None where it cannot be told (macOS, Windows, MPS): then nothing is checked."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    free = [_linux_number("/proc/meminfo", "MemAvailable")]
    limit, used = _linux_number("/sys/fs/cgroup/memory.max"), _linux_number("/sys/fs/cgroup/memory.current")
    if limit is None:  # cgroup v1
        limit, used = _linux_number("/sys/fs/cgroup/memory/memory.limit_in_bytes"), _linux_number("/sys/fs/cgroup/memory/memory.usage_in_bytes")
    if limit is not None and used is not None and limit < 1 << 60:
        free.append(limit - used)
    free = [f for f in free if f is not None]
    return min(free) if free else None


def check_memory(backbone: str, content_wh, style_whs, size: int, style_scale: float, max_size: int, device) -> int | None:
    """Refuse, before any work, what would not fit in the memory available, naming the largest size
    that does. Otherwise return the most pixels the network may see at once: None when whole
    pictures fit, else the largest of TILES that does (the largest where the memory is unknown)."""
    free = available_memory(device)
    if free is None:
        return TILES[0]
    gpu = device.type == "cuda"
    # What is already resident (the interpreter, torch) is part of the estimate but not of the need.
    resident = 0 if gpu else (_linux_number("/proc/self/status", "VmRSS") or 0)

    def need(s: int, tile: int | None) -> int:
        return estimate_memory(backbone, content_wh, style_whs, s, style_scale, max_size, gpu, tile) - resident

    for tile in (None, *TILES):
        if need(size, tile) <= 0.9 * free:
            return tile
    fits = [s for s in range(16, size, 16) if need(s, TILES[-1]) <= 0.9 * free]
    where = "GPU memory" if gpu else "memory"
    largest = f"the largest --size that fits is about {fits[-1]}" if fits else "not even --size 16 fits; close other programs first"
    raise GanforgeError(f"--size {size} would need about {need(size, TILES[-1]) / 1e9:.1f} GB more, but {free / 1e9:.1f} GB of {where} "
                        f"are free; {largest}.")


# --------------------------------------------------------------------------------------------------
# Helpers


def _finish(image: Tensor, size: tuple[int, int], colours: Tensor | None = None) -> Image.Image:
    """The optimised tensor as a PIL image of `size`; with `colours`, only its brightness is kept."""
    out = image.detach().float().cpu()
    if out.shape[-2:] != (size[1], size[0]):
        out = F.interpolate(out, size=(size[1], size[0]), mode="bicubic", align_corners=False).clamp(0, 1)
    if colours is not None:
        out = _with_luminance(resize_image(colours, size), luma(out))
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
        img = img.resize(fit_long_edge(img.size, max_size), Image.LANCZOS)
        log(f"{name} is {w}x{h}; reduced to {img.size[0]}x{img.size[1]} (--max-size {max_size}).")
    return img


def fit_long_edge(wh: Sequence[int], long_edge: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer edge is `long_edge`."""
    w, h = int(wh[0]), int(wh[1])
    s = long_edge / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def resize_image(x: Tensor, wh: tuple[int, int]) -> Tensor:
    """(1, 3, H, W) in [0, 1] -> (1, 3, h, w), antialiased."""
    w, h = wh
    if x.shape[-2:] == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def to_tensor(img: Image.Image) -> Tensor:
    """A PIL image -> (1, 3, H, W) float in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()  # (1, 3, H, W)


def _to_pil(x: Tensor) -> Image.Image:
    arr = (x[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


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


def _network(backbone: str, weights, device: torch.device):
    """The feature network, kept from the previous call when it asked for the same one: a video
    calls `stylize` once a frame, and building lite0 takes about 0.3 s (VGG-19 seconds), as long
    as a few dozen steps of a small frame. A weights file is known by its path, size and time of
    change, so one rewritten in place is read again."""
    stamp = None
    if weights is not None:
        try:
            st = os.stat(weights)
            stamp = (st.st_size, st.st_mtime_ns)
        except OSError:
            pass  # build_backbone says what is wrong with it
    return _built_network(backbone, None if weights is None else os.path.abspath(weights), stamp, device)


@functools.lru_cache(maxsize=1)  # one network at most stays in memory between calls
def _built_network(backbone: str, weights: str | None, stamp, device: torch.device):
    return build_backbone(backbone, pretrained=True, weights=weights).to(device)
