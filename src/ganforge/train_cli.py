"""`ganforge train` and `ganforge sample`.

    ganforge train                                  # DCGAN on the built-in digits, 32 px
    ganforge train ~/Pictures/cats --size 64 --steps 20000
    ganforge train --resume runs/00003-cats --steps 30000
    ganforge sample runs/00003-cats -n 64 -o grid.png
    ganforge sample runs/00003-cats -n 1000 --out-dir cats/
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from ganforge.cliutil import dataclass_kwargs, dataclass_options
from ganforge.config import TrainConfig
from ganforge.errors import GanforgeError

RESUMABLE = {"steps", "device"}  # what a resumed run may change; all else is the run's own


@click.command("train")
@click.argument("data", required=False, default=TrainConfig.data)
@dataclass_options(TrainConfig)
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), help="Run folder [default: runs/NNNNN-<data>].")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), help="Continue the run in this folder from its latest checkpoint.")
@click.pass_context
def train_command(ctx, data, run_dir, resume, **params):
    """Train a GAN on DATA: a folder of your pictures, or digits (default), mnist, fashion-mnist, cifar10.

    The run folder's path is the last line printed.
    """
    from ganforge.train import TrainingInterrupted, train

    if resume is not None:
        given = {n for n in params if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE}
        extra = sorted("--" + n.replace("_", "-") for n in given - RESUMABLE) + (["DATA"] if ctx.get_parameter_source("data") == ParameterSource.COMMANDLINE else []) + (["--run-dir"] if run_dir else [])
        if extra:
            raise GanforgeError(f"--resume continues with the run's own settings; only --steps and --device may be given (not {', '.join(extra)}).")
        kwargs = {"resume": resume, "steps": params["steps"] if "steps" in given else None, "device": params["device"] if "device" in given else None}
        cfg = TrainConfig()
    else:
        given = {n for n in params if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE}
        cfg = TrainConfig(data=data, **dataclass_kwargs(TrainConfig, params)).with_preset(keep=given)
        kwargs = {"run_dir": run_dir}
    try:
        out = train(cfg, **kwargs)
    except TrainingInterrupted as exc:
        click.echo(str(exc), err=True)
        click.echo(str(exc.run_dir))
        sys.exit(128 + int(exc.signum))
    click.echo(str(out))


@click.command("sample")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-n", "--num", "n", default=64, show_default=True, type=click.IntRange(1, 100_000), help="How many images.")
@click.option("--seed", default=0, show_default=True, help="Seed for the latent vectors.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write one grid PNG here [default: grid.png].")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), help="Write N separate PNG files into this folder instead of a grid.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "mps"]))
def sample_command(source, n, seed, output, out_dir, device):
    """Generate images from SOURCE: a run folder (its newest generator) or a generator .safetensors file."""
    from ganforge.sample import sample_images, write_grid, write_files

    if output and out_dir:
        raise GanforgeError("Give either -o for one grid or --out-dir for separate files, not both.")
    images = sample_images(source, n, seed, device)
    if out_dir:
        write_files(images, out_dir)
        click.echo(f"Wrote {n} images to {out_dir}")
    else:
        path = write_grid(images, output or Path("grid.png"))
        click.echo(f"Wrote a grid of {n} images to {path}")
