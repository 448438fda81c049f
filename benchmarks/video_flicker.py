"""Flicker and speed of video style transfer: `stylize` on every frame against `stylize_video`.

`stylize_video`'s frames start from the previous result and keep close to it; frames stylised on
their own do neither.

    .venv/bin/python benchmarks/video_flicker.py ../shared/data/images/starry_night.jpg
    .venv/bin/python benchmarks/video_flicker.py STYLE --variants 50:0,50:1000,50:3000,50:10000,80:3000
    .venv/bin/python benchmarks/video_flicker.py STYLE --variants 30:3000 --seconds 1.5 --no-independent

The clip is made here: a slow pan and zoom over scikit-image's astronaut (WIDTHxHEIGHT, --fps,
--seconds), written as an H.264 MP4 as a camera would deliver it, and read back. Because the camera
path is known, so is the true motion: the flicker figure warps each output frame's predecessor
onto it with the exact flow of the input frames (not the estimate the method itself uses), takes
the mean absolute difference over the pixels that both frames show (`occlusion_mask`), and divides
it by the same figure for the input frames. 1.0: the picture changes from frame to frame no more
than the video does; stylising frames on their own gives several times that.

For each way it prints seconds per frame, the flicker figure, and the weighted style and content
losses at the last step of each frame (mean over the frames), which show what the steadiness costs
in stylisation. The videos are left in --out for looking at.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.images import load_image
from ganforge.options import settings
from ganforge.style import stylize
from ganforge.stylevideo import occlusion_mask, stylize_video, warp
from ganforge.video import write_video


DEFAULTS = {s.name: s.default for s in settings(stylize_video)}


class FirstFrameDone(Exception):
    pass


def camera_path(n: int, photo: int, width: int, height: int) -> list[tuple[float, float, float]]:
    """(scale, centre x, centre y) of each frame's window over a square photo of side `photo`: the
    window shrinks by a fifth (a zoom in) while its centre drifts right and a little down."""
    out = []
    for t in np.linspace(0.0, 1.0, n):
        scale = 1.15 * (1 - 0.2 * t)  # photo pixels per frame pixel
        out.append((scale, photo * (0.47 + 0.13 * t), photo * (0.48 + 0.04 * t)))
    return out


def render(photo: np.ndarray, view: tuple[float, float, float], width: int, height: int) -> np.ndarray:
    import cv2

    s, cx, cy = view
    fx, fy = (width - 1) / 2, (height - 1) / 2
    to_photo = np.array([[s, 0, cx - s * fx], [0, s, cy - s * fy]], dtype=np.float64)  # frame pixel -> photo pixel
    return cv2.warpAffine(photo, to_photo, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)


def true_flow(src: tuple[float, float, float], dst: tuple[float, float, float], width: int, height: int) -> np.ndarray:
    """(H, W, 2): for each pixel of frame `src`, where the same point of the photo is in frame `dst`, less where it is."""
    (s0, x0, y0), (s1, x1, y1) = src, dst
    fx, fy = (width - 1) / 2, (height - 1) / 2
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    px, py = s0 * (u - fx) + x0, s0 * (v - fy) + y0  # in the photo
    return np.stack([(px - x1) / s1 + fx - u, (py - y1) / s1 + fy - v], -1).astype(np.float32)


def flicker(frames: list[np.ndarray], views, width: int, height: int) -> float:
    """Mean |frame t - frame t-1 warped onto t| over the pixels both show, averaged over t."""
    errors = []
    for t in range(1, len(frames)):
        backward = true_flow(views[t], views[t - 1], width, height)
        mask = occlusion_mask(true_flow(views[t - 1], views[t], width, height), backward)[..., None]
        moved = warp(frames[t - 1].astype(np.float32) / 255, backward)
        errors.append(float((mask * np.abs(frames[t].astype(np.float32) / 255 - moved)).sum() / (3 * mask.sum())))
    return float(np.mean(errors))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("style", nargs="?", help="the painting (default: scikit-image's chelsea, a cat photo, for want of a painting)")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=192)
    ap.add_argument("--fps", type=float, default=12)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--variants", default=f"{DEFAULTS['frame_steps']}:{DEFAULTS['temporal_weight']:g}",
                    help="stylize_video settings to try, FRAME_STEPS:TEMPORAL_WEIGHT,... (default: its defaults)")
    ap.add_argument("--no-independent", action="store_true", help="skip stylising every frame on its own (the slow part)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "ganforge-video-flicker")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from skimage import data

    style = load_image(args.style) if args.style else Image.fromarray(data.chelsea())
    args.out.mkdir(parents=True, exist_ok=True)
    n = round(args.seconds * args.fps)
    side = round(1.25 * max(args.width, args.height))  # the widest window, 1.15 frames wide, fits with room to pan
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((side, side), Image.LANCZOS))
    views = camera_path(n, side, args.width, args.height)
    clip = args.out / "clip.mp4"
    write_video((render(photo, v, args.width, args.height) for v in views), clip, args.fps)
    import imageio.v3 as iio

    inputs = list(iio.imiter(clip, plugin="FFMPEG"))  # as stylize_video reads them: through the codec
    base = flicker(inputs, views, args.width, args.height)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; clip {args.width}x{args.height}, {n} frames at "
          f"{args.fps:g} fps; style {args.style or 'skimage chelsea'}; input flicker {base:.4f} (mean |difference| in 0..1)")
    print(f"{'way':<34} {'s/frame':>8} {'later s/frame':>14} {'flicker':>8} {'style loss':>11} {'content loss':>13}")

    def report(name, frames, seconds, later, losses):
        style_loss = np.mean([lo["style"] for lo in losses])
        content_loss = np.mean([lo["content"] for lo in losses])
        print(f"{name:<34} {seconds / len(frames):>8.2f} {later:>14.2f} {flicker(frames, views, args.width, args.height) / base:>8.2f} "
              f"{style_loss:>11.2f} {content_loss:>13.3f}", flush=True)

    if not args.no_independent:
        frames, losses, started = [], [], time.perf_counter()
        for f in inputs:
            last: dict = {}
            frames.append(np.asarray(stylize(Image.fromarray(f), style, size=max(args.width, args.height),
                                             callback=lambda p: last.update(p.losses))))
            losses.append(last)
        seconds = time.perf_counter() - started
        write_video(frames, args.out / "independent.mp4", args.fps)
        report("stylize, each frame on its own", frames, seconds, seconds / n, losses)

    # Frame 0 is the same for every variant (a still picture): made once, then each variant resumes from it.
    first = args.out / "frame0"
    shutil.rmtree(first, ignore_errors=True)  # this script's own folders, from an earlier run
    made = []

    def stop_after_frame_0(p):
        made.append(p)
        raise FirstFrameDone

    try:
        stylize_video(clip, style, first, size=max(args.width, args.height), callback=stop_after_frame_0)
    except FirstFrameDone:
        pass
    for variant in args.variants.split(","):
        steps, weight = variant.split(":")
        folder = args.out / f"video-{steps}-{weight}"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(first, folder)
        done = []
        stylize_video(clip, style, folder, size=max(args.width, args.height), frame_steps=int(steps), temporal_weight=float(weight),
                      resume=True, callback=done.append)
        later = [p.seconds for p in done]
        frames = [np.asarray(load_image(folder / f"frame-{i:05d}.png")) for i in range(n)]  # the lossless PNGs
        write_video(frames, args.out / f"video-{steps}-{weight}.mp4", args.fps)
        report(f"stylize_video {steps} steps, weight {weight}", frames, made[0].seconds + sum(later), np.mean(later),
               [made[0].losses] + [p.losses for p in done])
    print(f"videos in {args.out}")


if __name__ == "__main__":
    main()
