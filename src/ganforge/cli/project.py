"""`ganforge project`: the latent vector whose picture is closest to a given picture.

    ganforge project my-seven.png --source runs/00003-digits -o seven.png
    ganforge project photo.jpg --source runs/00005-faces --steps 500 --video search.mp4 -o face.png
    ganforge interpolate runs/00003-digits --from-latents seven.npy,two.npy -o seven-to-two.mp4

Writes the generator's picture of the latent (-o, at the generator's size unless --size), the
latent itself as a float32 .npy of shape (latent_dim,) (beside -o with the same stem unless
--latent), and with --video the search as it went: the target beside the best reconstruction so far.
"""

from __future__ import annotations

from pathlib import Path

import click

from ganforge.cli.options import options_from
from ganforge.errors import GanforgeError
from ganforge.gan.project import ProjectProgress, project

VIDEO_FRAMES = 100  # about this many pictures of the search, whatever the step count
VIDEO_FPS = 20
VIDEO_HEIGHT = 256  # small generators are shown at least this tall in the video (whole multiples stay crisp)


@click.command("project")
@click.argument("image")
@click.option("--source", required=True, help="The generator: a run folder (its newest generator), a generator .safetensors or a checkpoint .pt.")
@click.option("-o", "--output", default="projection.png", show_default=True, help="The reconstruction (.png, .jpg or .webp).")
@click.option("--latent", "latent_path", help="Where to write the latent vector (.npy)  [default: beside -o, same stem]")
@click.option("--video", help="Also write the search as an .mp4 or .gif (or a folder of PNG frames): the target beside the best "
                              "reconstruction so far.")
@click.option("--size", type=click.IntRange(1, 4096), help="Scale the written picture to this height: a whole multiple of the generator's "
                                                           "size keeps pixels crisp, others are smoothed  [default: the generator's size]")
@options_from(project)
def project_command(image, source, output, latent_path, video, size, **settings):
    """Find the latent vector whose picture from the generator is closest to IMAGE, and write that
    picture and the vector."""
    from PIL import Image

    output = Path(output)
    if output.suffix.lower() not in Image.registered_extensions():
        raise GanforgeError(f"{output}: unknown image extension; use .png, .jpg or .webp.")
    latent_path = Path(latent_path) if latent_path else output.with_suffix(".npy")
    if latent_path.suffix.lower() != ".npy":
        raise GanforgeError(f"--latent {latent_path}: the latent is written as a NumPy array; give a name ending in .npy.")
    if latent_path.resolve() == output.resolve():
        raise GanforgeError(f"-o and --latent both name {output}; give them different names.")
    from ganforge.fileio import make_folder

    if video is not None:
        from ganforge.video import check_video_path

        check_video_path(video, VIDEO_FPS)  # a bad suffix or a missing ffmpeg is found before the search, not after
    for folder in {output.parent, latent_path.parent}:
        make_folder(folder)

    from tqdm import tqdm

    bars: list[tqdm] = []  # opened at the first step, so input errors print without a bar

    def progress(p: ProjectProgress) -> None:
        if not bars:
            bars.append(tqdm(total=p.total, unit="step", dynamic_ncols=True))
        bars[0].set_postfix(phase=p.phase, loss=f"{p.loss:.4g}", refresh=False)
        bars[0].update(1)

    steps = settings["steps"]
    frame_every = max(1, round(steps / VIDEO_FRAMES)) if video is not None else 0
    try:
        result = project(image, source, frame_every=frame_every, callback=progress, **settings)
    finally:
        for bar in bars:
            bar.close()

    if result.class_losses is not None:
        ranked = sorted(result.class_losses.items(), key=lambda kv: kv[1])
        click.echo(f"Class {result.class_name} came closest of {len(ranked)} (loss {ranked[0][1]:.4g}; next {ranked[1][0]} at "
                   f"{ranked[1][1]:.4g}); searched within it.")
    elif result.class_name is not None:
        click.echo(f"Searched within class {result.class_name}.")
    click.echo(f"Distance to the target: pixel MSE {result.pixel_mse:.5f} (pixel values 0..1), perceptual {result.perceptual:.4f}; "
               f"best of {len(result.restart_losses)} restarts.")

    written = [_write_picture(result.reconstruction, output, size), _write_latent(result.latent, latent_path)]
    if video is not None:
        written.append(_write_video(result.frames, result.target, video, size))
    for path, what in written:
        click.echo(f"Wrote {what} to {path}")


def _view(image, height: int | None):
    """(C, H, W) in [-1, 1] -> uint8 (height, height·W/H, C), scaled as `ganforge interpolate --size` scales."""
    from ganforge.gan.walk import resize
    from ganforge.images import to_uint8

    return to_uint8(resize(image.unsqueeze(0), height))[0].permute(1, 2, 0).numpy()


def _write_picture(image, path: Path, size: int | None) -> tuple[Path, str]:
    from PIL import Image

    from ganforge.images import save_image_atomic

    pixels = _view(image, size)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    return save_image_atomic(picture, path), f"the reconstruction ({picture.size[0]}x{picture.size[1]})"


def _write_latent(latent, path: Path) -> tuple[Path, str]:
    import numpy as np

    from ganforge.fileio import atomic_write

    return atomic_write(path, lambda f: np.save(f, latent.astype(np.float32))), f"the latent ({len(latent)} float32)"


def _write_video(frames, target, path: str, size: int | None) -> tuple[Path, str]:
    import numpy as np
    import torch

    from ganforge.video import write_video

    h = target.shape[-1]
    height = size or h * max(1, -(-VIDEO_HEIGHT // h))  # by default a whole multiple of the generator's size, so pixels stay crisp
    left = np.broadcast_to(_view(target, height), (height, height, 3))  # gray repeated to RGB
    # The frames are uint8 (H, W, 3); as floats in [-1, 1] they scale exactly as the target does.
    rights = (_view(torch.from_numpy(frame).permute(2, 0, 1).float() / 127.5 - 1, height) for frame in frames)
    count = write_video((np.concatenate([left, right], axis=1) for right in rights), path, fps=VIDEO_FPS)
    return Path(path), f"the search ({count} frames, the target on the left)"
