"""Scoring a generator (or a folder of pictures) against training data, and finding its nearest
training images.

    from ganforge.evaluate import evaluate
    scores = evaluate("runs/00000-digits", "digits", n=2000)   # {"fid": ..., "kid": ..., ...}
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge import metrics
from ganforge.errors import GanforgeError


@dataclass
class Images:
    images: torch.Tensor  # uint8 (N, C, H, W)
    kind: str  # "generator" or "folder"
    step: int | None = None  # the generator's training step


def is_generator_source(source: Path) -> bool:
    """A run folder, a generator .safetensors or a checkpoint .pt (rather than a folder of images)."""
    if source.is_dir():
        return any((source / name).exists() for name in ("config.json", "generator.safetensors", "checkpoints"))
    return source.suffix.lower() in (".safetensors", ".pt")


def load_source(source: str | os.PathLike, n: int, size: int | None, seed: int = 0, device: str = "auto") -> Images:
    """`n` images from a generator (drawn with `seed`), or up to `n` from a folder of images (a
    seeded random choice when it holds more). `size` resizes; None keeps the generator's size
    (folders need a size)."""
    from ganforge.checkpoint import load_generator
    from ganforge.data import load_folder, to_uint8
    from ganforge.devices import pick_device

    source = Path(source)
    if not source.exists():
        raise GanforgeError(f"{source}: no such run folder, generator file or image folder.")
    if is_generator_source(source):
        generator, cfg, step = load_generator(source)
        dev = pick_device(device)
        z = torch.randn(n, cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
        images = to_uint8(metrics.generate(generator.to(dev), z))
        return Images(resize(images, size) if size else images, "generator", step)
    if not source.is_dir():
        raise GanforgeError(f"{source} is neither a run folder, a generator (.safetensors, .pt) nor a folder of images.")
    data = load_folder(source, size or 64)
    return Images(subset(data.images, n, seed), "folder")


def subset(images: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    if len(images) <= n:
        return images
    return images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]]


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, h, w) -> uint8 (N, C, size, size), antialiased."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def _load_pair(source, data: str, n: int, size: int | None, seed: int, device: str, data_root):
    from ganforge.data import check_size, default_size, load_data

    if size is not None:
        check_size(size)
    src_path = Path(source)
    if src_path.exists() and is_generator_source(src_path):
        fake = load_source(source, n, size, seed, device)
        size = fake.images.shape[-1]
    else:
        size = size or default_size(data)
        fake = load_source(source, n, size, seed, device)
    real = load_data(data, size, None, data_root)
    return fake, real


def evaluate(source: str | os.PathLike, data: str, n: int = 2000, features: str = "lite0", inception_weights: str | os.PathLike | None = None,
             size: int | None = None, seed: int = 0, device: str = "auto", data_root: str | os.PathLike | None = None,
             classifier_dir: str | os.PathLike | None = None, kid_subsets: int = 100) -> dict:
    """FID, KID (mean and std), precision, recall, density and coverage of `source` against `data`,
    with `n` generated images and up to `n` real ones; a class-coverage report for labelled
    built-in datasets. Returns a JSON-ready dict."""
    from ganforge.data import is_builtin

    if n < 10:
        raise GanforgeError(f"--n must be at least 10 for the k-nearest-neighbour metrics, not {n}.")
    t0 = time.perf_counter()
    extractor = metrics.build_extractor(features, device, inception_weights)
    fake, real = _load_pair(source, data, n, size, seed, device, data_root)
    real_images = subset(real.images, n, seed + 1)
    if len(fake.images) < 10 or len(real_images) < 10:
        raise GanforgeError(f"need at least 10 images on each side; got {len(fake.images)} from {source} and {len(real_images)} from {data}.")
    scores = metrics.compare(extractor(fake.images), extractor(real_images), seed=seed, kid_subsets=kid_subsets)
    result = {
        "source": str(source), "source_kind": fake.kind, "step": fake.step, "data": data, "features": features,
        "size": int(fake.images.shape[-1]), "n_generated": len(fake.images), "n_real": len(real_images),
        **{k: round(v, 6) for k, v in scores.items()},
    }
    if is_builtin(data) and data in metrics.CLASSIFIED and real.labels is not None:
        result["class_coverage"] = metrics.class_coverage(fake.images, data, real.labels, data_root, classifier_dir).to_dict()
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def format_scores(r: dict) -> str:
    """The human-readable table `ganforge evaluate` prints."""
    lines = [
        f"{r['source']} ({r['source_kind']}{'' if r.get('step') is None else ', step ' + str(r['step'])}) against {r['data']}: "
        f"{r['n_generated']} generated vs {r['n_real']} real images at {r['size']} px, {r['features']} features",
        f"  FID        {r['fid']:.3f}",
        f"  KID        {r['kid']:.5f} ± {r['kid_std']:.5f}",
        f"  precision  {r['precision']:.3f}    recall    {r['recall']:.3f}   (k=3)",
        f"  density    {r['density']:.3f}    coverage  {r['coverage']:.3f}   (k=5)",
    ]
    cc = r.get("class_coverage")
    if cc:
        hist = " ".join(f"{name}:{count}" for name, count in zip(cc["classes"], cc["histogram"]))
        lines += [
            f"  classes    {cc['classes_present']} of {len(cc['classes'])} present; KL to the data's class shares {cc['kl']:.4f} "
            f"(classifier accuracy {cc['classifier_accuracy']:.1%})",
            f"             {hist}",
        ]
    return "\n".join(lines)


@torch.no_grad()
def nearest_neighbors(source: str | os.PathLike, data: str, n: int = 8, k: int = 5, features: str = "lite0",
                      inception_weights=None, size: int | None = None, seed: int = 0, device: str = "auto",
                      data_root=None, max_real: int = 20000) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Each of `n` generated images followed by its `k` nearest training images in feature space
    (`features`: lite0, inception, or pixels). Returns (uint8 (n*(k+1), 3, H, W) rows for a grid,
    distances (n, k), how many training images were searched)."""
    if n < 1 or k < 1:
        raise GanforgeError("-n and -k must be at least 1.")
    fake, real = _load_pair(source, data, n, size, seed, device, data_root)
    pool = subset(real.images, max_real, seed)
    if k > len(pool):
        raise GanforgeError(f"-k {k} is more than the {len(pool)} training images.")
    if features == "pixels":
        embed = lambda x: metrics.to_rgb(x).flatten(1).float() / 255.0  # noqa: E731
    else:
        embed = metrics.build_extractor(features, device, inception_weights)
    f_fake, f_real = embed(fake.images), embed(pool)
    dist, idx = torch.cdist(f_fake, f_real).topk(k, dim=1, largest=False)  # (n, k)
    rows = [torch.cat([metrics.to_rgb(fake.images[i : i + 1]), metrics.to_rgb(pool[idx[i]])]) for i in range(len(fake.images))]
    return torch.cat(rows), dist, len(pool)
