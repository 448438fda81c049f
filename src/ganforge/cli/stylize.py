"""`ganforge stylize`: the command-line face of `ganforge.style.stylize`.

    ganforge stylize photo.jpg starry_night.jpg -o out.png
    ganforge stylize photo.jpg a.jpg b.jpg --style-weights 0.7,0.3 --scales 3 -o out.png
    ganforge stylize --list-layers --backbone vgg19

Every tuning option is generated from `stylize`'s annotated keyword arguments, so its default,
help text and choices live in one place (the function signature) and the CLI cannot drift from
the Python API.
"""

from __future__ import annotations

from pathlib import Path

import click
from PIL import Image

from ganforge.cli.options import options_from
from ganforge.errors import GanforgeError
from ganforge.fileio import make_folder
from ganforge.style import RECIPES, StyleProgress, stylize


@click.command("stylize")
@click.argument("content", required=False)
@click.argument("styles", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Where to write the result (.png, .jpg, .webp).")
@click.option("--list-layers", is_flag=True, help="Print the layer names of --backbone and exit.")
@options_from(stylize)
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


def _print_layers(backbone: str) -> None:
    from ganforge.backbones import layer_names

    names = layer_names(backbone)  # raises GanforgeError for an unknown backbone
    recipe = RECIPES[backbone]
    for name in names:
        tags = [t for t, layers in (("content", recipe.content_layers), ("style", recipe.style_layers)) if name in layers]
        click.echo(name + (f"  (default {', '.join(tags)})" if tags else ""))
