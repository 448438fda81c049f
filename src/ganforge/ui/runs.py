"""What the Watch page shows of a run folder, read from its files: any run, whether the page or
a terminal started it, while it trains or afterwards.

    view = RunView(Path("runs/00003-cats"))
    view.progress()       # "step 1,200 of 3,000 (40%) · 830 images/s · about 2 min left"
"""

from __future__ import annotations

import json
from pathlib import Path

from ganforge.gan.rundir import RunFolder


def list_runs(root: Path) -> list[str]:
    """Run folders under `root`, newest first."""
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if RunFolder.looks_like_run(p)), reverse=True)


class RunView:
    def __init__(self, path: Path):
        self.folder = RunFolder(Path(path))
        self.rows = self.folder.read_metrics() if self.folder.metrics.exists() else []
        try:
            self.config = json.loads(self.folder.config.read_text())
        except (OSError, ValueError):
            self.config = {}

    @property
    def total(self) -> int | None:
        return self.config.get("train", {}).get("steps")

    def losses(self) -> list[dict]:
        return [r for r in self.rows if "loss_d" in r]

    def progress(self) -> str:
        rows = self.losses()
        if not rows:
            return "starting…" if self.folder.config.exists() else "no such run"
        last, total = rows[-1], self.total or rows[-1]["step"]
        text = f"step {last['step']:,} of {total:,} ({last['step'] / total:.0%}) · {last.get('images_per_sec', 0):,.0f} images/s"
        per_step = last.get("elapsed_s", 0) / max(last["step"], 1)
        left = (total - last["step"]) * per_step
        if last["step"] < total and per_step > 0:
            text += f" · about {left / 60:.0f} min left" if left >= 90 else f" · about {left:.0f} s left"
        if self.folder.summary.exists():
            text += " · done"
        return text

    def curves(self) -> list[dict]:
        """Long-form rows for a line plot: step, value, series."""
        out = []
        for r in self.losses():
            for key, name in (("loss_d", "D loss"), ("loss_g", "G loss"), ("d_real", "D(real)"), ("d_fake", "D(G(z))")):
                if key in r:
                    out.append({"step": r["step"], "value": r[key], "series": name})
        for r in self.rows:
            if "kid" in r:
                out.append({"step": r["step"], "value": r["kid"], "series": "KID"})
        return out

    def warnings(self) -> str:
        events = [r["health"] for r in self.rows if "health" in r]
        return "\n".join(f"step {e['step']}: {e['message']}" for e in events) or "none"

    def grids(self) -> list[tuple[int, Path]]:
        return self.folder.sample_grid_files()

    def files(self) -> list[str]:
        if not self.folder.path.is_dir():
            return []
        return sorted(str(p.relative_to(self.folder.path)) for p in self.folder.path.rglob("*")
                      if p.is_file() and not any(part.startswith(".") for part in p.relative_to(self.folder.path).parts))
