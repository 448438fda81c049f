"""One folder per run: log.txt, metrics.jsonl, sample grids and loss curves a person can look at."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import torch

from ganforge.fileio import atomic_write


def next_run_dir(root: Path, name: str) -> Path:
    """root/NNNNN-name, numbered one past the highest run already there."""
    numbers = [int(m.group(1)) for p in root.glob("*") if (m := re.match(r"^(\d{5})-", p.name))] if root.is_dir() else []
    return root / f"{max(numbers, default=-1) + 1:05d}-{name}"


def save_grid(images: torch.Tensor, path: Path, nrow: int | None = None) -> Path:
    """images: (N, C, H, W) in [-1, 1] -> one PNG grid, written atomically."""
    from torchvision.utils import make_grid
    from PIL import Image

    from ganforge.data import to_uint8
    from ganforge.models import grid_rows

    grid = make_grid(to_uint8(images), nrow=nrow or grid_rows(len(images)), padding=2, pad_value=0)  # (3, H', W')
    img = Image.fromarray(grid.permute(1, 2, 0).numpy())
    return atomic_write(Path(path), lambda f: img.save(f, format="PNG"))


class RunLog:
    def __init__(self, run_dir: Path, echo):
        self.run_dir, self.echo = Path(run_dir), echo
        self.metrics_file = self.run_dir / "metrics.jsonl"

    def write_only(self, message: str) -> None:
        with open(self.run_dir / "log.txt", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def info(self, message: str) -> None:
        self.echo(message)
        self.write_only(message)

    def warn(self, message: str) -> None:
        self.info(f"Warning: {message}")

    def metrics(self, row: dict) -> None:
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict]:
        """Rows already logged; on resume, rows past the checkpoint are dropped by the caller's truncation."""
        if not self.metrics_file.exists():
            return []
        rows = []
        for line in self.metrics_file.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line cut short by a kill
                continue
        return rows

    def truncate_metrics(self, step: int) -> list[dict]:
        """Keep only rows up to `step`, so a resumed run does not log the lost steps twice."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= step]
        atomic_write(self.metrics_file, lambda f: f.write("".join(json.dumps(r) + "\n" for r in rows).encode()))
        return rows

    def write_summary(self, **fields) -> dict:
        """summary.json: the outcome of the run and every health event it logged."""
        summary = {**fields, "health_events": [r["health"] for r in self.read_metrics() if "health" in r]}
        atomic_write(self.run_dir / "summary.json", lambda f: f.write((json.dumps(summary, indent=2) + "\n").encode()))
        return summary

    def plot_losses(self, history: list[dict]) -> None:
        kid_rows = [r for r in history if "kid" in r]
        history = [r for r in history if "loss_d" in r]
        if not history:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r["step"] for r in history]
        fig, axes = plt.subplots(3 if kid_rows else 2, 1, figsize=(8, 8.5 if kid_rows else 6), sharex=True)
        ax1, ax2 = axes[0], axes[1]
        ax1.plot(steps, [r["loss_d"] for r in history], label="discriminator")
        ax1.plot(steps, [r["loss_g"] for r in history], label="generator")
        ax1.set_ylabel("loss")
        ax1.legend()
        ax1.set_title("Healthy GAN losses oscillate rather than fall")
        ax2.plot(steps, [r["d_real"] for r in history], label="D(real)")
        ax2.plot(steps, [r["d_fake"] for r in history], label="D(G(z))")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("mean D output")
        ax2.legend()
        if kid_rows:
            ax3 = axes[2]
            ax3.errorbar([r["step"] for r in kid_rows], [r["kid"] for r in kid_rows], yerr=[r.get("kid_std", 0) for r in kid_rows], marker="o", capsize=3)
            ax3.set_ylabel("KID (lower is better)")
        axes[-1].set_xlabel("step")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        atomic_write(self.run_dir / "losses.png", lambda f: f.write(buf.getvalue()))
