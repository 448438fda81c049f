"""What a training run tells the world, as it happens.

The loop emits these events to sinks: callables that take one event. The run folder is one sink
(`sinks.RunFolderSink`), the terminal another (`sinks.ConsoleSink`); a web page or a TensorBoard
writer is one more, and the loop does not change for it.

    def my_sink(event):
        match event:
            case MetricsRow(step=step, row=row):
                print(step, row["loss_d"], row["loss_g"])
    train(cfg, sinks=[my_sink])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

Sink = Callable[[object], None]


@dataclass(frozen=True)
class Started:
    """Training begins (or resumes) at `step` of `total`."""

    run_dir: Path
    step: int
    total: int
    message: str


@dataclass(frozen=True)
class Log:
    """A line for the person: "info" and "warning" lines are shown, "detail" lines only logged."""

    message: str
    level: str = "info"


@dataclass(frozen=True)
class StepDone:
    """After every training step; `stats` is a trainer.StepStats, `trainer` the GANTrainer itself
    (for a sink that wants to look closer; changing it changes the run)."""

    step: int
    stats: object
    trainer: object = None


@dataclass(frozen=True)
class MetricsRow:
    """A row for metrics.jsonl: the loss means every --log-every steps, a KID, a diversity ratio."""

    step: int
    row: dict


@dataclass(frozen=True)
class SampleGrid:
    """The fixed noise batch drawn at `step`: (N, C, H, W) in [-1, 1], `per_row` to a row of the grid
    (a conditional run draws one row per class; None: a near-square grid)."""

    step: int
    images: torch.Tensor
    per_row: int | None = None


@dataclass(frozen=True)
class Health:
    """A health check's finding (gan.health.HealthEvent fields); `back_to` is the step a divergence
    rolled the run back to, whose later metrics no longer count."""

    step: int
    kind: str
    message: str
    actions: list = field(default_factory=list)
    back_to: int | None = None

    def to_dict(self) -> dict:
        return {"step": self.step, "kind": self.kind, "message": self.message, "actions": self.actions}


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: Path


@dataclass(frozen=True)
class GeneratorSaved:
    """generator.safetensors at the end, or best.safetensors when the KID improves."""

    step: int
    path: Path


@dataclass(frozen=True)
class Done:
    """The last event: training reached its last step (`stopped_by` is None; `summary` is what
    summary.json holds), or stopped early on a signal or `stop_when`, with a checkpoint."""

    step: int
    elapsed_s: float
    summary: dict
    message: str
    stopped_by: int | None = None
