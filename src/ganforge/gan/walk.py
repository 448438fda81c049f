"""Latent walks: videos that glide through a generator's latent space.

    from ganforge.gan.walk import interpolate, walk_frames
    interpolate("runs/00000-digits", "walk.mp4", seeds="1,2,3", loop=True, size=128)
    frames = walk_frames("runs/00000-digits", n=4, grid="2x4")   # (T, C, H, W) in [-1, 1]

A walk visits its points in order, `frames_per_point` frames from one to the next, along the
great circle between their directions (`slerp`) while the length moves linearly. A straight line
would cut through the middle of the latent ball: halfway between two independent Gaussian points
its length is only about 1/sqrt(2) of the length of almost every latent the generator was trained
on, and its pictures drift towards the mean picture there (a little less contrast on a digits run:
pixel std 0.646 at straight midpoints against 0.669 at the points and 0.667 at slerp's).

Without `loop` the last frame is the last point, so T = (P - 1) * F + 1 frames; with it the walk
returns to the first point and stops one frame short of it, T = P * F, so that the video plays
round without showing that picture twice at the seam.

Which points. The point of seed S in cell k (row-major) of a ROWSxCOLUMNS grid is latent k of
`sampling.latents(ROWS * COLUMNS, latent_dim, S)`, i.e. picture k of `ganforge sample --seed S
-n ROWS*COLUMNS` (with the same --truncation and --class): preview the points with `ganforge
sample` to choose seeds. A 1x1 walk takes `latents(1, latent_dim, S)` for each seed. `-n P
--seed S` is short for `--seeds S,S+1,...,S+P-1`. A class-conditional generator's cell k walks
within class k % K (`sampling.labels_for`), as `ganforge sample` draws picture k, unless --class
picks one class for all cells.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.devices import DEVICE
from ganforge.errors import GanforgeError
from ganforge.gan.config import SEED_RANGE
from ganforge.gan.sampling import CLASS, TRUNCATION, generate, labels_for, latents, truncate
from ganforge.options import Opt, check
from ganforge.video import WrittenVideo

DEFAULT_POINTS = 4  # when neither --seeds, -n nor --from-latents says
MAX_CELLS = 64  # per side of --grid
PAD = 2  # pixels around and between a grid's cells, as in `ganforge sample`'s grids


def parse_grid(text: str) -> tuple[int, int]:
    """"2x3" -> (2, 3): rows and columns; one sentence for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m or not all(1 <= int(v) <= MAX_CELLS for v in m.groups()):
        raise GanforgeError(f"--grid takes ROWSxCOLUMNS, each from 1 to {MAX_CELLS}, like 2x3; not {text!r}.")
    return int(m.group(1)), int(m.group(2))


def parse_seeds(seeds: str | Sequence[int]) -> list[int]:
    """"1,2,3" (or [1, 2, 3]) -> [1, 2, 3]; one sentence for anything but whole numbers in the seed range."""
    items = [s.strip() for s in seeds.split(",")] if isinstance(seeds, str) else list(seeds)
    try:
        out = [int(s) if isinstance(s, str) else s for s in items]
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in out):
            raise ValueError
    except ValueError:
        raise GanforgeError(f"--seeds takes whole numbers separated by commas, like 1,2,3; not {seeds!r}.") from None
    for s in out:
        if abs(s) > SEED_RANGE:
            raise GanforgeError(f"--seeds: {s} is outside the seed range (-{SEED_RANGE} to {SEED_RANGE}).")
    return out


def _check_seeds(value) -> None:
    parse_seeds(value)


def _check_grid(value) -> None:
    parse_grid(value)


WALK_CLASS = replace(CLASS, help="Walk within this class of a class-conditional generator, by name or index, in every cell.",
                     default_text="cell k walks class k % K")


def load_latent(source: str | os.PathLike | np.ndarray | torch.Tensor, latent_dim: int) -> torch.Tensor:
    """A latent vector (latent_dim,) from a .npy file (or an array) of shape (latent_dim,) or
    (1, latent_dim), as `ganforge project` writes them; one sentence naming the file otherwise."""
    if isinstance(source, (np.ndarray, torch.Tensor)):
        name, array = "a latent array", np.asarray(source.detach().cpu() if isinstance(source, torch.Tensor) else source)
    else:
        name = str(source)
        path = Path(source)
        if not path.exists():
            raise GanforgeError(f"{name}: no such latents file (--from-latents).")
        if path.is_dir():
            raise GanforgeError(f"{name} is a folder, not a .npy latents file (--from-latents).")
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:  # numpy raises ValueError, OSError, EOFError, ... for what is not .npy
            why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise GanforgeError(f"{name} is not a readable .npy file ({why}); save a latent with numpy.save.") from None
        if not isinstance(array, np.ndarray):  # an .npz archive of several arrays
            array.close()
            raise GanforgeError(f"{name} is an .npz archive of several arrays; --from-latents takes .npy files of one latent each.")
    if array.dtype.kind not in "fiu":
        raise GanforgeError(f"{name} holds {array.dtype} values, not the numbers of a latent vector.")
    if array.shape not in ((latent_dim,), (1, latent_dim)):
        raise GanforgeError(f"{name} holds an array of shape {tuple(array.shape)}, but this generator's latent vectors have "
                            f"{latent_dim} numbers: shape ({latent_dim},) or (1, {latent_dim}).")
    if not np.isfinite(array).all():
        raise GanforgeError(f"{name} holds NaN or infinite values, not a latent vector.")
    return torch.from_numpy(array.astype(np.float32).reshape(latent_dim))


def _latent_sources(from_latents) -> list:
    if isinstance(from_latents, (str, os.PathLike)):
        items = [s.strip() for s in os.fspath(from_latents).split(",")]
        if not all(items):
            raise GanforgeError(f"--from-latents takes .npy files separated by commas, like a.npy,b.npy; not {os.fspath(from_latents)!r}.")
        return items
    return list(from_latents)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Points between a and b (..., D) at fractions t (T,) -> (T, ..., D): the direction moves at an
    even pace along the great circle from a's to b's, the length linearly from |a| to |b|. t = 0
    and t = 1 give a and b exactly."""
    t = torch.as_tensor(t, dtype=a.dtype).reshape(-1, *[1] * a.dim())  # (T, 1, ..., 1)
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    # A zero vector has no direction: take the other's, so the walk is a straight line to or from it.
    ua, ub = torch.where(na > 0, ua, ub), torch.where(nb > 0, ub, ua)
    omega = torch.acos((ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    straight = sin < 1e-6  # (nearly) the same direction: the arc is a straight line to within rounding
    safe = torch.where(straight, torch.ones_like(sin), sin)
    wa = torch.where(straight, 1 - t, torch.sin((1 - t) * omega) / safe)
    wb = torch.where(straight, t, torch.sin(t * omega) / safe)
    direction = wa * ua + wb * ub
    out = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12) * ((1 - t) * na + t * nb)
    return torch.where(t == 0, a, torch.where(t == 1, b, out))


def walk_latents(points: torch.Tensor, frames_per_point: int, loop: bool = False) -> torch.Tensor:
    """points (P, ..., D) -> the walk through them (T, ..., D): F frames from each point to the next,
    T = (P - 1) * F + 1 ending on the last point, or with `loop` T = P * F, back towards the first."""
    if len(points) < 2:
        raise GanforgeError("a walk needs at least two points: give two or more --seeds or --from-latents files, or -n 2 or more.")
    if frames_per_point < 1:
        raise GanforgeError(f"--frames-per-point must be at least 1, not {frames_per_point}.")
    targets = torch.cat([points[1:], points[:1]]) if loop else points[1:]
    t = torch.arange(frames_per_point, dtype=points.dtype) / frames_per_point
    segments = [slerp(a, b, t) for a, b in zip(points, targets)]
    return torch.cat(segments if loop else segments + [points[-1:]])


def resize(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """(N, C, h, w) in [-1, 1] -> (N, C, size, size·w/h). A whole multiple repeats each pixel
    (nearest): a tiny picture stays crisp and every pixel keeps its value, where smooth scaling
    would blur it and invent in-between shades. Any other size is smooth (bicubic, antialiased),
    since nearest at an uneven factor makes some pixels wider than others, which shimmers as the
    picture moves."""
    h, w = images.shape[-2:]
    if size is None or size == h:
        return images
    if size % h == 0:
        k = size // h
        return images.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)
    out = F.interpolate(images, size=(size, max(1, round(size * w / h))), mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(-1.0, 1.0)


def tile(cells: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """cells (T, rows·cols, C, h, w) -> frames (T, C, H, W): the cells row by row, PAD black pixels
    around and between them; a single cell as it is."""
    T, n, C, h, w = cells.shape
    if n == 1:
        return cells[:, 0]
    out = cells.new_full((T, C, rows * (h + PAD) + PAD, cols * (w + PAD) + PAD), -1.0)
    for k in range(n):
        y, x = PAD + (k // cols) * (h + PAD), PAD + (k % cols) * (w + PAD)
        out[:, :, y : y + h, x : x + w] = cells[:, k]
    return out


@dataclass
class Walk:
    """A planned walk: the latents of every frame and cell, ready to draw."""

    generator: nn.Module
    z: torch.Tensor  # (T, cells, latent_dim), truncation applied
    labels: torch.Tensor | None  # (cells,) class of each cell of a conditional generator
    rows: int
    cols: int
    size: int | None  # each cell's height in pixels; None: the generator's own
    points: int  # how many points the walk visits

    def __len__(self) -> int:
        return len(self.z)

    def batches(self, batch: int = 256) -> Iterator[torch.Tensor]:
        """The frames, a few at a time: (B, C, H, W) in [-1, 1] on the CPU."""
        T, cells, _ = self.z.shape
        per = max(1, batch // cells)
        if self.size:  # a bound on memory for large --size: about 2**25 floats a batch
            per = max(1, min(per, 2**25 // (cells * 3 * self.size * self.size)))
        for i in range(0, T, per):
            z = self.z[i : i + per]  # (b, cells, D)
            labels = None if self.labels is None else self.labels.repeat(len(z))
            images = resize(generate(self.generator, z.flatten(0, 1), labels, batch), self.size)  # (b·cells, C, h, w)
            yield tile(images.unflatten(0, (len(z), cells)), self.rows, self.cols)

    def arrays(self, batch: int = 256) -> Iterator[np.ndarray]:
        """The frames as uint8 arrays (H, W, C), one at a time, for `ganforge.video.write_video`;
        pictures with transparency on a checkerboard, as grids show them."""
        from ganforge.images import for_viewing

        for frames in self.batches(batch):
            yield from for_viewing(frames, square=8).permute(0, 2, 3, 1).numpy()

    def tensor(self, batch: int = 256) -> torch.Tensor:
        """All frames (T, C, H, W) in [-1, 1]."""
        return torch.cat(list(self.batches(batch)))


def plan_walk(source: str | os.PathLike,
              seeds: Annotated[str | Sequence[int] | None,
                               Opt("Walk through the points of these seeds, in order.", metavar="S1,S2,...", check=_check_seeds)] = None,
              n: Annotated[int | None, Opt("Walk through this many random points, those of --seeds SEED,SEED+1,...", min=2, max=10_000,
                                           short="-n", long="--points", default_text=f"{DEFAULT_POINTS}")] = None,
              seed: Annotated[int, Opt("The first seed of -n's points.", min=-SEED_RANGE, max=SEED_RANGE)] = 0,
              from_latents: Annotated[str | Sequence | None,
                                      Opt("Walk between latent vectors saved as .npy files (shape (latent_dim,) or (1, latent_dim)), "
                                          "such as `ganforge project` writes.", metavar="A.npy,B.npy,...")] = None,
              frames_per_point: Annotated[int, Opt("Frames from one point to the next.", min=1, max=100_000)] = 24,
              loop: Annotated[bool, Opt("Walk from the last point back to the first, so that the video loops without a jump "
                                        "(or a repeated frame).")] = False,
              grid: Annotated[str, Opt("Show ROWSxCOLUMNS walks side by side; cell k's point for seed S is picture k of "
                                       "`ganforge sample --seed S -n ROWS*COLUMNS`.", metavar="RxC", check=_check_grid)] = "1x1",
              size: Annotated[int | None, Opt("Scale each picture to this height in pixels for viewing: a whole multiple of the "
                                              "generator's size keeps pixels crisp (nearest), others are smoothed (bicubic).",
                                              min=1, max=4096, default_text="the generator's size")] = None,
              truncation: Annotated[float, TRUNCATION] = 1.0,
              class_: Annotated[str | None, WALK_CLASS] = None,
              device: Annotated[str, DEVICE] = "auto") -> Walk:
    """Load the generator of `source` (a run folder, a generator .safetensors or a checkpoint .pt)
    and work out the latents of every frame; the module docstring says which points."""
    check(plan_walk, locals())
    given = [flag for flag, value in (("--seeds", seeds), ("-n", n), ("--from-latents", from_latents)) if value is not None]
    if len(given) > 1:
        raise GanforgeError(f"give the walk's points one way, with --seeds, -n or --from-latents, not {' and '.join(given)} together.")
    rows, cols = parse_grid(grid)
    cells = rows * cols
    seed_list = parse_seeds(seeds) if seeds is not None else None
    files = _latent_sources(from_latents) if from_latents is not None else None
    if (seed_list is not None and len(seed_list) < 2) or (files is not None and len(files) < 2):
        raise GanforgeError(f"a walk needs at least two points: give {'--seeds' if files is None else '--from-latents'} two or more "
                            f"{'seeds' if files is None else '.npy files'}, separated by commas.")

    from ganforge.devices import pick_device
    from ganforge.gan.checkpoint import load_generator

    target = pick_device(device)
    generator, cfg, _ = load_generator(source)
    labels = labels_for(cfg, cells, class_)  # refuses --class for an unconditional generator
    if files is not None:
        if cfg.classes and class_ is None and cells == 1:  # a latent found for one class means little in another
            raise GanforgeError("--from-latents on a class-conditional generator needs --class NAME|INDEX: the class the latents were "
                                "found for (ganforge project says which).")
        if cells > 1 and (labels is None or class_ is not None):
            raise GanforgeError(f"with --from-latents every cell of --grid {grid} would show the same walk (the files hold one); "
                                f"leave --grid out, or use a class-conditional generator without --class for a class per cell.")
        points = torch.stack([load_latent(f, cfg.latent_dim) for f in files])[:, None].expand(-1, cells, -1)  # (P, cells, D)
    else:
        if seed_list is None:
            seed_list = [seed + i for i in range(n or DEFAULT_POINTS)]
            for s in (seed_list[0], seed_list[-1]):
                if abs(s) > SEED_RANGE:
                    raise GanforgeError(f"-n {len(seed_list)} from --seed {seed} goes past the seed range (-{SEED_RANGE} to {SEED_RANGE}).")
        points = torch.stack([latents(cells, cfg.latent_dim, s) for s in seed_list])  # (P, cells, D)
    z = truncate(walk_latents(points, frames_per_point, loop), truncation)
    return Walk(generator.to(target), z, labels, rows, cols, size, len(points))


def walk_frames(source: str | os.PathLike, **settings) -> torch.Tensor:
    """Every frame of a walk (T, C, H, W) in [-1, 1]; `settings` are plan_walk's."""
    return plan_walk(source, **settings).tensor()


@dataclass(frozen=True)
class WalkVideo(WrittenVideo):
    """What `interpolate` wrote."""

    points: int


def interpolate(source: str | os.PathLike, output: str | os.PathLike,
                fps: Annotated[int, Opt("Frames per second of the video.", min=1, max=240)] = 24,
                progress: bool = False, **settings) -> WalkVideo:
    """Write a latent walk of `source`'s generator to `output`: an .mp4, a looping .gif, or a folder
    of numbered PNGs (no suffix or an existing folder). `settings` are plan_walk's. The output is
    checked (suffix, ffmpeg, folder) before anything is computed. `progress`: a tqdm bar on stderr
    while frames are drawn, shown only on a terminal."""
    from ganforge.video import check_video_path, write_video

    check(interpolate, locals())
    kind = check_video_path(output, fps)
    walk = plan_walk(source, **settings)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(walk), unit="frame", dynamic_ncols=True, disable=None, leave=False)
    shape = []  # of the frames, for the report

    def drawn():
        for frame in walk.arrays():
            shape[:] = frame.shape
            yield frame
            if bar is not None:
                bar.update(1)

    try:
        count = write_video(drawn(), output, fps)
    finally:
        if bar is not None:
            bar.close()
    h, w = shape[0], shape[1]
    if kind == "mp4":  # odd sides were padded to even
        h, w = h + h % 2, w + w % 2
    return WalkVideo(Path(output), kind, count, w, h, fps, walk.points)


def frame_count(points: int, frames_per_point: int, loop: bool) -> int:
    """How many frames a walk through `points` points has."""
    return points * frames_per_point if loop else (points - 1) * frames_per_point + 1


