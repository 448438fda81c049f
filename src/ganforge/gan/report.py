"""One self-contained HTML page about a training run: its settings, samples over time, curves and
health events. Pictures are embedded as base64, so the file can be mailed or archived alone.

    ganforge report runs/00000-digits        # writes runs/00000-digits/report.html
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Annotated

from ganforge.errors import GanforgeError
from ganforge.fileio import atomic_write_text
from ganforge.gan.plots import curves_png, is_number
from ganforge.gan.rundir import RunFolder
from ganforge.options import Opt

MAX_SAMPLE_GRIDS = 12


def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def sample_grids(run: RunFolder, most: int = MAX_SAMPLE_GRIDS) -> list[tuple[int, Path]]:
    """(step, path) of the saved sample grids, thinned evenly to at most `most`, always with the last."""
    found = run.sample_grid_files()
    if len(found) <= most:
        return found
    picks = {round(i * (len(found) - 1) / (most - 1)) for i in range(most)}
    return [found[i] for i in sorted(picks)]


def health_events(rows: list[dict]) -> list[str]:
    """The health events the run logged (warnings, auto-balance actions, rollbacks), one line each."""
    return [f"step {r['health'].get('step', r.get('step', '?'))}: {r['health'].get('message', '')}" for r in rows if isinstance(r.get("health"), dict)]


def _table(d: dict) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v) if isinstance(v, (dict, list)) else str(v))}</td></tr>" for k, v in d.items())
    return f"<table>{cells}</table>"


CSS = """
body { font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; } th, td { text-align: left; padding: 2px 12px 2px 0; vertical-align: top; }
th { font-weight: 600; color: #555; } .grids { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; text-align: center; }
img { image-rendering: pixelated; max-width: 100%; } ul.events li { font-family: monospace; font-size: 0.85em; }
"""


def build_report(run_dir: str | Path) -> str:
    """The report page as a string."""
    run = RunFolder(Path(run_dir))
    if not run.path.is_dir():
        raise GanforgeError(f"{run}: no such run folder.")
    if not run.config.is_file() and not run.metrics.is_file():
        raise GanforgeError(f"{run} is not a ganforge run folder (no config.json or metrics.jsonl).")
    try:
        config = run.read_config() if run.config.is_file() else {}
    except GanforgeError:
        config = {"note": f"{run.config.name} is damaged and could not be read"}
    rows = run.read_metrics()
    title = f"ganforge run {run.path.resolve().name}"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]

    def last(key, missing="?"):
        found = [r[key] for r in rows if is_number(r.get(key))]
        return found[-1] if found else missing

    dataset, train = config.get("dataset", {}), config.get("train", {})
    summary = {"dataset": dataset.get("name", "?"), "images": dataset.get("images", "?"),
               "steps done": last("step", 0), "steps planned": train.get("steps", "?"),
               "kimg": last("kimg"), "training time (s)": last("elapsed_s")}
    for path in (run.generator, run.best):
        if path.is_file():
            summary[path.name] = "present"
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "kid"):
        if last(key, None) is not None:
            summary[f"last {key}"] = last(key)
    parts += ["<h2>Summary</h2>", _table(summary)]

    parts.append("<h2>Samples over time</h2>")
    grids = sample_grids(run)
    if grids:
        figures = "".join(f"<figure><img src='{_png_data_uri(p.read_bytes())}' alt='samples at step {s}' width='240'>"
                          f"<figcaption>step {s}</figcaption></figure>" for s, p in grids)
        parts.append(f"<div class='grids'>{figures}</div>")
    else:
        parts.append("<p>No sample grids saved yet.</p>")

    parts.append("<h2>Curves</h2>")
    png = curves_png([r for r in rows if "health" not in r])
    parts.append(f"<img src='{_png_data_uri(png)}' alt='loss and metric curves'>" if png else "<p>No metrics logged yet.</p>")

    parts.append("<h2>Health events</h2>")
    events = health_events(rows)
    parts.append("<ul class='events'>" + "".join(f"<li>{html.escape(e)}</li>" for e in events) + "</ul>" if events else "<p>No health warnings.</p>")

    parts.append("<h2>Configuration</h2>")
    for section in ("train", "model", "dataset", "versions"):
        if isinstance(config.get(section), dict):
            parts += [f"<h3>{section}</h3>", _table(config[section])]
    rest = {k: v for k, v in config.items() if k not in ("train", "model", "dataset", "versions")}
    if rest:
        parts.append(_table(rest))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path,
                 output: Annotated[str | Path | None, Opt("Where to write the page.", short="-o", default_text="RUN_DIR/report.html")] = None) -> Path:
    """Write the report (default RUN_DIR/report.html) atomically; returns its path."""
    page = build_report(run_dir)
    return atomic_write_text(Path(output) if output else RunFolder(Path(run_dir)).report, page)
