"""Where training events go: the run folder a person reads afterwards, and the terminal.

`RunFolderSink` writes log.txt, metrics.jsonl, the sample grids, losses.png and summary.json
(checkpoints and generators are written by the loop itself, which needs them to resume and roll
back). `TensorBoardSink` writes TensorBoard events beside them (`--tensorboard`). `ConsoleSink`
prints messages and a progress bar on stderr.
"""

from __future__ import annotations

import json
import sys

from ganforge.fileio import atomic_write, atomic_write_text
from ganforge.gan.events import Done, Health, Log, MetricsRow, SampleGrid, Started, StepDone
from ganforge.gan.plots import curves_png
from ganforge.gan.rundir import RunFolder
from ganforge.images import grid_image, save_grid


class RunFolderSink:
    def __init__(self, run: RunFolder):
        self.run = run
        self.history: list[dict] = []  # metrics rows of this run so far, for losses.png
        self._stale = False  # history changed since losses.png was drawn

    def __call__(self, event) -> None:
        match event:
            case Started(step=step, message=message):
                # A resumed run redoes the steps after its checkpoint: their rows go, and so does a
                # line that a kill cut short.
                self.history = [r for r in self.run.read_metrics() if r.get("step", 0) <= step]
                self._stale = True
                if self.run.metrics.exists():
                    self.run.rewrite_metrics(self.history)
                self.run.append_log(message)
            case Log(message=message, level=level):
                self.run.append_log(f"Warning: {message}" if level == "warning" else message)
            case MetricsRow(row=row):
                self.run.append_metrics(row)
                self.history.append(row)
                self._stale = True
            case SampleGrid(step=step, images=images, per_row=per_row):
                save_grid(images, self.run.sample_grid(step), per_row)
                self._plot()
            case Health(step=step, message=message, back_to=back_to):
                self.run.append_log(f"Warning: {message}")
                if back_to is not None:  # rolled back: the steps after back_to are trained again
                    self.history = [r for r in self.history if r.get("step", 0) <= back_to or "health" in r]
                    self.run.rewrite_metrics([r for r in self.run.read_metrics() if r.get("step", 0) <= back_to or "health" in r])
                row = {"step": step, "health": event.to_dict()}
                self.run.append_metrics(row)
                self.history.append(row)
                self._stale = True
            case Done(stopped_by=stopped_by, summary=summary, message=message):
                self._plot()
                if stopped_by is None:
                    summary = {**summary, "health_events": [r["health"] for r in self.run.read_metrics() if "health" in r]}
                    atomic_write_text(self.run.summary, json.dumps(summary, indent=2) + "\n")
                self.run.append_log(message)

    def _plot(self) -> None:
        if not self._stale:
            return
        self._stale = False
        png = curves_png([r for r in self.history if "health" not in r])
        if png is not None:
            atomic_write(self.run.losses_plot, lambda f: f.write(png))


class TensorBoardSink:
    """`--tensorboard`: losses, D's outputs, speed, KID and the sample grids as TensorBoard events in
    the run folder, so that `tensorboard --logdir runs` shows every run side by side."""

    # metrics row key -> TensorBoard tag (scalars in one section plot together)
    TAGS = {"loss_d": "loss/D", "loss_g": "loss/G", "d_real": "D_output/real", "d_fake": "D_output/generated",
            "images_per_sec": "speed/images_per_sec", "kid": "quality/KID", "kid_std": "quality/KID_std",
            "diversity_ratio": "quality/diversity_ratio", "augment_p": "augment/p", "resolution": "growing/resolution", "alpha": "growing/fade_in"}

    def __init__(self, run: RunFolder):
        self.run, self.writer = run, None

    def __call__(self, event) -> None:
        match event:
            case Started(step=step):
                from torch.utils.tensorboard import SummaryWriter

                # A resumed run trains the steps after its checkpoint again: TensorBoard drops what
                # earlier files say about them.
                self.writer = SummaryWriter(str(self.run.path), purge_step=step + 1 if step > 0 else None)
            case MetricsRow(step=step, row=row) if self.writer is not None:
                for key, tag in self.TAGS.items():
                    if isinstance(row.get(key), (int, float)):
                        self.writer.add_scalar(tag, row[key], step)
            case SampleGrid(step=step, images=images, per_row=per_row) if self.writer is not None:
                self.writer.add_image("samples", grid_image(images, per_row), step)  # the grid of samples/step-*.png
                self.writer.flush()
            case Health(step=step, message=message) if self.writer is not None:
                self.writer.add_text("health", message, step)
            case Done():
                self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ConsoleSink:
    """Messages and a tqdm progress bar on stderr (updated twice a second on a terminal, every 30
    seconds into a log file)."""

    def __init__(self, file=None, bar: bool = True):
        self.file, self.show_bar = file or sys.stderr, bar
        self.bar = None

    def _say(self, message: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write(message, file=self.file)
        self.file.flush()

    def __call__(self, event) -> None:
        match event:
            case Started(step=step, total=total, message=message):
                self._say(message)
                if self.show_bar:
                    from tqdm.auto import tqdm

                    self.bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, file=self.file,
                                    mininterval=0.2 if self.file.isatty() else 30)
            case Log(message=message, level=level) if level != "detail":
                self._say(f"Warning: {message}" if level == "warning" else message)
            case Health(message=message, back_to=back_to):
                self._say(f"Warning: {message}")
                if back_to is not None and self.bar is not None:
                    self.bar.n = back_to
                    self.bar.refresh()
            case MetricsRow(row=row) if self.bar is not None and "loss_d" in row:
                self.bar.set_postfix(loss_d=f"{row['loss_d']:.3f}", loss_g=f"{row['loss_g']:.3f}", img_s=f"{row['images_per_sec']:.0f}", refresh=False)
            case StepDone() if self.bar is not None:
                self.bar.update(1)
            case Done(message=message, stopped_by=stopped_by):
                self.close()
                if stopped_by is None:  # a stop is told by the TrainingInterrupted it raises
                    self._say(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
