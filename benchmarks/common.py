"""Shared helpers for the benchmark scripts: a folder of real photos of mixed sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"


def source_photos() -> list[Image.Image]:
    """Real photographs: the shared benchmark images when present, plus scikit-image's samples."""
    from skimage import data

    photos = [Image.open(p).convert("RGB") for p in sorted(SHARED_IMAGES.glob("*.jpg"))] if SHARED_IMAGES.is_dir() else []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "cat", "retina"):
        arr = getattr(data, name)()
        photos.append(Image.fromarray(arr).convert("RGB"))
    return photos


def photo_folder(folder: Path, count: int, seed: int = 0, min_side: int = 240, max_side: int = 1600) -> Path:
    """`count` JPEGs: random crops of real photos, each rescaled to a random size and aspect ratio.

    ImageFolder wants class subfolders, so the files go in folder/photos/.
    """
    out = folder / "photos"
    if out.is_dir() and len(list(out.glob("*.jpg"))) == count:
        return folder
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = source_photos()
    for i in range(count):
        src = photos[i % len(photos)]
        w, h = src.size
        cw, ch = int(w * rng.uniform(0.4, 1.0)), int(h * rng.uniform(0.4, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = src.crop((x, y, x + cw, y + ch))
        long_side = int(rng.integers(min_side, max_side))
        scale = long_side / max(cw, ch)
        crop = crop.resize((max(16, int(cw * scale)), max(16, int(ch * scale))), Image.Resampling.BILINEAR)
        crop.save(out / f"{i:05d}.jpg", quality=int(rng.integers(80, 95)))
    return folder
