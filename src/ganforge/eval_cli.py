"""`ganforge evaluate`, `ganforge neighbors` and `ganforge report`.

    ganforge evaluate runs/00000-digits --data digits
    ganforge evaluate my-samples/ --data ~/Pictures/cats --json > scores.json
    ganforge neighbors runs/00003-cats --data ~/Pictures/cats -o nn.png
    ganforge report runs/00003-cats
"""

from __future__ import annotations

import json
from pathlib import Path

import click

DEVICES = click.Choice(["auto", "cpu", "cuda", "mps"])


def _common(f):
    """Options shared by evaluate and neighbors."""
    for opt in reversed([
        click.option("--data", required=True, help="Training data to compare with: a folder of images, or digits, mnist, fashion-mnist, cifar10."),
        click.option("--size", type=int, help="Compare at this resolution [default: the generator's; 64 for folders, 32 for built-ins]."),
        click.option("--seed", default=0, show_default=True, help="Seed for the latent vectors and the choice of real images."),
        click.option("--inception-weights", type=click.Path(dir_okay=False, path_type=Path), help="Local weights for --features inception (torch-fidelity's file), instead of downloading them."),
        click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), help="Where mnist, fashion-mnist and cifar10 (and the class-coverage classifiers) are cached."),
        click.option("--device", default="auto", show_default=True, type=DEVICES),
    ]):
        f = opt(f)
    return f


@click.command("evaluate")
@click.argument("source", type=click.Path(path_type=Path))
@_common
@click.option("-n", "--n", "n", default=2000, show_default=True, type=click.IntRange(10, 1_000_000), help="Generated images to score, and at most this many real ones.")
@click.option("--features", default="lite0", show_default=True, type=click.Choice(["lite0", "inception"]), help="Feature network: lite0 works offline; inception is the standard FID network (downloaded once).")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as one JSON object.")
def evaluate_command(source, data, size, seed, inception_weights, data_root, device, n, features, as_json):
    """Score SOURCE against the training data: FID, KID, precision/recall, density/coverage.

    SOURCE is a run folder, a generator .safetensors (or checkpoint .pt), or a folder of images.
    For digits, mnist and fashion-mnist, also reports which classes the samples cover.
    """
    from ganforge.evaluate import evaluate, format_scores

    result = evaluate(source, data, n=n, features=features, inception_weights=inception_weights, size=size, seed=seed,
                      device=device, data_root=data_root)
    click.echo(json.dumps(result) if as_json else format_scores(result))


@click.command("neighbors")
@click.argument("source", type=click.Path(path_type=Path))
@_common
@click.option("-o", "--output", default="nn.png", show_default=True, type=click.Path(dir_okay=False, path_type=Path), help="The PNG to write.")
@click.option("-n", "--n", "n", default=8, show_default=True, type=click.IntRange(1, 256), help="Generated images (one row each).")
@click.option("-k", default=5, show_default=True, type=click.IntRange(1, 64), help="Nearest training images beside each.")
@click.option("--features", default="lite0", show_default=True, type=click.Choice(["lite0", "inception", "pixels"]), help="Space the distances are measured in.")
@click.option("--max-real", default=20000, show_default=True, type=click.IntRange(1), help="Search at most this many training images (a seeded random choice).")
def neighbors_command(source, data, size, seed, inception_weights, data_root, device, output, n, k, features, max_real):
    """Show each generated image of SOURCE beside its K nearest training images, to spot memorisation.

    Each row of the grid starts with a generated image; the rest of the row is its neighbours, nearest first.
    """
    from ganforge.evaluate import nearest_neighbors
    from ganforge.runlog import save_grid
    from ganforge.data import to_float

    rows, dist, searched = nearest_neighbors(source, data, n=n, k=k, features=features, inception_weights=inception_weights,
                                             size=size, seed=seed, device=device, data_root=data_root, max_real=max_real)
    if output.suffix.lower() != ".png":
        output = output.with_suffix(".png")
    save_grid(to_float(rows), output, nrow=k + 1)
    click.echo(f"Wrote {len(dist)} rows of 1 generated + {k} nearest of {searched} training images ({features} distance, "
               f"nearest {dist[:, 0].min().item():.3g} to {dist[:, 0].max().item():.3g}) to {output}")


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the page [default: RUN_DIR/report.html].")
def report_command(run_dir, output):
    """Write a self-contained report.html for a training run: samples over time, curves, health events, settings."""
    from ganforge.report import write_report

    click.echo(str(write_report(run_dir, output)))
