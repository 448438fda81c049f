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

Measured on a busy 2-core CPU, one torch thread, 4 targets per set (10 for the class rows), with
32-px DCGANs: `digits` (latent 64, widths 32, 1,500 steps), `photos` (colour, 2,000 steps on 600
crops of the photographs of common.py) and `classes` (digits --conditional, 1,500 steps). Figures
are the judge's lpips, own/real; random latents' pictures score 0.33/0.34 (digits), 0.47/0.54 (photos).

  first sweep, digits, lr 0.05, 100 steps, penalty 0.1, noise 0.05, 16 candidates (then the defaults):
    losses      pixel+perceptual 0.0112/0.0428; pixel only 0.026/0.060; perceptual only 0.0105/0.0415;
                pixel x10 0.0166/0.0518, x30 0.0221/0.0573 (pixel MSE also no better)
    layers      blocks.1/3/5.expand 0.0112/0.0428; 1/3 0.0117/0.0457; + stem, 11 0.0118/0.0425;
                block outputs 2/4/7 0.0117/0.0433; 3/5/11 0.0125/0.0435
    feature px  32 (native) 0.0136/0.0469; 64 0.0112/0.0428; 128 0.0096/0.0426 at 2-4x the time
    penalty     0: |z| 1.14 and 0.0122/0.0441; 0.01: |z| 1.12; 0.1: |z| 1.03; 1: |z| 1.00, 0.0103/0.0428
    noise       0: 0.0113/0.0425; 0.05: 0.0112/0.0428; 0.2: 0.0123/0.0444; 0.5: 0.0132/0.0462
    starts      1 candidate 0.0170/0.0527; 16: 0.0112/0.0428; 64: 0.0098/0.0387
    lr          0.01: 0.0325/0.0707; 0.02: 0.0219/0.0565; 0.05: 0.0112/0.0428; 0.1: 0.0083/0.0375;
                0.2: 0.0051/0.0326; a flat rate instead of warm-up and cosine ramp-down 0.0088/0.0398
    restarts    1: 0.0136/0.0483; 2: 0.0116/0.0454; 4: 0.0112/0.0428; 8: 0.0102/0.0398
  digits, penalty 1, no noise, by steps (50 / 100 / 200 / 400):
    lr 0.1      0.0128/0.0468  0.0072/0.0359  0.0043/0.0309  0.0030/0.0271
    lr 0.2      0.0101/0.0395  0.0056/0.0312  0.0033/0.0283  0.0021/0.0268
    lr 0.4      0.0097/0.0365  0.0044/0.0294  0.0028/0.0276  0.0021/0.0261
    lr 0.2 flat 0.0084/0.0372  0.0043/0.0305  0.0032/0.0281  0.0022/0.0273
    64 starts   0.0083/0.0359  0.0048/0.0295  0.0033/0.0274  0.0022/0.0265
    noise 0.05  0.0107/0.0388  0.0054/0.0317  0.0037/0.0286  0.0024/0.0276
    penalty 0.1 0.0106/0.0397  0.0049/0.0320  0.0034/0.0281  0.0021/0.0264 (|z| 1.02-1.03 on real)
    defaults at 300 steps (lr 0.2, 64 candidates): pixel 0.00003/0.00065, lpips 0.0027/0.0268, ~7 s;
    with --pixel-weight 3: pixel 0.00003/0.00060, lpips 0.0031/0.0272
  photos, real crops at 300 steps: pixel MSE, ssim, lpips
    pixel weight 1  0.0376 0.460 0.366   |  pixel only       0.0136 0.370 0.389
    pixel weight 3  0.0183 0.432 0.367   |  perceptual only  0.0494 0.411 0.369
    pixel weight 10 0.0147 0.423 0.372   |  lr 0.1 / 0.4     0.0376 / 0.0355 (pixel weight 1)
    + stem and blocks.11: 0.0269 0.343 0.376; features at 128 px: 0.0286 0.451 0.364 at 3x the time
    (the generator's own pictures: pixel 0.00003-0.00004, lpips 0.0011-0.0013 for all of these)
  classes, no --class, 100 steps, 10 targets a set: the right class found, seconds
    class of the best random start (the default)   own 10/10, real 10/10, 8 s; lpips 0.0065/0.0886
    a quarter of the steps for every class first   own 10/10, real 9/10, 13 s; lpips 0.0018/0.0880
    half of the steps for every class first        own 10/10, real 9/10, 19 s; lpips 0.0023/0.0872
  the same at 300 steps:
    class of the best random start (the default)   own 10/10, real 10/10, 16-26 s; lpips 0.0014/0.0856
    a quarter of the steps for every class first   own 10/10, real 10/10, 34-36 s; lpips 0.0012/0.0859
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
