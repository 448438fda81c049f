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
import os
import signal
import sys

import click

from ganforge.errors import GanforgeError, raise_interrupted, signals_held

# name -> "module:attribute" of a click.Command
COMMANDS = {
    "train": "ganforge.cli.train:train_command",
    "sample": "ganforge.cli.sample:sample_command",
    "stylize": "ganforge.cli.stylize:stylize_command",
    "evaluate": "ganforge.cli.evaluate:evaluate_command",
    "neighbors": "ganforge.cli.evaluate:neighbors_command",
    "report": "ganforge.cli.report:report_command",
    "ui": "ganforge.cli.ui:ui_command",
    "interpolate": "ganforge.cli.interpolate:interpolate_command",
    "project": "ganforge.cli.project:project_command",
    "export": "ganforge.cli.export:export_command",
}


def fail(message: str, exc: BaseException | None = None) -> None:
    """One line and exit code 2. In a job of several processes, rank 0 speaks for all: to the
    terminal, or to `ganforge train --nproc-per-node`, which says it for the job."""
    from ganforge.cli.launch import REPORT_ENV, write_report

    if os.environ.get("RANK", "0") == "0":  # torchrun's rank; none outside torchrun
        if os.environ.get(REPORT_ENV) and "LOCAL_RANK" in os.environ:  # a worker of `--nproc-per-node`'s launcher
            write_report(error=message, lost_contact=type(exc).__name__ == "JobBroken", timed_out=getattr(exc, "timed_out", False))
        else:
            click.echo(f"Error: {message}", err=True)
    sys.exit(2)


class Stopped(Exception):
    """Ctrl-C or SIGTERM ended a command outside training's own handling (which checkpoints)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def stopped(signum: int, command: str | None) -> None:
    """One line for Ctrl-C or SIGTERM outside training's own handling, and exit 128 + signal."""
    name = signal.Signals(signum).name
    if command == "train":
        click.echo(f"Stopped ({name}) before training began; run the same command to start again.", err=True)
    else:
        click.echo(f"Stopped ({name}).", err=True)
    sys.exit(128 + signum)


class Group(click.Group):
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
        except KeyboardInterrupt as exc:  # before click turns it into a bare "Aborted!"
            raise Stopped(getattr(exc, "signum", signal.SIGINT)) from None

    def main(self, args=None, prog_name=None, **extra):
        extra.pop("standalone_mode", None)
        argv = sys.argv[1:] if args is None else list(args)
        self.argv = argv  # for `train --nproc-per-node`, which passes its arguments on to each process
        command = next((a for a in argv if a in COMMANDS), None)  # click does not always say which
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # plain `ganforge`: the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f"`{self.name} {command} --help`" if command else f"`{self.name} --help`"
            fail(f"{' '.join(exc.format_message().split()).rstrip('.')} (see {where}).")
        except GanforgeError as exc:
            fail(" ".join(str(exc).split()), exc)
        except click.ClickException as exc:  # a file click could not open, say
            fail(" ".join(exc.format_message().split()))
        except Stopped as exc:
            stopped(exc.signum, command)
        except click.Abort as exc:  # Ctrl-C (or the end of input) while click itself was busy
            if not isinstance(exc.__context__, KeyboardInterrupt):
                fail("the input ended before the command had all it needed.")
            stopped(getattr(exc.__context__, "signum", signal.SIGINT), command)
        sys.exit(code or 0)


@click.group("ganforge", cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="ganforge")
def cli():
    """Train a GAN on your own pictures, and repaint photographs in the style of a painting."""


# Commands that need torch import it (and its compiled companions) first, with signals held back
# until the imports are done (see errors.signals_held).
TORCH_COMMANDS = {"train", "sample", "stylize", "evaluate", "neighbors", "interpolate", "project", "export"}
COMPILED = ("torch", "torchvision", "safetensors.torch")


def main():
    # SIGTERM stops the way Ctrl-C does, from the first moment: cleanly, with one line. (Training
    # replaces both with handlers that checkpoint first.)
    signal.signal(signal.SIGTERM, raise_interrupted)
    argv = sys.argv[1:]
    command = next((a for a in argv if a in COMMANDS), None)
    try:
        if command in TORCH_COMMANDS and not {"-h", "--help"} & set(argv):
            try:
                with signals_held():
                    for name in COMPILED:
                        importlib.import_module(name)
            except KeyboardInterrupt as exc:
                stopped(getattr(exc, "signum", signal.SIGINT), command)
        cli(prog_name="ganforge")
    except SystemExit as exc:
        if "LOCAL_RANK" in os.environ:
            # A process of a torchrun job: torch's communication threads may still be running after a
            # failure, and tearing them down at the interpreter's exit would abort instead of exiting.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1)
        if isinstance(exc.code, int) and 128 < exc.code < 128 + 65:
            # Stopped by a signal, and said so. CPython would end the process by SIGINT instead of
            # this exit code if the KeyboardInterrupt had passed through code run by PyRun_String
            # (pybind11's exec, during torch's import), even though it was caught later.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.code)
        raise
