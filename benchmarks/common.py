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


def faces_folder(folder: Path) -> Path:
    """scikit-image's 200 faces from Labeled Faces in the Wild (25x25 gray crops), as PNGs in folder/faces/."""
    from skimage import data

    out = folder / "faces"
    faces = data.lfw_subset()  # (200, 25, 25) floats in [0, 1]
    if out.is_dir() and len(list(out.glob("*.png"))) == len(faces):
        return folder
    out.mkdir(parents=True, exist_ok=True)
    for i, face in enumerate(faces):
        Image.fromarray(np.round(face * 255).astype(np.uint8)).save(out / f"{i:03d}.png")
    return folder


ICON_PACKAGE, ICON_SET = "oxygen-icon-theme", "128x128/mimetypes"


def icons_folder(folder: Path) -> Path:
    """The 353 file-type icons of Debian's oxygen-icon-theme at 128 px (RGBA PNGs, a sheet of paper
    with a symbol), in folder/icons/. The package is fetched with `apt-get download` and unpacked
    with `dpkg-deb`, so no root is needed and nothing is installed."""
    import shutil
    import subprocess
    import tempfile

    out = folder / "icons"
    if out.is_dir() and any(out.glob("*.png")):
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(["apt-get", "download", ICON_PACKAGE], cwd=tmp, check=True, capture_output=True)
            (deb,) = Path(tmp).glob("*.deb")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError, ValueError) as exc:
            raise SystemExit(f"could not fetch {ICON_PACKAGE} with apt-get download (a Debian or Ubuntu machine is needed): {exc}")
        icons = sorted((Path(tmp) / "x").glob(f"usr/share/icons/oxygen/base/{ICON_SET}/*.png"))
        out.mkdir(parents=True, exist_ok=True)
        for icon in icons:
            shutil.copy(icon, out / icon.name)
    return folder


def parse_variant(text: str) -> tuple[str, dict]:
    """`name:field=value,...` over TrainConfig's fields -> (name, {field: value})."""
    from ganforge import options
    from ganforge.gan.config import TrainConfig

    name, _, items = text.partition(":")
    types = {s.name: s.type for s in options.settings(TrainConfig)}
    pairs = []
    for item in filter(None, items.split(",")):
        if "=" in item or not pairs:
            pairs.append(item)
        else:  # a list value, such as augment_policy=color,translation,cutout
            pairs[-1] += "," + item
    out = {}
    for item in pairs:
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"unknown setting {key!r} in variant {text!r}")
        kind = types[key]
        out[key] = bool(int(value)) if kind is bool else kind(value)
    return name, out
