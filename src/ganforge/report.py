"""One self-contained HTML page about a training run: its settings, samples over time, curves and
health events. Pictures are embedded as base64, so the file can be mailed or archived alone.

    ganforge report runs/00000-digits        # writes runs/00000-digits/report.html
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

from ganforge.errors import GanforgeError

STANDARD = ("step", "loss_d", "loss_g", "d_real", "d_fake", "d_skipped", "images_per_sec", "elapsed_s", "kimg")
EVENT_KEYS = ("event", "events", "health", "warning", "warnings")
HEALTH_WORDS = re.compile(r"warning|collapse|winning|auto-balance|diverg|roll(ed)? back|nan\b", re.IGNORECASE)
MAX_SAMPLE_GRIDS = 12


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # a line cut short by a kill
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def plot_curves(rows: list[dict]) -> bytes | None:
    """A PNG with losses, D's outputs, and one panel per extra numeric series (KID first)."""
    rows = [r for r in rows if _is_number(r.get("step"))]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    extra = sorted({k for r in rows for k, v in r.items() if k not in STANDARD and not k.endswith("_std") and _is_number(v)},
                   key=lambda k: (k != "kid", k))[:4]
    panels = [("loss", ["loss_d", "loss_g"]), ("mean D output", ["d_real", "d_fake"])] + [(k, [k]) for k in extra]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * len(panels)), sharex=True, squeeze=False)
    labels = {"loss_d": "discriminator", "loss_g": "generator", "d_real": "D(real)", "d_fake": "D(G(z))"}
    for ax, (title, keys) in zip(axes[:, 0], panels):
        for key in keys:
            pts = [(r["step"], r[key], r.get(f"{key}_std")) for r in rows if _is_number(r.get(key))]
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            ax.plot(xs, ys, marker="o" if len(pts) < 30 else None, markersize=3, label=labels.get(key, key))
            if all(_is_number(p[2]) for p in pts):
                ax.fill_between(xs, [y - p[2] for y, p in zip(ys, pts)], [y + p[2] for y, p in zip(ys, pts)], alpha=0.2)
        ax.set_ylabel(title)
        if len(keys) > 1:
            ax.legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def sample_grids(run_dir: Path, most: int = MAX_SAMPLE_GRIDS) -> list[tuple[int, Path]]:
    """(step, path) of the saved sample grids, thinned evenly to at most `most`, always with the last."""
    found = sorted((int(m.group(1)), p) for p in (run_dir / "samples").glob("step-*.png") if (m := re.match(r"step-(\d+)\.png$", p.name)))
    if len(found) <= most:
        return found
    picks = {round(i * (len(found) - 1) / (most - 1)) for i in range(most)}
    return [found[i] for i in sorted(picks)]


def health_events(run_dir: Path, rows: list[dict]) -> list[str]:
    """Warnings and remedies from log.txt, and any event fields written into metrics.jsonl."""
    events = []
    log = run_dir / "log.txt"
    if log.is_file():
        events += [line.strip() for line in log.read_text(errors="replace").splitlines() if HEALTH_WORDS.search(line)]
    for r in rows:
        for key in EVENT_KEYS:
            if r.get(key):
                value = r[key] if isinstance(r[key], str) else json.dumps(r[key])
                events.append(f"step {r.get('step', '?')}: {value}")
    return events


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
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanforgeError(f"{run_dir}: no such run folder.")
    config_file = run_dir / "config.json"
    if not config_file.is_file() and not (run_dir / "metrics.jsonl").is_file():
        raise GanforgeError(f"{run_dir} is not a ganforge run folder (no config.json or metrics.jsonl).")
    try:
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    except ValueError:
        config = {"note": f"{config_file.name} is damaged and could not be read"}
    rows = read_metrics(run_dir)
    title = f"ganforge run {run_dir.resolve().name}"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]

    last = rows[-1] if rows else {}
    summary = {"dataset": config.get("dataset", {}).get("name", "?"), "images": config.get("dataset", {}).get("images", "?"),
               "steps done": last.get("step", 0), "steps planned": config.get("train", {}).get("steps", "?"),
               "kimg": last.get("kimg", "?"), "training time (s)": last.get("elapsed_s", "?")}
    for name in ("generator.safetensors", "best.safetensors"):
        if (run_dir / name).is_file():
            summary[name] = "present"
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "kid"):
        found = [r[key] for r in rows if _is_number(r.get(key))]
        if found:
            summary[f"last {key}"] = found[-1]
    parts += ["<h2>Summary</h2>", _table(summary)]

    parts.append("<h2>Samples over time</h2>")
    grids = sample_grids(run_dir)
    if grids:
        figures = "".join(f"<figure><img src='{_png_data_uri(p.read_bytes())}' alt='samples at step {s}' width='240'>"
                          f"<figcaption>step {s}</figcaption></figure>" for s, p in grids)
        parts.append(f"<div class='grids'>{figures}</div>")
    else:
        parts.append("<p>No sample grids saved yet.</p>")

    parts.append("<h2>Curves</h2>")
    png = plot_curves(rows)
    parts.append(f"<img src='{_png_data_uri(png)}' alt='loss and metric curves'>" if png else "<p>No metrics logged yet.</p>")

    parts.append("<h2>Health events</h2>")
    events = health_events(run_dir, rows)
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


def write_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the report (default RUN_DIR/report.html) atomically; returns its path."""
    from ganforge.fileio import atomic_write

    page = build_report(run_dir)
    return atomic_write(Path(output) if output else Path(run_dir) / "report.html", lambda f: f.write(page.encode("utf-8")))
