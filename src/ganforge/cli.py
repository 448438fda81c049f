"""The `ganforge` command line: a thin layer over the functions a Python user calls.

    ganforge train                      # a DCGAN on the built-in handwritten digits
    ganforge sample runs/00000-digits -o grid.png
    ganforge stylize photo.jpg painting.jpg -o out.png

Subcommands are imported only when used, so `ganforge --help` stays quick.
"""

from __future__ import annotations

import importlib
import sys

import click

from ganforge.errors import GanforgeError

# name -> "module:attribute" of a click.Command
COMMANDS = {
    "train": "ganforge.train_cli:train_command",
    "sample": "ganforge.train_cli:sample_command",
    "stylize": "ganforge.style_cli:stylize_command",
    "evaluate": "ganforge.eval_cli:evaluate_command",
    "neighbors": "ganforge.eval_cli:neighbors_command",
    "report": "ganforge.eval_cli:report_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GanforgeError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="ganforge")
def cli():
    """Train a GAN on your own pictures, and repaint photographs in the style of a painting."""


def main():
    cli(prog_name="ganforge")


if __name__ == "__main__":
    main()
