"""The `ganforge` command group.

    ganforge train                      # a DCGAN on the built-in handwritten digits
    ganforge sample runs/00000-digits -o grid.png
    ganforge stylize photo.jpg painting.jpg -o out.png

Subcommands are imported only when used, so `ganforge --help` stays quick. Every mistake in the
input, whether click finds it (an unknown option, a bad choice or number, a missing argument) or
the library does, ends as one line starting `Error:` and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from ganforge.errors import GanforgeError

# name -> "module:attribute" of a click.Command
COMMANDS = {
    "train": "ganforge.cli.train:train_command",
    "sample": "ganforge.cli.sample:sample_command",
    "stylize": "ganforge.cli.stylize:stylize_command",
    "evaluate": "ganforge.cli.evaluate:evaluate_command",
    "neighbors": "ganforge.cli.evaluate:neighbors_command",
    "report": "ganforge.cli.report:report_command",
}


def fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


class Group(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def main(self, args=None, prog_name=None, **extra):
        extra.pop("standalone_mode", None)
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # plain `ganforge`: the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            argv = sys.argv[1:] if args is None else list(args)
            command = next((a for a in argv if a in COMMANDS), None)  # click does not always say which
            where = f"`{self.name} {command} --help`" if command else f"`{self.name} --help`"
            fail(f"{' '.join(exc.format_message().split()).rstrip('.')} (see {where}).")
        except GanforgeError as exc:
            fail(" ".join(str(exc).split()))
        except click.ClickException as exc:  # a file click could not open, say
            fail(" ".join(exc.format_message().split()))
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(130)
        sys.exit(code or 0)


@click.group("ganforge", cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="ganforge")
def cli():
    """Train a GAN on your own pictures, and repaint photographs in the style of a painting."""


def main():
    cli(prog_name="ganforge")
