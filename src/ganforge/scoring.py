"""Scoring a generator (or a folder of pictures) against training data, and finding its nearest
training images.

    from ganforge.scoring import evaluate
    scores = evaluate("runs/00000-digits", "digits", n=2000)   # {"fid": ..., "kid": ..., ...}
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch

from ganforge.data import BUILTIN_DATASETS, check_size, default_size, is_builtin, load_data, load_folder, resize_batch
from ganforge.devices import DEVICE, pick_device
from ganforge.errors import GanforgeError
from ganforge.gan.config import SEED_RANGE
from ganforge.gan.rundir import RunFolder
from ganforge.images import to_uint8
from ganforge.metrics.classes import CLASSIFIED, class_coverage
from ganforge.metrics.features import FEATURES, build_extractor, to_rgb
from ganforge.metrics.stats import compare
from ganforge.options import Opt, check

_DATA = Opt(f"Training data to compare with: a folder of images, or {', '.join(BUILTIN_DATASETS)}.")
_SIZE = Opt("Compare at this resolution.", default_text="the generator's; 64 for folders, 32 for built-ins")
_SEED = Opt("Seed for the latent vectors and the choice of real images.", min=-SEED_RANGE, max=SEED_RANGE)
_INCEPTION = Opt("Local weights for --features inception (torch-fidelity's file), instead of downloading them.")
_DATA_ROOT = Opt("Where mnist, fashion-mnist and cifar10 (and the class-coverage classifiers) are cached.")


@dataclass
class Images:
    images: torch.Tensor  # uint8 (N, C, H, W)
    kind: str  # "generator" or "folder"
    step: int | None = None  # the generator's training step


def is_generator_source(source: Path) -> bool:
    """A run folder, a generator .safetensors or a checkpoint .pt (rather than a folder of images)."""
    if source.is_dir():
        return RunFolder.looks_like_run(source)
    return source.suffix.lower() in (".safetensors", ".pt")


def load_source(source: str | os.PathLike, n: int, size: int | None, seed: int = 0, device: str = "auto") -> Images:
    """`n` images from a generator (drawn with `seed`), or up to `n` from a folder of images (a
    seeded random choice when it holds more). `size` resizes; None keeps the generator's size
    (folders need a size)."""
    from ganforge.gan.checkpoint import load_generator
    from ganforge.gan.sampling import generate, latents

    source = Path(source)
    if not source.exists():
        raise GanforgeError(f"{source}: no such run folder, generator file or image folder.")
    if is_generator_source(source):
        generator, cfg, step = load_generator(source)
        images = to_uint8(generate(generator.to(pick_device(device)), latents(n, cfg.latent_dim, seed)))
        return Images(resize_batch(images, size) if size else images, "generator", step)
    if not source.is_dir():
        raise GanforgeError(f"{source} is neither a run folder, a generator (.safetensors, .pt) nor a folder of images.")
    data = load_folder(source, size or 64)
    return Images(subset(data.images, n, seed), "folder")


def subset(images: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    if len(images) <= n:
        return images
    return images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]]


def _load_pair(source, data: str, n: int, size: int | None, seed: int, device: str, data_root):
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


def evaluate(source: str | os.PathLike, data: Annotated[str | os.PathLike, _DATA],
             n: Annotated[int, Opt("Generated images to score, and at most this many real ones.", min=10, short="-n")] = 2000,
             features: Annotated[str, Opt("Feature network: lite0 works offline; inception is the standard FID network (downloaded once).",
                                  choices=FEATURES)] = "lite0",
             inception_weights: Annotated[str | os.PathLike | None, _INCEPTION] = None, size: Annotated[int | None, _SIZE] = None, seed: Annotated[int, _SEED] = 0,
             device: Annotated[str, DEVICE] = "auto", data_root: Annotated[str | os.PathLike | None, _DATA_ROOT] = None,
             classifier_dir: str | os.PathLike | None = None, kid_subsets: int = 100) -> dict:
    """FID, KID (mean and std), precision, recall, density and coverage of `source` against `data`,
    with `n` generated images and up to `n` real ones; a class-coverage report for labelled
    built-in datasets. Returns a JSON-ready dict."""
    check(evaluate, locals())  # first, so that locals() holds the arguments alone
    t0 = time.perf_counter()
    fake, real = _load_pair(source, data, n, size, seed, device, data_root)
    extractor = build_extractor(features, device, inception_weights)
    real_images = subset(real.images, n, seed + 1)
    if len(fake.images) < 10 or len(real_images) < 10:
        raise GanforgeError(f"need at least 10 images on each side; got {len(fake.images)} from {source} and {len(real_images)} from {data}.")
    scores = compare(extractor(fake.images), extractor(real_images), seed=seed, kid_subsets=kid_subsets)
    result = {
        "source": str(source), "source_kind": fake.kind, "step": fake.step, "data": str(data), "features": features,
        "size": int(fake.images.shape[-1]), "n_generated": len(fake.images), "n_real": len(real_images),
        **{k: round(v, 6) for k, v in scores.items()},
    }
    if is_builtin(data) and data in CLASSIFIED and real.labels is not None:
        result["class_coverage"] = class_coverage(fake.images, data, real.labels, data_root, classifier_dir).to_dict()
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
def nearest_neighbors(source: str | os.PathLike, data: Annotated[str | os.PathLike, _DATA],
                      n: Annotated[int, Opt("Generated images (one row each).", min=1, short="-n")] = 8,
                      k: Annotated[int, Opt("Nearest training images beside each.", min=1, short="-k", long="--k")] = 5,
                      features: Annotated[str, Opt("Space the distances are measured in.", choices=(*FEATURES, "pixels"))] = "lite0",
                      inception_weights: Annotated[str | os.PathLike | None, _INCEPTION] = None, size: Annotated[int | None, _SIZE] = None, seed: Annotated[int, _SEED] = 0,
                      device: Annotated[str, DEVICE] = "auto", data_root: Annotated[str | os.PathLike | None, _DATA_ROOT] = None,
                      max_real: Annotated[int, Opt("Search at most this many training images (a seeded random choice).", min=1)] = 20000,
                      ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Each of `n` generated images followed by its `k` nearest training images in feature space
    (`features`: lite0, inception, or pixels). Returns (uint8 (n*(k+1), 3, H, W) rows for a grid,
    distances (n, k), how many training images were searched)."""
    check(nearest_neighbors, locals())
    fake, real = _load_pair(source, data, n, size, seed, device, data_root)
    pool = subset(real.images, max_real, seed)
    if k > len(pool):
        raise GanforgeError(f"-k {k} is more than the {len(pool)} training images.")
    if features == "pixels":
        embed = lambda x: to_rgb(x).flatten(1).float() / 255.0  # noqa: E731
    else:
        embed = build_extractor(features, device, inception_weights)
    f_fake, f_real = embed(fake.images), embed(pool)
    dist, idx = torch.cdist(f_fake, f_real).topk(k, dim=1, largest=False)  # (n, k)
    rows = [torch.cat([to_rgb(fake.images[i : i + 1]), to_rgb(pool[idx[i]])]) for i in range(len(fake.images))]
    return torch.cat(rows), dist, len(pool)

