"""Pictures in and out: reading them the way a person's own folders hold them, and writing them.

Every loader in ganforge goes through `load_image`, so EXIF rotation, alpha, palettes, CMYK and
16-bit files behave the same for training, style transfer and evaluation. Image tensors are
uint8 0..255 on disk and in memory, float -1..1 where a generator makes them (`to_float`,
`to_uint8` convert). Pictures with transparency have four channels, RGBA, with straight (not
premultiplied) colour; a person looks at them on a checkerboard (`for_viewing`).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ganforge.errors import GanforgeError
from ganforge.fileio import atomic_write

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601: the brightness of an RGB pixel


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and float grayscale modes are scaled, not clipped, into 0..255."""
    arr = np.asarray(img, dtype=np.float64)
    top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
    if img.mode == "F":
        top = max(float(arr.max(initial=0)), 1.0) if arr.max(initial=0) > 1 else 1.0
    return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")


def load_image(path: str | os.PathLike, draft_size: int | None = None, data: bytes | None = None, alpha: bool = False) -> Image.Image:
    """Decode `path` (or its bytes, `data`, already read) to an 8-bit RGB image, upright, with
    transparency composited on white; with `alpha`, to RGBA instead (opaque where the file has
    no transparency).

    `draft_size` lets JPEG decoding skip detail that a later downscale to that short side would
    discard (decoding at 1/2, 1/4 or 1/8 scale is several times faster).
    Raises GanforgeError with one sentence naming the file when it cannot be read.
    """
    path = Path(path)
    if data is None and not path.exists():
        raise GanforgeError(f"{path}: no such file.")
    if data is None and path.is_dir():
        raise GanforgeError(f"{path} is a folder, not an image file.")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its pixel limit; treat that as a bomb too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path if data is None else io.BytesIO(data)) as img:
                if draft_size is not None and img.format == "JPEG":
                    img.draft("RGB", (draft_size, draft_size))
                img.load()
                img = ImageOps.exif_transpose(img)
                return _normalise_mode(img, alpha)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise GanforgeError(f"{path} is too large to decode safely (over {Image.MAX_IMAGE_PIXELS} pixels).") from None
    except GanforgeError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt data: all mean "unreadable".
        reason = str(exc).strip() or type(exc).__name__
        raise GanforgeError(f"{path} is not a readable image ({reason}).") from None


def as_upright_rgb(img: Image.Image) -> Image.Image:
    """An already-open PIL image treated as `load_image` treats a file: upright 8-bit RGB."""
    return _normalise_mode(ImageOps.exif_transpose(img))


def _normalise_mode(img: Image.Image, alpha: bool = False) -> Image.Image:
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        img = _to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("LA", "PA", "La", "RGBa"):
        img = img.convert("RGBA")
    if alpha:
        return img.convert("RGBA")  # a colour key ("transparency" of an L or RGB file) becomes alpha here
    if img.mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img).convert("RGB")
    return img.convert("RGB")


def save_image_atomic(img: Image.Image, path: str | os.PathLike) -> Path:
    """Write `img` so that `path` is either absent, the old file, or the complete new image."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise GanforgeError(f"{path}: unknown image extension; use .png, .jpg or .webp.")
    atomic_write(path, lambda f: img.save(f, format=fmt))
    return path


def checkerboard(height: int, width: int, square: int = 8) -> torch.Tensor:
    """uint8 (3, H, W): the light and dark gray squares that image editors show behind transparency."""
    y, x = torch.meshgrid(torch.arange(height) // square, torch.arange(width) // square, indexing="ij")
    return torch.where((x + y) % 2 == 0, 204, 153).to(torch.uint8).expand(3, -1, -1)


def composite(images_u8: torch.Tensor, background: torch.Tensor | int) -> torch.Tensor:
    """uint8 RGBA (N, 4, H, W) over `background` (uint8 (3, H, W), or a gray level) -> uint8 RGB (N, 3, H, W)."""
    rgb, a = images_u8[:, :3].float(), images_u8[:, 3:].float() / 255.0
    back = background.float() if isinstance(background, torch.Tensor) else torch.full_like(rgb[:1], float(background))
    return (rgb * a + back * (1 - a)).round().clamp(0, 255).to(torch.uint8)


def for_viewing(images: torch.Tensor, square: int | None = None) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1] or uint8 -> uint8 for showing: RGBA ones on a checkerboard
    (squares of `square` px, by default an eighth of the picture), others as they are."""
    images = images if images.dtype == torch.uint8 else to_uint8(images)
    if images.shape[1] != 4:
        return images
    h, w = images.shape[-2:]
    return composite(images, checkerboard(h, w, square or max(2, min(h, w) // 8)))


def luma(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float -> (N, 1, H, W) brightness (ITU-R 601 weights)."""
    return (images * torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float -1..1, the range of the generator's tanh."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float -1..1 -> uint8 0..255."""
    return images.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def grid_rows(n: int) -> int:
    """Images per row for a near-square grid of n images."""
    return max(1, math.ceil(math.sqrt(n)))


def grid_image(images: torch.Tensor, nrow: int | None = None) -> torch.Tensor:
    """images: (N, C, H, W) in [-1, 1] (or uint8) -> one uint8 grid (3, H', W'), near-square by default;
    pictures with transparency are shown on a checkerboard."""
    from torchvision.utils import make_grid

    images = for_viewing(images)
    return make_grid(images, nrow=nrow or grid_rows(len(images)), padding=2, pad_value=0)


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    """images: (N, C, H, W) in [-1, 1] (or uint8) -> one PNG grid, written atomically."""
    img = Image.fromarray(grid_image(images, nrow).permute(1, 2, 0).numpy())
    return atomic_write(Path(path), lambda f: img.save(f, format="PNG"))


def save_pngs(images: torch.Tensor, folder: str | os.PathLike, prefix: str = "sample") -> list[Path]:
    """images: (N, C, H, W) in [-1, 1] -> folder/prefix-00000.png, ... one file each (RGBA ones with their transparency)."""
    arrays = to_uint8(images).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
    paths = []
    for i, a in enumerate(arrays):
        img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
        paths.append(atomic_write(Path(folder) / f"{prefix}-{i:05d}.png", lambda f, img=img: img.save(f, format="PNG")))
    return paths
