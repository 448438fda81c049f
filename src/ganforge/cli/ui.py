"""`ganforge ui`: train, watch, sample and stylise from a web page.

    ganforge ui                          # http://127.0.0.1:7860, runs in ./runs
    ganforge ui --runs ~/gan-runs --port 8000
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from pathlib import Path

import click

from ganforge.errors import GanforgeError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@click.command("ui")
@click.option("--runs", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True,
              help="The runs folder the page trains into and watches.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but this machine lets whoever reaches it read and write the runs folder.")
@click.option("--max-upload-mb", type=click.IntRange(min=1), default=500, show_default=True, help="Largest file an upload may be.")
def ui_command(runs, port, host, max_upload_mb):
    """A web page to train (watching it learn), sample and stylise. Needs pip install "ganforge[ui]"."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the page calls nothing outside this machine
    if importlib.util.find_spec("gradio") is None:
        raise GanforgeError('ganforge ui needs gradio: pip install "ganforge[ui]".')
    from ganforge.fileio import make_folder
    from ganforge.ui.app import PAGE_OPTIONS, build

    if host not in LOCAL_HOSTS and not _is_loopback(host):
        click.echo(f"Warning: listening on {host}: anyone who can reach it can read and write {runs} and train on this machine.", err=True)
    make_folder(runs)
    page = build(runs)
    page.queue(default_concurrency_limit=4)
    try:
        click.echo(f"ganforge ui: http://{host if ':' not in host else f'[{host}]'}:{port} (runs in {runs}); Ctrl-C stops the page, "
                   "not a training it started.", err=True)
        page.launch(server_name=host, server_port=port, share=False, max_file_size=f"{max_upload_mb}mb",
                    allowed_paths=[str(Path(runs).resolve())], show_error=True, quiet=True, **PAGE_OPTIONS)
    except OSError as exc:
        raise GanforgeError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port.") from None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
