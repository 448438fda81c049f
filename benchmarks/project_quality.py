"""How close `ganforge project` comes, for variants of its recipe: the figures behind its defaults.

    .venv/bin/python benchmarks/project_quality.py                          # trains a 32-px digits run first
    .venv/bin/python benchmarks/project_quality.py --run runs/00003-digits --variants default,pixel-only
    .venv/bin/python benchmarks/project_quality.py --variants default --steps 50,100,200,400

Two sets of targets: pictures the generator made itself (from seeds it is not started from, so a
perfect answer exists), and pictures it never drew itself, where only an approximate answer
exists: for a gray generator scikit-learn's digits, one of each digit (for a digits run they are
training pictures), for a colour one crops of the photographs of benchmarks/common.py. For every
variant it prints the mean over the targets of
  - pixel: mean squared error of pixel values in 0..1,
  - ssim: structural similarity (scikit-image), 1 is identical; a judge that no variant optimises,
  - lpips: a fixed perceptual distance on five lite0 layers at 128 px, the same for every variant,
  - |z|: the latent's length over sqrt(dim) (near 1 for latents the generator was trained on),
  - s: seconds per projection (wall time: on a busy machine it varies),
  - for a class-conditional generator searched without a class, how often it found the right one,
and the same distances for random latents' pictures, for scale.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.gan.project import RECIPE, PerceptualDistance, pixel_distance, project

JUDGE_LAYERS = ("stem", "blocks.1.expand", "blocks.3.expand", "blocks.5.expand", "blocks.11.expand")

# name -> (recipe changes, project() keyword arguments)
VARIANTS = {
    "default": ({}, {}),
    "pixel-only": ({}, dict(perceptual_weight=0.0)),
    "perceptual-only": ({}, dict(pixel_weight=0.0)),
    "pixel-x10": ({}, dict(pixel_weight=10.0)),
    "pixel-x30": ({}, dict(pixel_weight=30.0)),
    "perceptual-x0.3": ({}, dict(perceptual_weight=0.3)),
    "layers-early": (dict(layers=("blocks.1.expand", "blocks.3.expand")), {}),
    "layers-wide": (dict(layers=JUDGE_LAYERS), {}),
    "layers-outputs": (dict(layers=("blocks.2", "blocks.4", "blocks.7")), {}),
    "layers-deep": (dict(layers=("blocks.3.expand", "blocks.5.expand", "blocks.11.expand")), {}),
    "features-native": (dict(feature_size=1), {}),
    "features-128": (dict(feature_size=128), {}),
    "no-penalty": (dict(latent_weight=0.0), {}),
    "penalty-1": (dict(latent_weight=1.0), {}),
    "penalty-0.01": (dict(latent_weight=0.01), {}),
    "no-noise": (dict(noise=0.0), {}),
    "noise-0.2": (dict(noise=0.2), {}),
    "noise-0.5": (dict(noise=0.5), {}),
    "no-screen": (dict(candidates=1), {}),
    "screen-64": (dict(candidates=64), {}),
    "flat-lr": (dict(warmup=0.0, rampdown=0.0), {}),
    "lr-0.01": ({}, dict(lr=0.01)),
    "lr-0.02": ({}, dict(lr=0.02)),
    "lr-0.1": ({}, dict(lr=0.1)),
    "lr-0.2": ({}, dict(lr=0.2)),
    "restarts-1": ({}, dict(restarts=1)),
    "restarts-2": ({}, dict(restarts=2)),
    "restarts-8": ({}, dict(restarts=8)),
}


def parse_variant(spec: str) -> tuple[dict, dict]:
    """A named variant, or settings joined by '+': `lr=0.2+latent_weight=1` (Recipe fields or project() arguments)."""
    if spec in VARIANTS:
        return VARIANTS[spec]
    fields = {f.name: f.type for f in dataclasses.fields(RECIPE)}
    changes, kwargs = {}, {}
    for item in spec.split("+"):
        key, _, value = item.partition("=")
        if key == "layers":
            changes[key] = tuple(value.split("/"))
        elif key in fields:
            changes[key] = type(getattr(RECIPE, key))(value)
        else:
            kwargs[key] = int(value) if key in ("steps", "restarts") else float(value)
    return changes, kwargs


def train_run(folder: Path, size: int, steps: int) -> Path:
    from ganforge.gan.config import TrainConfig
    from ganforge.gan.loop import train

    run = folder / f"digits-{size}-{steps}"
    if not run.is_dir():
        train(TrainConfig(data="digits", size=size, g_width=32, d_width=32, latent_dim=64, batch_size=64, steps=steps,
                          collapse_check=False, device="cpu", sample_every=steps, checkpoint_every=steps), run, sinks=[])
    return run


def targets(run: Path, n: int) -> dict[str, list[tuple[Image.Image, int]]]:
    """Target sets: name -> [(picture, its class)]."""
    from ganforge.gan.checkpoint import load_generator
    from ganforge.gan.sampling import generate, latents
    from ganforge.images import to_uint8

    G, cfg, _ = load_generator(run)
    labels = torch.arange(n) % cfg.num_classes if cfg.classes else None
    own = to_uint8(generate(G, latents(n, cfg.latent_dim, 10_000), labels)).permute(0, 2, 3, 1).numpy()
    out = {"own": [(Image.fromarray(a.squeeze(-1) if a.shape[-1] == 1 else a), i % max(1, cfg.num_classes)) for i, a in enumerate(own)]}
    if cfg.channels == 1:
        from sklearn.datasets import load_digits

        digits = load_digits()
        # The last pictures of the set, one of each digit; light strokes on black, as the run trained on.
        picks = [int(np.flatnonzero(digits.target == d % 10)[-1 - d // 10]) for d in range(n)]
        out["real"] = [(Image.fromarray((digits.images[i] * 255 / 16).round().astype(np.uint8)), int(digits.target[i])) for i in picks]
    else:
        from common import source_photos

        # Crops of the photographs benchmarks/common.py trains its photo runs on, at other places and scales.
        rng, photos = np.random.default_rng(12345), source_photos()
        out["real"] = []
        for i in range(n):
            photo = photos[i % len(photos)]
            side = int(min(photo.size) * rng.uniform(0.1, 0.4))
            x, y = int(rng.integers(0, photo.size[0] - side)), int(rng.integers(0, photo.size[1] - side))
            out["real"].append((photo.crop((x, y, x + side, y + side)), 0))
    return out


def judge(net, recon: torch.Tensor, target: torch.Tensor) -> tuple[float, float, float]:
    from skimage.metrics import structural_similarity

    a = ((recon[0] + 1) / 2).clamp(0, 1).numpy()
    b = ((target[0] + 1) / 2).clamp(0, 1).numpy()
    ssim = structural_similarity(a, b, data_range=1.0, channel_axis=0, win_size=7)
    with torch.no_grad():
        lpips = float(PerceptualDistance(net, JUDGE_LAYERS, 128, target)(recon)[0])
    return float(pixel_distance(recon, target)[0]), float(ssim), lpips


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="A run folder or generator file (default: train a 32-px digits run, cached in --cache).")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "ganforge-project-bench"))
    ap.add_argument("--train-steps", type=int, default=1500)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--variants", default="default", help=f"Comma-separated, from: {', '.join(VARIANTS)}; or 'all'; or settings "
                    "joined by '+', such as lr=0.2+latent_weight=1+layers=stem/blocks.1.expand.")
    ap.add_argument("--steps", default="", help="Comma-separated step counts (default: project's own).")
    ap.add_argument("--targets", type=int, default=6, help="Pictures per target set.")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice).")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from ganforge.backbones import build_backbone
    from ganforge.gan.checkpoint import load_generator
    from ganforge.gan.project import load_target
    from ganforge.gan.sampling import generate, latents

    run = Path(args.run) if args.run else train_run(Path(args.cache), args.size, args.train_steps)
    G, cfg, _ = load_generator(run)
    sets = targets(run, args.targets)
    net = build_backbone("lite0")
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    step_counts = [int(s) for s in args.steps.split(",")] if args.steps else [None]
    print(f"{run}: {cfg.arch} {cfg.size} px, {cfg.channels} channel(s), latent {cfg.latent_dim}, "
          f"{len(cfg.classes)} classes; {args.targets} targets per set; torch threads {torch.get_num_threads()}")

    # For scale: random latents' pictures against the same targets.
    rand = generate(G, latents(16, cfg.latent_dim, 777), torch.arange(16) % cfg.num_classes if cfg.classes else None)
    for set_name, images in sets.items():
        scores = np.array([[judge(net, r[None], load_target(img, cfg.size, cfg.channels)) for r in rand] for img, _ in images])
        p, s, l = scores.mean(axis=(0, 1))
        print(f"{'random latents':<22} {set_name:<5} pixel {p:.5f}  ssim {s:.3f}  lpips {l:.4f}")

    for name in names:
        changes, kwargs = parse_variant(name)
        recipe = dataclasses.replace(RECIPE, **changes)
        for steps in step_counts:
            kw = dict(kwargs, **({"steps": steps} if steps else {}))
            for set_name, images in sets.items():
                rows, right = [], 0
                for img, label in images:
                    t = time.perf_counter()
                    res = project(img, run, device=args.device, recipe=recipe, **kw)
                    seconds = time.perf_counter() - t
                    norm = float(np.linalg.norm(res.latent) / np.sqrt(len(res.latent)))
                    rows.append((*judge(net, res.reconstruction[None], res.target[None]), norm, seconds))
                    right += res.class_index == label
                p, s, l, z, sec = np.mean(rows, axis=0)
                label = name + (f" @{steps}" if steps else "")
                classes = f"  class right {right}/{len(images)}" if cfg.classes else ""
                print(f"{label:<22} {set_name:<5} pixel {p:.5f}  ssim {s:.3f}  lpips {l:.4f}  |z| {z:.2f}  {sec:5.1f} s{classes}", flush=True)


if __name__ == "__main__":
    main()
