"""Training data: a folder of the user's pictures or a built-in dataset, decoded once into memory.

Images are resized on the short side, centre-cropped to the training size and kept as a uint8
tensor (N, C, H, W), so an epoch costs an index lookup rather than a JPEG decode per image.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.images import is_image_file, load_image, luma

BUILTIN_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")
MIN_IMAGES = 16
MIN_CLASS_IMAGES = 8  # a class of a conditional run needs at least this many pictures
DEFAULT_DATA_ROOT = Path(os.environ.get("GANFORGE_CACHE", Path.home() / ".cache" / "ganforge"))


@dataclass
class ImageData:
    images: torch.Tensor  # (N, C, H, W) uint8
    name: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    labels: torch.Tensor | None = None  # class indices (N,): the built-in datasets' labels, a conditional folder's subfolders
    files: dict[str, str] | None = None  # a folder's pictures: relative path -> hash of the file's bytes
    classes: tuple[str, ...] = ()  # the names of the classes that `labels` index

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    def __len__(self) -> int:
        return self.images.shape[0]

    def skip_summary(self, first: int = 5) -> str | None:
        if not self.skipped:
            return None
        names = ", ".join(Path(f).name for f, _ in self.skipped[:first])
        more = f" and {len(self.skipped) - first} more" if len(self.skipped) > first else ""
        return f"Skipped {len(self.skipped)} unreadable file(s): {names}{more}."


def is_builtin(spec: str) -> bool:
    return spec in BUILTIN_DATASETS


def default_size(spec: str) -> int:
    return 32 if is_builtin(spec) else 64


def dataset_name(spec: str) -> str:
    """A short, filesystem-safe name for run folders: 'digits', or the folder's own name."""
    if is_builtin(spec):
        return spec
    name = Path(spec).resolve().name or "data"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40]


def check_size(size: int) -> None:
    if size < 16 or size > 512 or size & (size - 1):
        raise GanforgeError(f"--size must be a power of two from 16 to 512, not {size}.")


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """Resize so the short side is `size`, then crop the centre square."""
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if img.mode == "RGBA":  # resampled premultiplied, so that the colour of invisible pixels cannot bleed into the edges
        return fit_square(img.convert("RGBa"), size).convert("RGBA")
    img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=2.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def _decode(path: Path, size: int, alpha: bool = False) -> tuple[np.ndarray, str]:
    """The picture at training size (H, W, 3), or (H, W, 4) with `alpha`, and a hash of the file's
    bytes (read once for both)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GanforgeError(f"{path} could not be read ({exc.strerror or type(exc).__name__}).") from None
    pixels = np.asarray(fit_square(load_image(path, draft_size=size, data=data, alpha=alpha), size))
    if alpha:  # invisible pixels all alike (transparent black), whatever colour the file kept under them
        pixels = np.where(pixels[..., 3:] == 0, 0, pixels).astype(np.uint8)
    return pixels, hashlib.blake2b(data, digest_size=12).hexdigest()


def find_image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))


def class_folders(folder: Path, files: list[Path]) -> tuple[tuple[str, ...], list[int]]:
    """A conditional run's classes: the immediate subfolders of `folder` that hold pictures, by name,
    and each file's class index. Pictures outside a class folder are refused, not guessed."""
    loose = [f for f in files if f.parent == folder]
    if loose:
        raise GanforgeError(f"--conditional takes each subfolder of {folder} as a class, but {len(loose)} picture(s) lie in the folder itself "
                            f"(such as {loose[0].name}); move them into a class subfolder.")
    names = sorted({f.relative_to(folder).parts[0] for f in files})
    if len(names) < 2:
        raise GanforgeError(f"--conditional needs at least two classes, one subfolder of {folder} each; "
                            f"it has {'only ' + repr(names[0]) if names else 'none'}.")
    index = {name: i for i, name in enumerate(names)}
    return tuple(names), [index[f.relative_to(folder).parts[0]] for f in files]


def load_folder(folder: str | os.PathLike, size: int, channels: int | None = None, workers: int | None = None,
                conditional: bool = False, transparent: bool = False) -> ImageData:
    """The pictures in `folder` (and its subfolders); `conditional`: with each immediate subfolder as
    a class; `transparent`: RGBA, four channels, instead of composited on white."""
    folder = Path(folder)
    if not folder.exists():
        raise GanforgeError(f"{folder}: no such folder or built-in dataset (built-ins: {', '.join(BUILTIN_DATASETS)}).")
    if not folder.is_dir():
        raise GanforgeError(f"{folder} is a file; give a folder of images or a built-in dataset name.")
    files = find_image_files(folder)
    if not files:
        raise GanforgeError(f"{folder} holds no image files ({', '.join(e.lstrip('.') for e in ('.jpg', '.png', '.webp', '.bmp', '.gif', '.tif'))}).")
    classes, file_labels = class_folders(folder, files) if conditional else ((), None)

    def decode(path):
        try:
            return _decode(path, size, transparent), None
        except GanforgeError as exc:
            return None, str(exc)

    # Pillow releases the GIL while decoding (and hashlib while hashing), so threads use every core.
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(decode, files))
    arrays = [r[0] for r, _ in results if r is not None]
    skipped = [(str(f), why) for f, (r, why) in zip(files, results) if r is None]
    fingerprint = {f.relative_to(folder).as_posix(): r[1] for f, (r, _) in zip(files, results) if r is not None}
    if not arrays:
        raise GanforgeError(f"None of the {len(files)} image files in {folder} could be decoded.")
    if len(arrays) < MIN_IMAGES:
        raise GanforgeError(f"Need at least {MIN_IMAGES} usable images, but {folder} has only {len(arrays)}.")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
    labels = None
    if conditional:
        labels = torch.tensor([y for y, (r, _) in zip(file_labels, results) if r is not None])
        _check_classes(folder, classes, labels)
    images = images if transparent else _set_channels(images, channels)
    return ImageData(images, dataset_name(str(folder)), skipped, labels=labels, files=fingerprint, classes=classes)


def _check_classes(folder: Path, classes: tuple[str, ...], labels: torch.Tensor) -> None:
    counts = torch.bincount(labels, minlength=len(classes)).tolist()
    few = [(name, n) for name, n in zip(classes, counts) if n < MIN_CLASS_IMAGES]
    if few:
        listed = ", ".join(f"{name!r} has {n}" for name, n in few[:3]) + (" ..." if len(few) > 3 else "")
        raise GanforgeError(f"--conditional needs at least {MIN_CLASS_IMAGES} usable pictures in every class subfolder of {folder}: {listed}.")


def compare_listings(before: dict, now: dict) -> tuple[int, int, int]:
    """(added, removed, changed) pictures between two fingerprints {relative path: content hash}."""
    added = sum(1 for f in now if f not in before)
    removed = sum(1 for f in before if f not in now)
    changed = sum(1 for f in now if f in before and now[f] != before[f])
    return added, removed, changed


def _set_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """(N, 3, H, W) -> the requested channel count; None detects all-gray data as one channel."""
    if channels is None:
        gray = bool((images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all())
        channels = 1 if gray else 3
    if channels == 3:
        return images if images.shape[1] == 3 else images.expand(-1, 3, -1, -1).contiguous()
    if channels == 1:
        if images.shape[1] == 1:
            return images
        return luma(images.float()).round().clamp(0, 255).to(torch.uint8)
    raise GanforgeError(f"--channels must be 1 or 3, not {channels}.")


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, h, w) -> uint8 (N, C, size, size) with antialiased bicubic resampling."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = torch.nn.functional.interpolate(images.float(), size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def load_digits_data(size: int, channels: int | None) -> ImageData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 8x8 pixels of ink density 0..16: light strokes on black, as in MNIST.
    images = torch.from_numpy((digits.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)
    images = resize_batch(images, size)
    return ImageData(_set_channels(images, channels or 1), "digits", labels=torch.from_numpy(digits.target),
                     classes=tuple(str(i) for i in range(10)))


def load_torchvision_data(spec: str, size: int, channels: int | None, root: Path) -> ImageData:
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[spec]
    try:
        ds = cls(root=str(root), train=True, download=True)
    except Exception as exc:
        raise GanforgeError(
            f"Could not load {spec} from {root} or download it ({exc}); pass --data-root pointing at an existing copy."
        ) from None
    data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
    images = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)  # (N, C, h, w)
    images = resize_batch(images.contiguous(), size)
    labels = torch.as_tensor(np.asarray(ds.targets))
    classes = tuple(str(i) for i in range(10)) if spec == "mnist" else tuple(ds.classes)
    return ImageData(_set_channels(images, channels), spec, labels=labels, classes=classes)


def load_data(spec: str, size: int, channels: int | None = None, data_root: str | os.PathLike | None = None,
              conditional: bool = False, transparent: bool = False) -> ImageData:
    """`spec` is a folder or the name of a built-in dataset; `conditional`: a folder's subfolders are
    its classes (the built-ins always carry theirs); `transparent`: a folder's pictures keep their
    alpha channel (RGBA)."""
    check_size(size)
    if transparent and spec in BUILTIN_DATASETS:
        raise GanforgeError(f"--transparent keeps the alpha channel of a folder's pictures; {spec} has none.")
    if spec == "digits":
        return load_digits_data(size, channels)
    if spec in BUILTIN_DATASETS:
        return load_torchvision_data(spec, size, channels, Path(data_root) if data_root else DEFAULT_DATA_ROOT)
    return load_folder(spec, size, channels, conditional=conditional, transparent=transparent)


class BatchSampler:
    """Batches as a pure function of (seed, step): shuffled epochs, optional flips.

    Because nothing is carried between steps, a resumed run draws exactly the batches the
    uninterrupted run would have drawn, with no sampler state to checkpoint.
    """

    def __init__(self, data: ImageData, batch_size: int, seed: int, flip: bool):
        if batch_size > len(data):
            raise GanforgeError(f"--batch-size {batch_size} is larger than the dataset ({len(data)} images).")
        self.data, self.batch_size, self.seed, self.flip = data, batch_size, seed, flip
        self.per_epoch = len(data) // batch_size  # drop the ragged last batch
        self._epoch, self._perm = -1, None

    def _indices(self, step: int) -> torch.Tensor:
        epoch, offset = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(len(self.data), generator=g)
        return self._perm[offset * self.batch_size : (offset + 1) * self.batch_size]

    def labels(self, step: int) -> torch.Tensor:
        """The class labels (B,) of the pictures in `batch(step)`."""
        return self.data.labels[self._indices(step)]

    def batch(self, step: int) -> torch.Tensor:
        """uint8 (B, C, H, W) for training step `step` (0-based)."""
        batch = self.data.images[self._indices(step)]
        if self.flip:
            g = torch.Generator().manual_seed(self.seed * 7_919 + step)
            mask = torch.rand(self.batch_size, generator=g) < 0.5
            batch[mask] = batch[mask].flip(-1)
        return batch
