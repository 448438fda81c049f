"""The `ganforge` command line: a thin layer over the functions a Python user calls (`main.py`
holds the command group; each other module holds the commands of one area)."""

from ganforge.cli.main import cli, main

__all__ = ["cli", "main"]
