"""Video style transfer that does not flicker (Ruder, Dosovitskiy and Brox, "Artistic style transfer
for videos", GCPR 2016).

    ganforge stylize clip.mp4 starry_night.jpg -o out.mp4
    ganforge stylize frames/ starry_night.jpg --size 384 -o styled/ --resume

    import ganforge
    ganforge.stylize_video("clip.mp4", "starry_night.jpg", "out.mp4", size=384)

Stylising every frame on its own makes a video flicker: each optimisation wanders to its own
arrangement of strokes. Here frame 0 is stylised as a still picture (`ganforge.stylize` with the
same settings). Every later frame starts from the previous result warped onto it along the optical
flow of the input frames, and is optimised for `frame_steps` steps at full size with one more
loss: the mean over pixels of c * (x - warped)^2, where c is 0 where the flow cannot be trusted
(pixels that the previous frame did not show and motion boundaries, found by comparing the
forward and the backward flow) and 1 elsewhere.

Frames are written as they are made: into the output folder, or for an .mp4 or a .gif into a
folder of PNGs beside it (`.out.mp4.frames/`) that becomes the video at the end and is then
removed. `resume` continues after the last frame written, starting from that frame as saved
(uint8); an uninterrupted run also starts each frame from the previous one as saved, so the two
give identical frames. An .mp4 input's sound is copied into an .mp4 output when ffmpeg can.
"""

from __future__ import annotations

import inspect
import itertools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ganforge.devices import pick_device
from ganforge.errors import GanforgeError
from ganforge.fileio import make_folder, reason, write_error
from ganforge.images import is_image_file, load_image, luma, save_image_atomic
from ganforge.options import Opt, check
from ganforge.style import StyleProgress, fit_long_edge, stylize
from ganforge.video import FRAME_NAME, WrittenVideo, check_video_path, ffmpeg_exe, video_kind, write_video

VIDEO_INPUTS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".gif")  # besides a folder of frames
FOLDER_FPS = 24.0  # a folder of frames has no frame rate of its own
# stylize's parameters that stylize_video sets itself, per frame
_PER_FRAME = ("content", "styles", "save_path", "callback", "log", "start", "extra_losses")
_FRAME_FILE = re.compile(r"^frame-(\d{5,})\.png$")


@dataclass
class FrameProgress:
    """What the progress callback receives after every finished frame."""

    index: int  # 0-based, as in the frame's file name (frame-00000.png)
    total: int  # frames in the video
    seconds: float  # spent on this frame
    losses: dict[str, float]  # the weighted terms at its last step: content, style, tv, temporal (after frame 0), total
    path: Path  # where the frame was written (for an .mp4 or a .gif, in the folder that is removed at the end)
    _image: Callable[[], Image.Image] = field(repr=False)

    def image(self) -> Image.Image:
        """The stylised frame."""
        return self._image()


@dataclass(frozen=True)
class StyledVideo(WrittenVideo):
    """What `stylize_video` wrote."""

    resumed_from: int  # frames that an earlier run had written
    audio: bool  # the input's sound was copied in


# --------------------------------------------------------------------------------------------------
# Optical flow, warping and occlusions: pure functions of numpy arrays


def _cv2():
    try:
        import cv2
    except ImportError:
        raise GanforgeError('video style transfer needs OpenCV for optical flow: pip install "opencv-python-headless>=4.8".') from None
    return cv2


def _gray(picture: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    picture = np.ascontiguousarray(picture)
    return picture if picture.ndim == 2 else cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY)


def optical_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The dense optical flow from picture `a` to picture `b` (uint8 (H, W, 3) RGB or (H, W) gray):
    float32 (H, W, 2) of (dx, dy) in pixels such that a(x) shows what b shows at x + flow(x).
    OpenCV's DIS flow, "medium" preset: fast, and good on the large smooth motions of a camera."""
    cv2 = _cv2()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_gray(a), _gray(b), None)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` (H, W) or (H, W, C) sampled at x + flow(x) for every pixel x: with the flow from
    frame t to frame t-1, frame t-1's picture moved onto frame t.

    Bicubic, because a video warps each result again and again: bilinear sampling blurs a little
    at every sub-pixel move, and over 18 frames of a slow pan that blur built up past what 50
    steps restore (benchmarks/video_flicker.py: the style loss 2.85 against 2.53 bicubic at the
    same flicker). Bicubic can overshoot a little beyond the image's range. Positions outside the
    picture take its mirror image across the edge: repeating the edge pixel instead left the strip
    a pan uncovers streaked, which 50 steps did not paint over."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), grid_x + flow[..., 0], grid_y + flow[..., 1],
                     interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def occlusion_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """float32 (H, W): 1 where frame t-1, warped by `backward` (the flow from frame t to t-1), can
    be trusted at frame t, 0 elsewhere. `forward` is the flow from t-1 to t.

    Ruder et al.'s tests: a pixel is occluded in t-1 (newly shown at t) when following the
    backward flow and then the forward flow does not come back to it, beyond the flows'
    expected error; it is on a motion boundary where the backward flow changes fast; and it is
    new when the backward flow leads outside the picture (the edge a pan uncovers).
    """
    h, w = backward.shape[:2]
    there = warp(forward, backward)  # the forward flow at x + backward(x)
    round_trip = np.square(there + backward).sum(-1)
    occluded = round_trip > 0.01 * (np.square(there).sum(-1) + np.square(backward).sum(-1)) + 0.5
    du_dy, du_dx = np.gradient(backward[..., 0])
    dv_dy, dv_dx = np.gradient(backward[..., 1])
    boundary = du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2 > 0.01 * np.square(backward).sum(-1) + 0.002
    grid_x, grid_y = np.meshgrid(np.arange(w), np.arange(h))
    x, y = grid_x + backward[..., 0], grid_y + backward[..., 1]
    outside = (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)
    return (~(occluded | boundary | outside)).astype(np.float32)


def temporal_loss(previous: Tensor, mask: Tensor, weight: float) -> Callable[[Tensor], Tensor]:
    """The short-term temporal loss of Ruder et al.: x -> weight * mean of mask * (x - previous)^2
    over pixels and channels. previous: (1, 3, H, W), the last result warped onto this frame;
    mask: (1, 1, H, W), from `occlusion_mask`."""

    def loss(x: Tensor) -> Tensor:
        return weight * (mask * (x - previous).square()).mean()

    return loss


# --------------------------------------------------------------------------------------------------
# Reading frames


def is_video_source(path: str | os.PathLike) -> bool:
    """Whether `path` names a video or a folder of frames (for `ganforge stylize`'s CONTENT) rather
    than a picture: a folder, a video suffix, or a GIF with more than one frame."""
    path = Path(path)
    if path.is_dir():
        return True
    if path.suffix.lower() != ".gif":
        return path.suffix.lower() in VIDEO_INPUTS
    try:
        with Image.open(path) as img:
            return getattr(img, "n_frames", 1) > 1
    except (OSError, ValueError):
        return True  # a broken GIF: the video reader says what is wrong with it


@dataclass
class FrameSource:
    """An opened video or folder of frames: what is known before decoding, and the frames."""

    path: Path
    fps: float | None  # None for a folder
    total: int
    audio: bool  # a sound track that can be copied into an .mp4
    frames: Callable[[], Iterator[Image.Image]]  # RGB, decoded one at a time


def _natural(path: Path) -> list:
    """frame2.png before frame10.png."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _ffmpeg_reason(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return last.rsplit(": ", 1)[-1].rstrip(".").lower()[:200]


def open_frames(source: str | os.PathLike) -> FrameSource:
    """A video file (what imageio's ffmpeg reader reads, or a GIF) or a folder of pictures (PNG,
    JPG, ... in natural order of their names); one sentence when it cannot be read."""
    path = Path(source)
    if not path.exists():
        raise GanforgeError(f"{path}: no such file or folder.")
    if path.is_dir():
        return _open_folder(path)
    if path.suffix.lower() == ".gif":
        return _open_gif(path)
    if path.suffix.lower() in VIDEO_INPUTS:
        return _open_video(path)
    raise GanforgeError(f"{path} is neither a video ({', '.join(VIDEO_INPUTS)}) nor a folder of frames.")


def _open_folder(path: Path) -> FrameSource:
    files = sorted((p for p in path.iterdir() if p.is_file() and is_image_file(p) and not p.name.startswith(".")), key=_natural)
    if not files:
        raise GanforgeError(f"{path} holds no pictures to use as frames (PNG or JPG files, taken in the order of their names).")
    sizes = {}
    for f in files:  # headers only: a frame of another size is found before the work, not an hour into it
        try:
            with Image.open(f) as img:
                sizes.setdefault(img.size, f)
        except (OSError, ValueError) as exc:
            raise GanforgeError(f"{f} is not a readable image ({str(exc).strip() or type(exc).__name__}).") from None
        if len(sizes) > 1:
            (a, fa), (b, fb) = sizes.items()
            raise GanforgeError(f"the frames in {path} must all have one size: {fa.name} is {a[0]}x{a[1]} but {fb.name} is {b[0]}x{b[1]}.")
    return FrameSource(path, None, len(files), False, lambda: (load_image(f) for f in files))


def _open_gif(path: Path) -> FrameSource:
    try:
        with Image.open(path) as img:
            durations = []
            for i in range(getattr(img, "n_frames", 1)):
                img.seek(i)
                d = img.info.get("duration") or 0
                durations.append(d if d >= 20 else 100)  # browsers play a delay under 2 hundredths as 10
    except (OSError, ValueError) as exc:
        raise GanforgeError(f"{path} is not a readable GIF ({str(exc).strip() or type(exc).__name__}).") from None

    def frames() -> Iterator[Image.Image]:
        from PIL import ImageSequence

        from ganforge.images import as_upright_rgb

        with Image.open(path) as img:
            for frame in ImageSequence.Iterator(img):
                yield as_upright_rgb(frame.copy())

    return FrameSource(path, 1000.0 * len(durations) / sum(durations), len(durations), False, frames)


def _open_video(path: Path) -> FrameSource:
    import imageio.v3 as iio
    import imageio_ffmpeg

    try:
        meta = iio.immeta(path, plugin="FFMPEG")
        total = imageio_ffmpeg.count_frames_and_secs(str(path))[0]  # demuxes without decoding: quick
    except Exception as exc:  # imageio and ffmpeg raise many types for a file they cannot read
        raise GanforgeError(f"{path} is not a readable video ({_ffmpeg_reason(exc)}).") from None
    fps = float(meta.get("fps") or 0)
    if not fps > 0:
        raise GanforgeError(f"{path} does not say its frame rate; give one with --fps.")

    def frames() -> Iterator[Image.Image]:
        try:
            for array in iio.imiter(path, plugin="FFMPEG"):
                yield Image.fromarray(array)
        except (OSError, RuntimeError) as exc:
            raise GanforgeError(f"could not read a frame of {path} ({_ffmpeg_reason(exc)}).") from None

    return FrameSource(path, fps, total, bool(meta.get("audio_codec")), frames)


# --------------------------------------------------------------------------------------------------
# Where frames go


def frames_folder(output: str | os.PathLike) -> Path:
    """Where the frames of `output` are written as they are made: the folder itself for a folder
    output, else a hidden folder beside the .mp4 or .gif (`.out.mp4.frames/`)."""
    kind = video_kind(output)  # before Path(), which drops the trailing slash that marks a folder
    output = Path(output)
    return output if kind == "frames" else output.parent / f".{output.name}.frames"


def frames_written(folder: Path) -> int:
    """How many frames, frame-00000.png onwards without a gap, `folder` holds."""
    if not folder.is_dir():
        return 0
    numbers = {int(m.group(1)) for p in folder.iterdir() if (m := _FRAME_FILE.match(p.name))}
    return next(i for i in itertools.count() if i not in numbers)


def _copy_audio(video: Path, source: Path, output: Path) -> bool:
    """`video` with `source`'s first sound track, as `output`; False (and nothing written) when
    ffmpeg cannot copy that track into an MP4 as it is."""
    tmp = output.parent / f".{output.name}.audio.tmp"
    cmd = [ffmpeg_exe(), "-y", "-v", "error", "-i", str(video), "-i", str(source), "-map", "0:v:0", "-map", "1:a:0",
           "-c", "copy", "-shortest", "-movflags", "+faststart", "-f", "mp4", str(tmp)]
    try:
        # A session of its own, as in video._write_mp4: Ctrl-C reaches ganforge, which stops ffmpeg.
        if subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True).returncode != 0:
            return False
        os.replace(tmp, output)
    except OSError as exc:
        raise write_error(output, exc) from None
    finally:
        tmp.unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------------------------------
# The video


def stylize_video(
    source: str | os.PathLike,
    styles: str | os.PathLike | Image.Image | Sequence[str | os.PathLike | Image.Image],
    output: str | os.PathLike,
    *,
    frame_steps: Annotated[int, Opt("Optimisation steps for each frame after the first, which starts from the previous "
                                    "result warped onto it.", min=1)] = 50,
    temporal_weight: Annotated[float, Opt("Weight of the temporal loss, which keeps each frame close to the previous "
                                          "result where the motion is known (0: off).", min=0)] = 3e3,
    fps: Annotated[float | None, Opt("Frame rate of the output video (every frame is kept).", above=0, max=1000,
                                     default_text="the input's; 24 for a folder")] = None,
    resume: Annotated[bool, Opt("Continue from the frames an interrupted run has written.")] = False,
    callback: Callable[[FrameProgress], None] | None = None,
    log: Callable[[str], None] | None = None,
    **settings,
) -> StyledVideo:
    """Repaint every frame of `source` in the style of `styles` and write them to `output`.

    source: a video file (VIDEO_INPUTS) or a folder of pictures, taken in the natural order of
        their names.
    styles: as for `stylize`; settings: `stylize`'s keyword arguments (size, style_weight,
        backbone, ...), which frame 0 uses as they are; later frames take `frame_steps` steps at
        one scale, from the previous result warped onto them, plus the temporal loss.
    output: an .mp4, a .gif, or a folder (no suffix, or one ending in /) for frame-00000.png, ...
    frame_steps, temporal_weight: see the module's docstring.
    fps: frame rate of the output; None keeps the input's (24 for a folder of frames).
    resume: continue from the frames written so far; without it, frames already in the way are
        refused, never overwritten.
    callback: called with a FrameProgress after every frame; log: receives one-line messages.
    """
    check(stylize_video, locals())
    log = log or (lambda msg: None)
    known = [n for n in inspect.signature(stylize).parameters if n not in _PER_FRAME]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise TypeError(f"stylize_video() got an unexpected keyword argument {unknown[0]!r}")
    check(stylize, settings)
    options = {n: p.default for n, p in inspect.signature(stylize).parameters.items() if n in known} | settings
    if options["save_every"]:
        raise GanforgeError("--save-every is for a single picture; a video's frames are written as they are made.")

    # ---- the input and the output, refused before any work
    raw, output = output, Path(output)  # raw keeps a trailing slash, which makes "styled.v2/" a folder
    if output.suffix.lower() in Image.registered_extensions() and output.suffix.lower() != ".gif":
        what = "a folder of frames" if Path(source).is_dir() else "a video"
        raise GanforgeError(f"{output} is a picture, but {source} is {what}: write an .mp4, a .gif, or a folder of PNG frames.")
    frames_dir = frames_folder(raw)
    src = open_frames(source)
    if frames_dir.resolve() == src.path.resolve():
        raise GanforgeError(f"{output} is the folder the frames come from; write the result to another folder.")
    rate = fps or src.fps or FOLDER_FPS
    kind = check_video_path(raw, rate)
    if kind != "frames" and output.resolve() == src.path.resolve():
        raise GanforgeError(f"{output} is the video the frames come from; write the result to another file.")
    done_before = frames_written(frames_dir)
    existing = sum(1 for p in frames_dir.iterdir() if _FRAME_FILE.match(p.name)) if frames_dir.is_dir() else 0
    if existing and not resume:  # any frame, even after a gap, is work that must not be overwritten
        raise GanforgeError(f"{frames_dir} already holds {existing} frames of an earlier run; pass --resume to continue it, "
                            f"or delete {frames_dir} to start again.")
    if done_before > src.total:
        raise GanforgeError(f"{frames_dir} holds {done_before} frames but {src.path} has {src.total}; was it made from another "
                            f"video? Delete it to start again.")
    make_folder(frames_dir if kind == "frames" else frames_dir.parent)  # a place frames cannot go is found before the work

    frames = src.frames()
    first = next(frames, None)
    if first is None:
        raise GanforgeError(f"{src.path} holds no frames.")
    size = min(options["size"], options["max_size"])
    w, h = fit_long_edge(first.size, size)
    if min(w, h) < 8:  # DIS flow matches patches of 8x8 pixels
        raise GanforgeError(f"frames of {w}x{h} are too small to follow their motion; raise --size so that the short side is at least 8 px.")
    if done_before:
        last = load_image(frames_dir / FRAME_NAME.format(done_before - 1))
        if last.size != (w, h):
            raise GanforgeError(f"{frames_dir} holds frames of {last.size[0]}x{last.size[1]}, but these settings make {w}x{h}; "
                                f"resume with the --size of the earlier run, or delete {frames_dir} to start again.")
        log(f"resuming: {done_before} of {src.total} frames are in {frames_dir}.")
    dev = pick_device(options["device"])
    luminance = options["preserve_color"] == "luminance"

    # ---- frame by frame
    before_in: np.ndarray | None = None  # the previous input frame, at the output's size
    before_out: Image.Image | None = None  # the previous result, as written (uint8)
    index = -1
    for index, frame in enumerate(itertools.chain([first], frames)):
        frame = frame if frame.size == (w, h) else frame.resize((w, h), Image.LANCZOS)
        now_in = np.asarray(frame)
        path = frames_dir / FRAME_NAME.format(index)
        if index < done_before:  # written by the earlier run: only its input and the last result are needed
            before_in = now_in
            before_out = last if index == done_before - 1 else None
            continue
        started = time.perf_counter()
        losses: dict[str, float] = {}

        def keep_losses(p: StyleProgress) -> None:
            losses.update(p.losses)

        say = log if index == done_before else (lambda msg: None)  # stylize's notes hold for every frame: say them once
        if before_out is None:
            result = stylize(frame, styles, **options, callback=keep_losses, log=say)
        else:
            backward = optical_flow(now_in, before_in)  # frame t -> t-1: where each pixel was
            mask = occlusion_mask(optical_flow(before_in, now_in), backward)
            warped = np.clip(warp(np.asarray(before_out, dtype=np.float32) / 255.0, backward), 0, 1)
            start = torch.from_numpy(warped).permute(2, 0, 1)[None]  # (1, 3, H, W)
            target = (luma(start).repeat(1, 3, 1, 1) if luminance else start).to(dev)  # what stylize optimises in that mode
            extra = {"temporal": temporal_loss(target, torch.from_numpy(mask)[None, None].to(dev), temporal_weight)}
            result = stylize(frame, styles, **(options | dict(steps=frame_steps, scales=1)), start=start, extra_losses=extra,
                             callback=keep_losses, log=say)
        save_image_atomic(result, path)
        before_in, before_out = now_in, result
        if callback is not None:
            callback(FrameProgress(index, src.total, time.perf_counter() - started, dict(losses), path, lambda r=result: r))
    count = index + 1

    # ---- the video, from the frames as written
    audio = False
    if kind != "frames":
        def written() -> Iterator[np.ndarray]:
            for i in range(count):
                yield np.asarray(load_image(frames_dir / FRAME_NAME.format(i)))

        if kind == "gif":
            write_video(written(), output, rate)
        else:
            video = frames_dir / "video.mp4"
            write_video(written(), video, rate)
            keep_sound = src.audio and (fps is None or fps == src.fps)  # another rate would put the sound out of step
            if src.audio and not keep_sound:
                log(f"the sound of {src.path} is left out: at {rate:g} fps instead of {src.fps:g} the video is of another length.")
            audio = keep_sound and _copy_audio(video, src.path, output)
            if keep_sound and not audio:
                log(f"the sound of {src.path} could not be copied into an MP4 as it is; {output} has none.")
            if not audio:
                try:
                    os.replace(video, output)
                except OSError as exc:
                    raise write_error(output, exc) from None
        try:
            shutil.rmtree(frames_dir)
        except OSError as exc:
            raise GanforgeError(f"wrote {output}, but could not remove its frames in {frames_dir} ({reason(exc)}); delete them.") from None
    return StyledVideo(output, kind, count, w, h, rate, done_before, audio)
