"""`ganforge sample`.

    ganforge sample runs/00003-cats -n 64 -o grid.png
    ganforge sample runs/00003-cats -n 1000 --out-dir cats/
    ganforge sample runs/00004-digits --class 7 --truncation 0.7 -o sevens.png
"""

from __future__ import annotations

from pathlib import Path

import click

from ganforge.cli.options import options_from
from ganforge.errors import GanforgeError
from ganforge.gan.sampling import sample_images


@click.command("sample")
@click.argument("source")
@options_from(sample_images)
@click.option("-o", "--output", help="Write one grid PNG here [default: grid.png].")
@click.option("--out-dir", help="Write N separate PNG files into this folder instead of a grid.")
def sample_command(source, n, seed, device, truncation, class_, output, out_dir):
    """Generate images from SOURCE: a run folder (its newest generator), a generator .safetensors or a checkpoint .pt."""
    from ganforge.images import save_grid, save_pngs

    if output and out_dir:
        raise GanforgeError("Give either -o for one grid or --out-dir for separate files, not both.")
    images = sample_images(source, n, seed, device, truncation=truncation, class_=class_)
    if out_dir:
        save_pngs(images, out_dir)
        click.echo(f"Wrote {n} images to {out_dir}")
    else:
        path = Path(output or "grid.png")
        path = save_grid(images, path if path.suffix.lower() == ".png" else path.with_suffix(".png"))
        click.echo(f"Wrote a grid of {n} images to {path}")
