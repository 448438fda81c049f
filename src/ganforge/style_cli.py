"""`ganforge stylize`: the command-line face of `ganforge.style.stylize`.

    ganforge stylize photo.jpg starry_night.jpg -o out.png
    ganforge stylize photo.jpg a.jpg b.jpg --style-weights 0.7,0.3 --scales 3 -o out.png
    ganforge stylize --list-layers --backbone vgg19

Every tuning option is generated from `stylize`'s keyword arguments, so its default lives in one
place (the function signature) and the CLI cannot drift from the Python API.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import click
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.style import (BACKBONES, DEVICES, INITS, OPTIMIZERS, PRESERVE_COLORS, RECIPES, StyleProgress,
                            stylize)

# Arguments of `stylize` that are not options: positional inputs and Python-only hooks.
_NOT_OPTIONS = {"content", "styles", "callback", "log", "save_path"}

_CHOICES = {"init": INITS, "optimizer": OPTIMIZERS, "backbone": BACKBONES,
            "preserve_color": PRESERVE_COLORS, "device": DEVICES}

_HELP = {
    "size": "Long edge of the output in pixels (any aspect ratio).",
    "content_weight": "Weight of the content loss (keeps the photo's shapes).",
    "style_weight": "Weight of the style loss (Gram matrices of the painting's features).",
    "tv_weight": "Weight of the total-variation loss (smoothness between neighbouring pixels).",
    "content_layers": "Comma-separated layers for the content loss; see --list-layers. [default: backbone's recipe]",
    "style_layers": "Comma-separated layers for the style loss; see --list-layers. [default: backbone's recipe]",
    "init": "Start from the photo (recoloured to the painting's palette) or from noise.",
    "optimizer": "Optimiser over the image's pixels.",
    "steps": "Optimisation steps at each scale.",
    "lr": "Step size (pixel values are in 0..1).",
    "seed": "Random seed; the same seed gives the same image.",
    "backbone": "Feature network: lite0 (EfficientNet-Lite0, offline) or vgg19 (downloaded once).",
    "weights": "Local weights file for the backbone instead of the default ImageNet weights.",
    "scales": "Optimise at N sizes, coarse to fine, each twice the previous (larger strokes).",
    "style_weights": "One weight per style image, e.g. 0.7,0.3. [default: equal]",
    "style_scale": "Size of the style image relative to the output (larger: bigger strokes).",
    "preserve_color": "Keep the photo's colours: transfer brightness only, or match the painting's colours first.",
    "save_every": "Write the current image every N steps as OUT-0100.png and so on (0: never).",
    "max_size": "Inputs with a longer edge are reduced to this first.",
    "device": "auto picks cuda, then mps, then cpu.",
}


class _OneLineErrors(click.Command):
    """Turns click's usage errors into GanforgeError, so the group prints one line and exits 2."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise GanforgeError(exc.format_message().rstrip(".") + " (see `ganforge stylize --help`).") from None


def _signature_options(func):
    """click options for `stylize`'s keyword arguments: names, types and defaults from its signature."""
    options = []
    for name, param in inspect.signature(stylize).parameters.items():
        if name in _NOT_OPTIONS:
            continue
        default = param.default
        flag = "--" + name.replace("_", "-")
        kind = type(default) if default is not None else str
        kwargs = dict(default=default, show_default=default is not None, help=_HELP.get(name))
        if name in _CHOICES:
            # Validated by `stylize` itself (one message for API and CLI); shown here for --help.
            kwargs["metavar"] = "[" + "|".join(_CHOICES[name]) + "]"
        options.append(click.option(flag, type=kind, **kwargs))
    for opt in reversed(options):
        func = opt(func)
    return func


@click.command("stylize", cls=_OneLineErrors)
@click.argument("content", required=False)
@click.argument("styles", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Where to write the result (.png, .jpg, .webp).")
@click.option("--list-layers", is_flag=True, help="Print the layer names of --backbone and exit.")
@_signature_options
def stylize_command(content, styles, output, list_layers, **options):
    """Repaint the CONTENT photo in the style of one or more STYLE paintings."""
    if list_layers:
        _print_layers(options["backbone"])
        return
    if content is None or not styles:
        raise GanforgeError("give a content photo and at least one style image: ganforge stylize PHOTO STYLE -o OUT.png.")
    if output is None:
        raise GanforgeError("give the output file with -o OUT.png.")
    if Path(output).suffix.lower() not in Image.registered_extensions():
        raise GanforgeError(f"{output}: unknown image extension; use .png, .jpg or .webp.")

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


def _print_layers(backbone: str) -> None:
    from ganforge.backbones import layer_names

    names = layer_names(backbone)  # raises GanforgeError for an unknown backbone
    recipe = RECIPES[backbone]
    for name in names:
        tags = [t for t, layers in (("content", recipe.content_layers), ("style", recipe.style_layers)) if name in layers]
        click.echo(name + (f"  (default {', '.join(tags)})" if tags else ""))
