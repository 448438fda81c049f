"""`ganforge evaluate` and `ganforge neighbors`.

    ganforge evaluate runs/00000-digits --data digits
    ganforge evaluate my-samples/ --data ~/Pictures/cats --json > scores.json
    ganforge neighbors runs/00003-cats --data ~/Pictures/cats -o nn.png
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ganforge.cli.options import options_from
from ganforge.scoring import evaluate, format_scores, nearest_neighbors


@click.command("evaluate")
@click.argument("source")
@options_from(evaluate)
@click.option("--json", "as_json", is_flag=True, help="Print the scores as one JSON object.")
def evaluate_command(source, as_json, **options):
    """Score SOURCE against the training data: FID, KID, precision/recall, density/coverage.

    SOURCE is a run folder, a generator .safetensors (or checkpoint .pt), or a folder of images.
    For digits, mnist and fashion-mnist, also reports which classes the samples cover.
    """
    result = evaluate(source, **options)
    click.echo(json.dumps(result) if as_json else format_scores(result))


@click.command("neighbors")
@click.argument("source")
@options_from(nearest_neighbors)
@click.option("-o", "--output", default="nn.png", show_default=True, help="The PNG to write.")
def neighbors_command(source, output, **options):
    """Show each generated image of SOURCE beside its K nearest training images, to spot memorisation.

    Each row of the grid starts with a generated image; the rest of the row is its neighbours, nearest first.
    """
    from ganforge.images import save_grid

    rows, dist, searched = nearest_neighbors(source, **options)
    output = Path(output)
    path = save_grid(rows, output if output.suffix.lower() == ".png" else output.with_suffix(".png"), nrow=options["k"] + 1)
    click.echo(f"Wrote {len(dist)} rows of 1 generated + {options['k']} nearest of {searched} training images ({options['features']} "
               f"distance, nearest {dist[:, 0].min().item():.3g} to {dist[:, 0].max().item():.3g}) to {path}")
