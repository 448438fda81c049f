"""Drawing new images from a trained generator.

    from ganforge.sample import sample_images
    images = sample_images("runs/00000-digits", n=16, seed=0)   # (16, C, H, W) in [-1, 1]
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganforge.checkpoint import load_generator
from ganforge.runlog import save_grid


@torch.no_grad()
def sample_images(source, n: int = 64, seed: int = 0, device: str = "auto", batch: int = 256) -> torch.Tensor:
    from ganforge.devices import pick_device
    from ganforge.metrics import generate

    generator, cfg, _ = load_generator(source)
    z = torch.randn(n, cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
    return generate(generator.to(pick_device(device)), z, batch)


def write_grid(images: torch.Tensor, path: Path) -> Path:
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    return save_grid(images, path)


def write_files(images: torch.Tensor, folder: Path) -> list[Path]:
    from PIL import Image

    from ganforge.fileio import atomic_write
    from ganforge.data import to_uint8

    arrays = to_uint8(images).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
    paths = []
    for i, a in enumerate(arrays):
        img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
        paths.append(atomic_write(Path(folder) / f"sample-{i:05d}.png", lambda f, img=img: img.save(f, format="PNG")))
    return paths
