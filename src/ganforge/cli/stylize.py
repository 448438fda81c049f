"""`ganforge stylize`: the command-line face of `ganforge.style.stylize`.

    ganforge stylize photo.jpg starry_night.jpg -o out.png
    ganforge stylize photo.jpg a.jpg b.jpg --style-weights 0.7,0.3 --scales 3 -o out.png
    ganforge stylize --list-layers --backbone vgg19
    ganforge stylize clip.mp4 starry_night.jpg --size 384 -o out.mp4
    ganforge stylize frames/ starry_night.jpg -o styled/ --resume

Every tuning option is generated from `stylize`'s annotated keyword arguments (and, for a video or
a folder of frames, `ganforge.stylevideo.stylize_video`'s), so its default, help text and choices
live in one place (the function signature) and the CLI cannot drift from the Python API.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import click
from PIL import Image

from ganforge.cli.options import options_from
from ganforge.errors import GanforgeError
from ganforge.fileio import make_folder
from ganforge.options import settings
from ganforge.style import RECIPES, StyleProgress, stylize
from ganforge.stylevideo import FrameProgress, frames_folder, frames_written, is_video_source, stylize_video

VIDEO_OPTIONS = [s.name for s in settings(stylize_video)]


@click.command("stylize")
@click.argument("content", required=False)
@click.argument("styles", nargs=-1)
@click.option("-o", "--output", type=click.Path(),
              help="Where to write the result: a picture (.png, .jpg, .webp) for a photo; an .mp4, a .gif or a folder of PNG "
                   "frames for a video or a folder of frames.")
@click.option("--list-layers", is_flag=True, help="Print the layer names of --backbone and exit.")
@options_from(stylize)
@options_from(stylize_video)
def stylize_command(content, styles, output, list_layers, **options):
    """Repaint the CONTENT photo in the style of one or more STYLE paintings. CONTENT may also be a
    video or a folder of frames; then each frame starts from the previous result, so it does not flicker."""
    if list_layers:
        _print_layers(options["backbone"])
        return
    if content is None or not styles:
        raise GanforgeError("give a content photo and at least one style image: ganforge stylize PHOTO STYLE -o OUT.png.")
    if is_video_source(content):
        _stylize_video(content, styles, output, options)
        return
    ctx = click.get_current_context()
    given = [n for n in VIDEO_OPTIONS if ctx.get_parameter_source(n) is not click.core.ParameterSource.DEFAULT]
    if given:
        raise GanforgeError(f"--{given[0].replace('_', '-')} is for a video or a folder of frames, and {content} is a picture.")
    for name in VIDEO_OPTIONS:
        options.pop(name)
    if output is None:
        raise GanforgeError("give the output file with -o OUT.png.")
    if Path(output).suffix.lower() not in Image.registered_extensions():
        raise GanforgeError(f"{output}: unknown image extension; use .png, .jpg or .webp.")
    make_folder(Path(output).parent)  # a place the result cannot go is found before the work, not after

    from tqdm import tqdm

    bars: list[tqdm] = []  # opened at the first step, so input errors print without a bar

    def progress(p: StyleProgress) -> None:
        if not bars:
            bars.append(tqdm(total=p.total, unit="step", dynamic_ncols=True))
        bar = bars[0]
        bar.set_postfix({k: f"{v:.3g}" for k, v in p.losses.items()} | {"size": f"{p.size[0]}x{p.size[1]}"},
                        refresh=False)
        bar.update(1)

    try:
        image = stylize(content, list(styles), save_path=output, callback=progress, log=tqdm.write, **options)
    finally:
        for bar in bars:
            bar.close()
    from ganforge.images import save_image_atomic

    path = save_image_atomic(image, output)
    click.echo(f"wrote {path} ({image.size[0]}x{image.size[1]})")


def _stylize_video(content, styles, output, options) -> None:
    if output is None:
        raise GanforgeError("give the output with -o OUT.mp4 (or a .gif, or a folder for PNG frames).")
    from tqdm import tqdm

    bars: list[tqdm] = []  # opened after the first frame, so input errors print without a bar

    def progress(p: FrameProgress) -> None:
        if not bars:
            bars.append(tqdm(total=p.total, initial=p.index, unit="frame", dynamic_ncols=True))
        bar = bars[0]
        bar.set_postfix({k: f"{v:.3g}" for k, v in p.losses.items()} | {"last": f"{p.seconds:.1f}s"}, refresh=False)
        bar.update(1)

    try:
        video = stylize_video(content, list(styles), output, callback=progress, log=tqdm.write, **options)
    except KeyboardInterrupt:
        with contextlib.suppress(GanforgeError):  # an output refused for its suffix has no frames to speak of
            folder = frames_folder(output)
            if frames_written(folder):
                click.echo(f"{frames_written(folder)} frames are in {folder}; run the same command with --resume to go on.", err=True)
        raise
    finally:
        for bar in bars:
            bar.close()
    what = {"frames": "numbered PNG frames in", "gif": "a looping GIF,", "mp4": "an MP4,"}[video.kind]
    sound = " with the input's sound" if video.audio else ""
    click.echo(f"wrote {video.frames} frames ({video.width}x{video.height} at {video.fps:g} fps) as {what} {video.path}{sound}")


def _print_layers(backbone: str) -> None:
    from ganforge.backbones import layer_names

    names = layer_names(backbone)  # raises GanforgeError for an unknown backbone
    recipe = RECIPES[backbone]
    for name in names:
        tags = [t for t, layers in (("content", recipe.content_layers), ("style", recipe.style_layers)) if name in layers]
        click.echo(name + (f"  (default {', '.join(tags)})" if tags else ""))
