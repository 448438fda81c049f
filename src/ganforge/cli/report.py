"""`ganforge report`: one self-contained HTML page about a run (no torch needed, so it is quick).

    ganforge report runs/00003-cats
"""

from __future__ import annotations

import click

from ganforge.cli.options import options_from
from ganforge.gan.report import write_report


@click.command("report")
@click.argument("run_dir")
@options_from(write_report)
def report_command(run_dir, output):
    """Write a self-contained report.html for a training run: samples over time, curves, health events, settings."""
    click.echo(str(write_report(run_dir, output)))
