"""Writing a sequence of frames as an MP4, a GIF or a folder of numbered PNGs.

    from ganforge.video import write_video
    write_video(frames, "walk.mp4", fps=24)     # frames: uint8 arrays (H, W), (H, W, 1|3|4)
    write_video(frames, "walk.gif", fps=24)     # loops forever
    write_video(frames, "frames/", fps=24)      # frames/frame-00000.png, ...

The suffix picks the format (`video_kind`): .mp4 (H.264 through imageio-ffmpeg's ffmpeg), .gif
(Pillow), and a folder for no suffix, a trailing slash or an existing folder. `check_video_path`
refuses an unknown suffix, or an MP4 without ffmpeg, before any frame is made.

MP4 and GIF are written under a temporary name beside the target and renamed into place when
complete, so a killed run leaves the old file or the new one, never half a video under the real
name; each PNG of a folder is written the same way.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganforge.errors import GanforgeError
from ganforge.fileio import atomic_write, make_folder, reason, write_error

VIDEO_SUFFIXES = (".mp4", ".gif")
GIF_MAX_FPS = 50  # GIF delays are whole hundredths of a second, and browsers play any delay under 2 as 10
FRAME_NAME = "frame-{:05d}.png"
_FRAME_FILE = re.compile(r"^frame-(\d{5,})\.png$")


@dataclass(frozen=True)
class WrittenVideo:
    """A video that was written: what `interpolate` and `stylize_video` return (with fields of their own)."""

    path: Path
    kind: str  # "mp4", "gif" or "frames"
    frames: int
    width: int
    height: int
    fps: float

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def video_kind(path: str | os.PathLike) -> str:
    """"mp4", "gif" or "frames" (a folder of PNGs) for an output path; one sentence for any other suffix."""
    text = os.fspath(path)
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir() or path.suffix == "":
        return "frames"
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return path.suffix.lower()[1:]
    raise GanforgeError(f"{text}: unknown video suffix {path.suffix!r}; use .mp4, .gif, or a folder name without a suffix "
                        f"(or ending in /) for numbered PNG frames.")


def ffmpeg_exe() -> str:
    """The ffmpeg that imageio-ffmpeg finds (its own, or IMAGEIO_FFMPEG_EXE); one sentence when there is none."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        if not (os.path.isfile(exe) or shutil.which(exe)):  # IMAGEIO_FFMPEG_EXE is taken at its word
            raise RuntimeError(exe)
        return exe
    except (ImportError, RuntimeError):
        raise GanforgeError("writing an MP4 needs ffmpeg, which was not found: pip install imageio-ffmpeg (or point IMAGEIO_FFMPEG_EXE "
                            "at an ffmpeg), or write a .gif or a folder of PNG frames instead.") from None


def check_video_path(path: str | os.PathLike, fps: float = 24) -> str:
    """Everything about the output that can be refused before any work: the suffix, ffmpeg for an
    MP4 and the frame rate. Returns the kind, as `video_kind`."""
    kind = video_kind(path)
    if not (isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0 < fps <= 1000):
        raise GanforgeError(f"--fps must be a number above 0 and at most 1000, not {fps!r}.")
    if kind == "gif" and fps > GIF_MAX_FPS:
        raise GanforgeError(f"--fps {fps:g} is too fast for a GIF: its frames last whole hundredths of a second and browsers slow down "
                            f"anything above {GIF_MAX_FPS} frames per second; use --fps {GIF_MAX_FPS} or less, or write an .mp4.")
    if kind == "mp4":
        ffmpeg_exe()
    return kind


def as_rgb(frame: np.ndarray, keep_alpha: bool = False) -> np.ndarray:
    """A uint8 frame (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) as (H, W, 3) RGB; gray is repeated
    into three channels, and alpha is composited on white unless `keep_alpha`."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise GanforgeError(f"video frames must be uint8 arrays (0..255), not {frame.dtype}.")
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim != 3 or frame.shape[-1] not in (1, 3, 4) or 0 in frame.shape:
        raise GanforgeError(f"a video frame must be an array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), not of shape {frame.shape}.")
    if frame.shape[-1] == 1:
        return np.repeat(frame, 3, axis=-1)
    if frame.shape[-1] == 4 and not keep_alpha:
        import torch

        from ganforge.images import composite

        return composite(torch.from_numpy(frame).permute(2, 0, 1)[None], 255)[0].permute(1, 2, 0).numpy()
    return frame


def even_size(frame: np.ndarray) -> np.ndarray:
    """The frame grown by repeating its last row and/or column to even sides: yuv420p halves the
    colour resolution, so H.264 in the pixel format browsers play needs even sides. Repeating an
    edge keeps every pixel as it was, where scaling (ffmpeg's usual fix) would blur small frames."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else frame


def _is_gray(frame: np.ndarray) -> bool:
    return np.ndim(frame) == 2 or np.shape(frame)[-1] == 1


def _same_size(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    size = None
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if size is None:
            size = frame.shape[:2]
        elif frame.shape[:2] != size:
            raise GanforgeError(f"every frame of a video must have the same size: frame {i} is {frame.shape[1]}x{frame.shape[0]}, "
                                f"the first was {size[1]}x{size[0]}.")
        yield frame


def _temporary(path: Path) -> Path:
    # The same shape of name as fileio.atomic_write's, so fileio.temporary_target recognises leftovers.
    return path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"


def _write_mp4(frames: Iterator[np.ndarray], path: Path, fps: float, crf: int) -> int:
    first = next(frames, None)
    if first is None:
        raise GanforgeError(f"{path}: no frames to write.")
    first = even_size(as_rgb(first))
    h, w = first.shape[:2]
    tmp = _temporary(path)
    # imageio-ffmpeg's own writer neither checks how ffmpeg ended nor keeps what it said, so ffmpeg
    # (the one imageio-ffmpeg finds) is run here: raw RGB in, H.264 out. -f mp4 because the temporary
    # name does not end in .mp4; +faststart puts the index first, so browsers start playing at once.
    cmd = [ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-",
           "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), "-movflags", "+faststart", "-f", "mp4", str(tmp)]
    count = 0
    with tempfile.TemporaryFile() as log:
        try:
            # A session of its own: Ctrl-C reaches ganforge, which stops ffmpeg, instead of ffmpeg
            # dying first and its broken pipe being taken for a failure.
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        except OSError as exc:
            raise GanforgeError(f"could not start ffmpeg ({cmd[0]}): {(exc.strerror or type(exc).__name__).lower()}.") from None
        try:
            try:
                for frame in _chain(first, frames):
                    proc.stdin.write(np.ascontiguousarray(even_size(as_rgb(frame))).tobytes())
                    count += 1
                proc.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg has stopped; what it said is read below
            if proc.wait() != 0:
                log.seek(0)
                said = log.read().decode("utf-8", "replace").strip().splitlines()
                why = said[-1].strip()[:200] if said else f"exit code {proc.returncode}"
                raise GanforgeError(f"could not write {path}: ffmpeg failed ({why}).")
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise write_error(path, exc) from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with contextlib.suppress(OSError):
                proc.stdin.close()
            tmp.unlink(missing_ok=True)
    return count


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def gif_durations(n: int, fps: float) -> list[int]:
    """Milliseconds per frame, in the whole hundredths GIF stores, alternating so that the
    average rate is `fps` (24 fps: 40, 40, 50, 40, 40, 50, ... rather than 40 throughout, 25 fps)."""
    ends = [round((i + 1) * 100 / fps) * 10 for i in range(n)]
    return [max(end - start, 20) for start, end in zip([0] + ends[:-1], ends)]


def _write_gif(frames: Iterator[np.ndarray], path: Path, fps: float) -> int:
    from PIL import Image

    def picture(frame: np.ndarray) -> Image.Image:
        # A gray frame stays gray: 256 levels fit a GIF's palette exactly, where RGB needs quantizing.
        rgb = as_rgb(frame)
        return Image.fromarray(rgb[..., 0], "L") if _is_gray(frame) else Image.fromarray(rgb, "RGB")

    pictures = [picture(f) for f in frames]
    if not pictures:
        raise GanforgeError(f"{path}: no frames to write.")
    durations = gif_durations(len(pictures), fps)
    atomic_write(path, lambda f: pictures[0].save(f, format="GIF", save_all=True, append_images=pictures[1:], duration=durations,
                                                  loop=0))
    return len(pictures)


def _write_frames(frames: Iterator[np.ndarray], folder: Path) -> int:
    from PIL import Image

    count = 0
    for frame in frames:
        rgb = as_rgb(frame, keep_alpha=True)
        img = Image.fromarray(rgb[..., 0], "L") if _is_gray(frame) else Image.fromarray(rgb)  # a gray PNG is a third the size
        atomic_write(folder / FRAME_NAME.format(count), lambda f, img=img: img.save(f, format="PNG"))  # makes the folder
        count += 1
    if count == 0:
        raise GanforgeError(f"{folder}: no frames to write.")
    # Frames beyond this walk's end, left by an earlier, longer one, would play on after it.
    try:
        for old in folder.iterdir():
            m = _FRAME_FILE.match(old.name)
            if m and int(m.group(1)) >= count:
                old.unlink()
    except OSError as exc:
        raise GanforgeError(f"could not remove old frames from {folder}: {reason(exc)}.") from None
    return count


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float = 24, crf: int = 18) -> int:
    """Write uint8 frames (H, W), (H, W, 1|3|4), all of one size, to `path`: an .mp4 (H.264,
    yuv420p, `crf` its quality: 0 lossless, 18 about visually lossless, 51 worst), a looping .gif,
    or a folder of frame-00000.png, ... (for no suffix, a trailing slash or an existing folder).
    Gray frames become RGB in an MP4; odd sides are padded to even there. Returns the number of
    frames written."""
    kind = check_video_path(path, fps)
    make_folder(Path(path).parent)  # only now: a walk refused after the check leaves no folder behind
    frames = _same_size(frames)
    if kind == "mp4":
        return _write_mp4(frames, Path(path), fps, crf)
    if kind == "gif":
        return _write_gif(frames, Path(path), fps)
    return _write_frames(frames, Path(path))
