"""Projection: the latent vector whose picture, drawn by a trained generator, is closest to a given picture.

    from ganforge.gan.project import project
    result = project("my-seven.png", "runs/00003-digits")
    result.latent          # (latent_dim,) float32; saved as .npy, `ganforge interpolate --from-latents` walks from it
    result.reconstruction  # (C, H, W) in [-1, 1]: what the generator draws from it

The generator stays frozen in eval mode; Adam moves only z. Each restart starts from the closest
of many random latents, the restarts run side by side as one batch, and the closest result is
kept. The loss is a pixel loss (mean squared error of pixel values in 0..1) plus a perceptual loss
on EfficientNet-Lite0 features (`PerceptualDistance`), plus a penalty that keeps |z| near
sqrt(latent_dim), where almost all of N(0, I)'s mass lies, so the latent stays one the generator
was trained on. The recipe's numbers (`RECIPE` and the defaults of `project`) were chosen by
measurement with benchmarks/project_quality.py; its docstring holds the figures.

A class-conditional generator is searched within `class_`. Without it, each class gets the same
random starts, and the class whose best start comes closest is searched: as accurate as giving
every class a quarter of the steps first (measured), and cheaper.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from ganforge.devices import DEVICE
from ganforge.errors import GanforgeError
from ganforge.gan.config import SEED_RANGE
from ganforge.options import Opt, check

CLASS = Opt("Search within this class of a class-conditional generator, by name or index.", long="--class", metavar="NAME|INDEX",
            default_text="the class whose best random start comes closest")


@dataclass(frozen=True)
class Recipe:
    """The settings of the search that are not options: measured once, the same for every generator
    (see benchmarks/project_quality.py for the figures)."""

    layers: tuple[str, ...]  # EfficientNet-Lite0 layers of the perceptual loss
    feature_size: int  # pictures smaller than this are upscaled to it before the feature network
    candidates: int  # random latents screened per restart; the closest start the search
    latent_weight: float  # weight of the penalty (|z| / sqrt(dim) - 1)^2
    noise: float  # std of noise added to z at the first step, fading to 0 at `noise_until`; off (it did not help)
    noise_until: float  # fraction of the steps
    warmup: float  # fraction of the steps over which the learning rate ramps up from 0
    rampdown: float  # fraction of the steps, at the end, over which it falls to 0 along a cosine
    screen_share: float  # fraction of the steps each class gets when the class is to be found (0: choose by the screened starts)


RECIPE = Recipe(
    layers=("blocks.1.expand", "blocks.3.expand", "blocks.5.expand"),
    feature_size=64,
    candidates=64,
    latent_weight=1.0,
    noise=0.0,
    noise_until=0.5,
    warmup=0.05,
    rampdown=0.25,
    screen_share=0.0,
)


@dataclass
class Projection:
    """What `project` found."""

    latent: np.ndarray  # (latent_dim,) float32
    class_index: int | None  # the class searched in (None for an unconditional generator)
    class_name: str | None
    reconstruction: Tensor  # (C, H, W) in [-1, 1] on the CPU: the generator's picture of `latent`
    target: Tensor  # (C, H, W) in [-1, 1] on the CPU: the picture, fitted to the generator
    pixel_mse: float  # mean squared difference of pixel values in 0..1
    perceptual: float  # PerceptualDistance between reconstruction and target
    restart_losses: list[float]  # the final loss of every restart; the smallest was kept
    class_losses: dict[str, float] | None  # when the class was found: each class's best loss after its short search
    frames: list[np.ndarray] | None  # uint8 (H, W, 3) pictures of the search, when asked for


@dataclass
class ProjectProgress:
    """What the progress callback receives after every optimisation step."""

    step: int  # 1-based, counted over both phases
    total: int
    phase: str  # "classes" (finding the class) or "search"
    loss: float  # the best restart's loss at this step


# --------------------------------------------------------------------------------------------------
# Distances


def pixel_distance(images: Tensor, target: Tensor) -> Tensor:
    """(B,) mean squared difference of pixel values in 0..1, for images and target in [-1, 1]."""
    return (images - target).square().mean(dim=(1, 2, 3)) / 4


class PerceptualDistance:
    """(B,) distances between pictures and one target in EfficientNet-Lite0's feature space.

    At each layer every position's feature vector is scaled to unit length before the squared
    difference is summed over channels (as LPIPS does, without its learned weights), so each
    layer's term lies in 0..4 whatever the magnitude of its activations; the result is the mean
    over positions and layers. Gray pictures are repeated to three channels, small ones upscaled
    to `size`, since the network halves the resolution five times.
    """

    def __init__(self, net: nn.Module, layers: tuple[str, ...], size: int, target: Tensor):
        self.net, self.layers, self.size = net, list(layers), size
        with torch.no_grad():
            self.target = self.features(target)  # target: (1, C, H, W) in [-1, 1]

    def features(self, images: Tensor) -> dict[str, Tensor]:
        x = (images + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] < self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        feats = self.net.features(x, self.layers)
        return {k: v * torch.rsqrt(v.square().sum(1, keepdim=True) + 1e-10) for k, v in feats.items()}

    def __call__(self, images: Tensor) -> Tensor:
        feats = self.features(images)
        return sum((feats[k] - t).square().sum(1).mean(dim=(1, 2)) for k, t in self.target.items()) / len(self.layers)


# --------------------------------------------------------------------------------------------------
# The search


def load_target(image: str | os.PathLike | Image.Image, size: int, channels: int) -> Tensor:
    """(1, channels, size, size) in [-1, 1]: the picture read and fitted as training data is."""
    from ganforge.data import fit_square
    from ganforge.images import as_upright_rgb, load_image, luma, to_float

    img = as_upright_rgb(image) if isinstance(image, Image.Image) else load_image(image)
    pixels = torch.from_numpy(np.array(fit_square(img, size))).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W) uint8
    if channels == 1:
        pixels = luma(pixels.float()).round().clamp(0, 255).to(torch.uint8)
    return to_float(pixels)


class _Objective:
    """The loss of each latent in a batch: pixel + perceptual distance + the latent-length penalty."""

    def __init__(self, generator: nn.Module, target: Tensor, perceptual: PerceptualDistance, pixel_weight: float,
                 perceptual_weight: float, latent_weight: float):
        self.G, self.target, self.perceptual = generator, target, perceptual
        self.weights = (pixel_weight, perceptual_weight, latent_weight)

    def __call__(self, z: Tensor, labels: Tensor | None, z_used: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B,) losses and the (B, C, H, W) pictures of `z_used` (z, or z with noise); the penalty is on z."""
        x = self.G(z if z_used is None else z_used) if labels is None else self.G(z if z_used is None else z_used, labels)
        pw, qw, lw = self.weights
        loss = lw * (z.norm(dim=1) / math.sqrt(z.shape[1]) - 1).square()
        if pw:
            loss = loss + pw * pixel_distance(x, self.target)
        if qw:
            loss = loss + qw * self.perceptual(x)
        return loss, x


@torch.no_grad()
def _screen(objective: _Objective, pool: Tensor, labels: Tensor | None, keep: int, batch: int = 64) -> tuple[Tensor, Tensor]:
    """The `keep` latents of `pool` with the smallest loss, best first, and their losses."""
    losses = torch.cat([objective(pool[i : i + batch], None if labels is None else labels[i : i + batch])[0]
                        for i in range(0, len(pool), batch)])
    order = losses.argsort()[:keep]
    return pool[order], losses[order]


def _learning_rate(lr: float, t: float, recipe: Recipe) -> float:
    """Ramp up over the first `warmup` of the steps, cosine down to 0 over the last `rampdown`."""
    scale = min(1.0, t / recipe.warmup) if recipe.warmup > 0 else 1.0
    if recipe.rampdown > 0 and t > 1 - recipe.rampdown:
        scale *= 0.5 * (1 + math.cos(math.pi * (t - (1 - recipe.rampdown)) / recipe.rampdown))
    return lr * scale


def _optimise(objective: _Objective, z0: Tensor, labels: Tensor | None, steps: int, lr: float, recipe: Recipe,
              gen: torch.Generator, on_step: Callable[[Tensor, Tensor, int], None]) -> tuple[Tensor, Tensor]:
    """Adam on a batch of latents (B, dim) for `steps` steps; returns the final latents and their losses."""
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr, betas=(0.9, 0.999))
    for step in range(steps):
        t = step / steps
        for group in opt.param_groups:
            group["lr"] = _learning_rate(lr, t + 1 / steps, recipe)  # the last step's rate is 0 only in the limit
        fade = max(0.0, 1 - t / recipe.noise_until) ** 2 if recipe.noise_until > 0 else 0.0
        noisy = None
        if recipe.noise * fade > 0:
            noisy = z + recipe.noise * fade * torch.randn(z.shape, generator=gen).to(z.device)
        loss, x = objective(z, labels, noisy)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # the restarts are independent: each latent gets its own gradient
        opt.step()
        on_step(loss.detach(), x.detach(), step)
    with torch.no_grad():
        final, _ = objective(z.detach(), labels)
    return z.detach(), final


def project(image: str | os.PathLike | Image.Image,
            source: str | os.PathLike,
            *,
            steps: Annotated[int, Opt("Optimisation steps of the search.", min=1)] = 300,
            restarts: Annotated[int, Opt("Searches run side by side from different starts; the closest result is kept.", min=1)] = 4,
            lr: Annotated[float, Opt("Adam's step size on the latent vector (whose entries are about 1 in size).", above=0)] = 0.2,
            pixel_weight: Annotated[float, Opt("Weight of the pixel loss (mean squared error of pixel values in 0..1).", min=0)] = 3.0,
            perceptual_weight: Annotated[float, Opt("Weight of the perceptual loss (distance of EfficientNet-Lite0 features).", min=0)] = 1.0,
            class_: Annotated[str | None, CLASS] = None,
            seed: Annotated[int, Opt("Seed for the starting latents; the same seed gives the same result.", min=-SEED_RANGE, max=SEED_RANGE)] = 0,
            device: Annotated[str, DEVICE] = "auto",
            frame_every: int = 0,
            callback: Callable[[ProjectProgress], None] | None = None,
            recipe: Recipe = RECIPE) -> Projection:
    """Find the latent vector whose picture from the generator `source` (a run folder, a generator
    .safetensors or a checkpoint .pt) is closest to `image` (a path or a PIL image).

    frame_every: every N steps keep a picture of the search (the best restart's reconstruction so
        far) in `Projection.frames` (0: none).
    callback: called with a ProjectProgress after every step.
    """
    check(project, locals())
    if pixel_weight == 0 and perceptual_weight == 0:
        raise GanforgeError("--pixel-weight and --perceptual-weight are both 0: nothing would pull the picture towards the target.")
    if frame_every < 0:
        raise GanforgeError(f"frame_every must be 0 or more, not {frame_every}.")
    from ganforge.backbones import build_backbone
    from ganforge.devices import pick_device
    from ganforge.gan.checkpoint import load_generator
    from ganforge.gan.sampling import class_index, generate, latents

    generator, cfg, _ = load_generator(source)
    chosen = None if class_ is None else class_index(cfg, class_)  # before the picture: a bad --class needs no decoding
    target_cpu = load_target(image, cfg.size, cfg.channels)
    dev = pick_device(device)
    G = generator.to(dev).eval().requires_grad_(False)
    target = target_cpu.to(dev)
    perceptual = PerceptualDistance(build_backbone("lite0").to(dev), recipe.layers, recipe.feature_size, target)
    objective = _Objective(G, target, perceptual, pixel_weight, perceptual_weight, recipe.latent_weight)

    conditional = bool(cfg.classes)
    classes = [chosen] if chosen is not None else list(range(cfg.num_classes)) if conditional else [None]
    find_class = len(classes) > 1
    screen_steps = round(steps * recipe.screen_share) if find_class else 0
    total = screen_steps + steps
    gen = torch.Generator().manual_seed(seed)
    pool = latents(restarts * recipe.candidates, cfg.latent_dim, seed).to(dev)
    frames: list[np.ndarray] | None = [] if frame_every else None
    done = [0]

    def step_hook(phase: str, offset: int):
        def hook(loss: Tensor, x: Tensor, step: int) -> None:
            done[0] = offset + step + 1
            best = int(loss.argmin())
            if frames is not None and (done[0] % frame_every == 0 or done[0] == total):
                frames.append(_frame(x[best]))
            if callback is not None:
                callback(ProjectProgress(done[0], total, phase, float(loss[best])))
        return hook

    def labels_of(c: int | None, n: int) -> Tensor | None:
        return None if c is None else torch.full((n,), c, dtype=torch.long, device=dev)

    # ---- the starts: per restart the closest of `candidates` random latents, in every class in question;
    # with `screen_share`, all classes' restarts are then searched briefly side by side before one is chosen
    screened = [_screen(objective, pool, labels_of(c, len(pool)), restarts) for c in classes]
    z_all, loss_all = torch.cat([z for z, _ in screened]), torch.cat([loss for _, loss in screened])
    class_losses = None
    if find_class:
        if screen_steps:
            labels_all = torch.cat([labels_of(c, restarts) for c in classes])
            z_all, loss_all = _optimise(objective, z_all, labels_all, screen_steps, lr, recipe, gen, step_hook("classes", 0))
        per_class = loss_all.view(len(classes), restarts)
        class_losses = {cfg.classes[c]: float(per_class[i].min()) for i, c in enumerate(classes)}
        best_class = int(per_class.min(dim=1).values.argmin())
        chosen, start = classes[best_class], z_all.view(len(classes), restarts, -1)[best_class]
    else:
        chosen, start = classes[0], z_all

    # ---- the search
    z, losses = _optimise(objective, start, labels_of(chosen, restarts), steps, lr, recipe, gen, step_hook("search", screen_steps))
    best = int(losses.argmin())
    latent = z[best].float().cpu()
    labels = None if chosen is None else torch.tensor([chosen])
    recon = generate(G, latent.unsqueeze(0), labels)  # exactly what sampling.generate gives for the saved latent
    with torch.no_grad():
        perc = float(perceptual(recon.to(dev))[0])
    return Projection(
        latent=latent.numpy().astype(np.float32),
        class_index=chosen,
        class_name=None if chosen is None else cfg.classes[chosen],
        reconstruction=recon[0],
        target=target_cpu[0],
        pixel_mse=float(pixel_distance(recon, target_cpu)[0]),
        perceptual=perc,
        restart_losses=[float(v) for v in losses.cpu()],
        class_losses=class_losses,
        frames=frames,
    )


def _frame(image: Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> uint8 (H, W, 3) on the CPU; gray is repeated to three channels."""
    from ganforge.images import to_uint8

    return to_uint8(image.float().cpu()).expand(3, -1, -1).permute(1, 2, 0).numpy()


def distances(image: Tensor, target: Tensor, device: str | torch.device = "cpu", recipe: Recipe = RECIPE) -> tuple[Tensor, Tensor]:
    """(pixel MSE, perceptual distance), each (B,), of pictures (B, C, H, W) from one target (1, C, H, W),
    both in [-1, 1]: the figures `project` reports, for comparing against other latents' pictures."""
    from ganforge.backbones import build_backbone

    dev = torch.device(device)
    net = build_backbone("lite0").to(dev)
    with torch.no_grad():
        perc = PerceptualDistance(net, recipe.layers, recipe.feature_size, target.to(dev))(image.to(dev)).cpu()
    return pixel_distance(image, target), perc
