"""The training loop: steps, and around them the cadences that log, sample, score and checkpoint.

    from ganforge.gan.config import TrainConfig
    from ganforge.gan.loop import train, resume_training
    run_dir = train(TrainConfig(data="digits", steps=2000))
    resume_training(run_dir, steps=4000)

Everything the loop has to say goes out as events (`ganforge.gan.events`) to sinks: the run
folder always, the terminal by default, anything else a caller adds. Checkpoints and generators
it writes itself, since it reads them back to resume and to roll back after a divergence.

Under torchrun every process runs this loop (`ganforge.gan.distributed`): rank 0 starts or
resumes the run and sends it to the others, and alone writes the run folder, draws samples,
scores and speaks; all take the same decisions, including when to stop.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ganforge.data import BatchSampler
from ganforge.devices import pick_device
from ganforge.errors import GanforgeError, Interrupted
from ganforge.fileio import remove_file
from ganforge.gan.checkpoint import latest_checkpoint, save_checkpoint, save_generator
from ganforge.gan.config import TrainConfig
from ganforge.gan.distributed import DEFAULT_TIMEOUT, JobBroken, LostContact, Processes, join, leave
from ganforge.gan.events import CheckpointSaved, Done, GeneratorSaved, Health, Log, MetricsRow, SampleGrid, Sink, Started, StepDone
from ganforge.gan.health import HealthChecks, HealthEvent, is_diverged
from ganforge.gan.rundir import RunFolder
from ganforge.gan.run import Run, resume, start
from ganforge.gan.sinks import ConsoleSink, RunFolderSink, TensorBoardSink
from ganforge.gan.trainer import PER_CLASS, GANTrainer, StepStats

MAX_ROLLBACKS = 3


class TrainingInterrupted(Exception):
    """Training stopped early on Ctrl-C, SIGTERM or `stop_when`, with a checkpoint to continue from:
    one written at `step`, or, after a second signal that stopped it at once, the newest before."""

    def __init__(self, signum: int, step: int, run_dir: Path, saved_step: int | None = None):
        self.signum, self.step, self.run_dir = signum, step, run_dir
        saved = "checkpoint saved" if saved_step in (None, step) else f"the newest checkpoint is step {saved_step}'s"
        super().__init__(f"Stopped at step {step} ({signal.Signals(signum).name}); {saved}. Continue with: ganforge train --resume {run_dir}")


class LossWindow:
    """Means of the step statistics since the last metrics row, and the speed over those steps."""

    KEYS = ("loss_d", "loss_g", "d_real", "d_fake")

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums, self.n, self.t = dict.fromkeys(self.KEYS, 0.0), 0, time.perf_counter()

    def add(self, stats: StepStats) -> None:
        for k in self.KEYS:
            self.sums[k] += getattr(stats, k)
        self.n += 1

    def means(self, batch_size: int) -> dict:
        row = {k: round(v / max(self.n, 1), 5) for k, v in self.sums.items()}
        row["images_per_sec"] = round(self.n * batch_size / (time.perf_counter() - self.t), 2)
        self.reset()
        return row


class StopFlag:
    """Turns the first Ctrl-C or SIGTERM into a request to checkpoint and stop between steps;
    a second one interrupts at once."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay as they are
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class TrainingLoop:
    """Trains one `Run` (from `start` or `resume`) to its last step: `TrainingLoop(run, sinks).train()`.

    Each step is the trainer's; around it, at their cadences, the loop logs a metrics row, scores
    a KID, draws the fixed sample grid and checks it for collapse, and writes a checkpoint. It
    applies what the health checks decide, and rolls back to the newest checkpoint when a loss
    turns NaN or infinite.
    """

    def __init__(self, run: Run, sinks: Iterable[Sink] = (), stop_when: Callable[[int], bool] | None = None,
                 processes: Processes = Processes()):
        self.run, self.processes, self.main = run, processes, processes.is_main
        self.cfg, self.model_cfg, self.folder, self.data = run.cfg, run.model_cfg, run.folder, run.data
        self.state, self.notes = run.state, run.notes  # the checkpoint to resume from (None: a fresh run)
        own = [RunFolderSink(run.folder), *([TensorBoardSink(run.folder)] if self.cfg.tensorboard else [])]
        self.sinks = [*own, *sinks] if self.main else []  # rank 0 alone writes and speaks
        self.stop_when = stop_when
        self.step = int(self.state["step"]) if self.state is not None else 0
        self.warnings, self.elapsed_before = 0, 0.0

    def emit(self, event) -> None:
        for sink in self.sinks:
            sink(event)

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t0

    def train(self) -> Path:
        self.saved = self.state is not None  # whether the folder holds a run yet (a checkpoint)
        try:
            for note in self.notes:
                self.emit(note)
            self._set_up()
            with StopFlag() as stop:  # a signal during the last step's saving waits for it
                while self.step < self.cfg.steps:
                    self._train_step(stop)
                return self._finish()
        except LostContact as exc:
            newest = self.folder.checkpoint_files() if self.main else []
            saved = f"the newest checkpoint, step {newest[-1][0]}, is intact" if newest else "no checkpoint was written"
            timed_out = "timed out" in str(exc).lower()
            what = f"one did not answer within {self.processes.timeout:g} s" if timed_out else "one died or closed its connections"
            raise JobBroken(f"lost contact with the other training processes ({exc}): {what}; {saved}. "
                            f"Continue with: ganforge train --resume {self.folder}", timed_out) from None
        except BaseException as exc:
            if not self.saved and self.main:  # a start that never reached its first checkpoint: see Run.discard
                self.run.discard()
            elif isinstance(exc, KeyboardInterrupt):  # a second Ctrl-C, say: stopped at once
                newest = self.folder.checkpoint_files()
                raise TrainingInterrupted(getattr(exc, "signum", signal.SIGINT), self.step, self.folder.path,
                                          newest[-1][0] if newest else None) from None
            raise
        finally:
            try:
                for sink in self.sinks:
                    if hasattr(sink, "close"):
                        sink.close()
            finally:
                self.run.release()

    def _set_up(self) -> None:
        cfg, state, data, processes = self.cfg, self.state, self.data, self.processes
        dev = processes.device(pick_device(cfg.device))
        self.trainer = GANTrainer(cfg, self.model_cfg, dev, processes)
        for note in self.trainer.notes:
            self.emit(Log(note, "warning"))
        self.health = HealthChecks(cfg, data.images if self.main else None, dev)  # samples and scores are rank 0's
        if state is not None:
            try:
                self.trainer.load_state_dict(state)
            except (RuntimeError, KeyError, ValueError, TypeError):  # torch names every mismatched tensor; one line is enough
                raise GanforgeError(f"{self.folder}: its checkpoint's weights do not fit the {self.trainer.family.title} that its "
                                    f"settings describe (made by another version, or altered); start a new run, or resume it with "
                                    f"the version that made it.") from None
            if "health" in state:
                self.health.load_state_dict(state["health"])
            self.elapsed_before = float(state.get("elapsed_s", 0.0))
            self.warnings = int(state.get("health_warnings", 0))
            message = f"Resuming {self.folder} at step {self.step} of {cfg.steps}."
        else:
            message = (f"Training {self.trainer.family.title} at {cfg.size}px on {data.name} "
                       f"({len(data)} images, {data.channels} channel(s)) on {dev.type}.")
        if processes.many:
            message = message[:-1] + f", {processes.world} processes (batches of {cfg.batch_size // processes.world} each)."
        self.pin = False
        if dev.type == "cuda" and data.images.numel() < 2**30:  # small enough: keep the data on the GPU
            data = replace(data, images=data.images.to(dev))
        else:  # page-locked batches copy to the GPU while the previous step still computes
            self.pin = dev.type == "cuda"
        self.batches = BatchSampler(data, cfg.batch_size, cfg.seed, cfg.flip)
        self.pending: list[tuple[int, torch.Tensor, bool]] = []  # (step, its statistics on the device, D skipped)
        self.settle_every_step = dev.type != "cuda"
        self.emit(Started(self.folder.path, self.step, cfg.steps, message))
        self.t0 = time.perf_counter()
        if state is None:
            self._checkpoint(0)  # something to roll back to if the very first steps diverge
        self.window = LossWindow()

    def _train_step(self, stop: StopFlag) -> None:
        cfg, trainer = self.cfg, self.trainer
        batch, labels = self.batches.batch(self.step), self.batches.labels(self.step) if self.model_cfg.classes else None
        with self.processes.watched():
            self.pending.append((self.step + 1, *trainer.step_async(batch.pin_memory() if self.pin else batch, self.step, labels)))
        self.step += 1
        step, last = self.step, self.step == cfg.steps
        asked = stop.signum or (signal.SIGINT if self.stop_when is not None and self.stop_when(step) else 0)
        signum = self.processes.largest(asked)  # every process stops after the same step
        log, sample = step % cfg.log_every == 0 or last, step % cfg.sample_every == 0 or last
        checkpoint, score = step % cfg.checkpoint_every == 0 or last, bool(cfg.eval_every) and step % cfg.eval_every == 0
        if not (self.settle_every_step or signum or log or sample or checkpoint or score) or not self._settle():
            return
        if log:
            self.emit(MetricsRow(step, {"step": step, **self.window.means(cfg.batch_size), "d_skipped": trainer.runtime.d_skipped,
                                        "augment_p": round(trainer.augment_p, 4), "elapsed_s": round(self.elapsed(), 2),
                                        "kimg": round(step * cfg.batch_size / 1000, 3), **trainer.family.progress(trainer.G)}))
        if score and self.main:
            self._score()
        if sample and self.main:
            self._sample()
        if checkpoint:
            self._checkpoint(step)
        if signum and not last:
            if not checkpoint:
                self._checkpoint(step)
            interrupted = TrainingInterrupted(signum, step, self.folder.path)
            interrupted.agreed = True  # every process stops here together
            self.emit(Done(step, round(self.elapsed(), 1), {}, str(interrupted), stopped_by=signum))
            raise interrupted

    def _settle(self) -> bool:
        """Read the statistics of the steps since the last reading (one wait for the device) and act
        on them step by step: a NaN or infinite loss rolls back (False), health checks decide, the
        loss window and StepDone get each step. Every step on the CPU; on a GPU only at the steps
        that log, sample, score, checkpoint or stop, so that the GPU never waits for Python."""
        pending, self.pending = self.pending, []
        rows = torch.stack([values for _, values, _ in pending]).tolist()
        for (step, _, skip), (loss_d, loss_g, d_real, d_fake) in zip(pending, rows):
            if is_diverged(loss_d, loss_g):
                self._roll_back(step)
                return False
            stats = StepStats(loss_d, loss_g, d_real, d_fake, skip)
            if event := self.health.after_step(step, loss_d, d_fake):
                for action in event.actions:
                    self.trainer.apply(action)
                self._warn(event)
            self.window.add(stats)
            self.emit(StepDone(step, stats, self.trainer))
        return True

    def _score(self) -> None:
        """--eval-every: a quick KID, and best.safetensors when it is the lowest so far."""
        result = self.health.score(self.trainer.sampler(), self.model_cfg.latent_dim)
        if result is None:
            return
        scored, best = result
        self.emit(MetricsRow(self.step, {"step": self.step, **scored}))
        if best:
            path = save_generator(self.trainer.sampler(), self.model_cfg, self.folder.best, self.step, extra={"kid": scored["kid"]})
            self.emit(GeneratorSaved(self.step, path))

    def _sample(self) -> None:
        """The fixed noise batch: checked for collapse, then drawn."""
        samples = self.trainer.fixed_samples()
        check = self.health.check_samples(self.step, samples, self.trainer.family.sample_resolution(self.trainer.G))
        if check is not None:
            self.emit(MetricsRow(self.step, {"step": self.step, "diversity_ratio": check.ratio}))
        self.emit(SampleGrid(self.step, samples, PER_CLASS if self.model_cfg.classes else None))
        if check is not None and check.message:
            self._warn(HealthEvent(self.step, "mode_collapse", check.message))

    def _checkpoint(self, at: int) -> None:
        # Rank 0 writes; every process learns how it went, so a full disk stops them all alike.
        self.processes.share(lambda: self._write_checkpoint(at))
        self.saved = True

    def _write_checkpoint(self, at: int) -> None:
        state = {**self.trainer.state_dict(), "health": self.health.state_dict(), "health_warnings": self.warnings,
                 "config": self.cfg.to_dict(), "model_config": self.model_cfg.to_dict(), "elapsed_s": self.elapsed()}
        path = save_checkpoint(state, self.folder, at, self.cfg.keep)
        if not self.saved:  # the first checkpoint: the folder holds a run now
            remove_file(self.folder.starting)
            self.saved = True
        self.emit(CheckpointSaved(at, path))

    def _warn(self, event: HealthEvent, back_to: int | None = None) -> None:
        self.warnings += 1
        self.emit(Health(event.step, event.kind, event.message, [asdict(a) for a in event.actions], back_to))

    def _roll_back(self, failed_at: int) -> None:
        """A NaN or infinite loss: back to the newest checkpoint with lower learning rates."""
        trainer = self.trainer
        if trainer.runtime.rollbacks >= MAX_ROLLBACKS:
            raise GanforgeError(f"Training diverged (a NaN or infinite loss) at step {failed_at} after {MAX_ROLLBACKS} rollbacks; "
                                f"the checkpoints in {self.folder} are intact. Try lower --lr-g and --lr-d, or --r1 10.")
        state = self.processes.share(lambda: latest_checkpoint(self.folder, warn=lambda message: self.emit(Log(message, "warning"))))
        if state is None:
            raise GanforgeError(f"Training diverged at step {failed_at} and {self.folder} has no readable checkpoint to return to.")
        trainer.roll_back(state)
        if "health" in state:
            self.health.load_state_dict(state["health"])
        self.step = int(state["step"])
        self._warn(HealthEvent(failed_at, "divergence", f"the loss diverged at step {failed_at}; rolled back to step {self.step} with "
                                                        f"learning rates x{trainer.runtime.lr_scale:g} (rollback {trainer.runtime.rollbacks} of {MAX_ROLLBACKS})."),
                   back_to=self.step)
        self.window.reset()

    def _finish(self) -> Path:
        self.processes.share(self._write_final)
        return self.folder.path

    def _write_final(self) -> None:
        trainer, seconds = self.trainer, self.elapsed()
        self.emit(GeneratorSaved(self.step, save_generator(trainer.sampler(), self.model_cfg, self.folder.generator, self.step,
                                                           extra={"train_config": self.cfg.to_dict()})))
        summary = {"step": self.step, "elapsed_s": round(seconds, 1), "d_skipped": trainer.runtime.d_skipped, "rollbacks": trainer.runtime.rollbacks,
                   "best_kid": None if self.health.best_kid == float("inf") else self.health.best_kid, "health_warnings": self.warnings}
        message = (f"Done: {self.step} steps in {seconds:.0f} s; {trainer.runtime.d_skipped} discriminator updates skipped; "
                   f"{self.warnings} health warning(s){' (see summary.json)' if self.warnings else ''}.")
        self.emit(Done(self.step, round(seconds, 1), summary, message))


def fit(run: Run, sinks: Iterable[Sink] = (), stop_when: Callable[[int], bool] | None = None, processes: Processes = Processes()) -> Path:
    """Train `run` (from `start` or `resume`) to its last step; returns the run folder.

    `stop_when(step)` is asked after every step; True stops there with a checkpoint and raises
    TrainingInterrupted, as Ctrl-C does.
    """
    return TrainingLoop(run, sinks, stop_when, processes).train()


def _default_sinks(sinks: Iterable[Sink] | None) -> list[Sink]:
    return [ConsoleSink()] if sinks is None else list(sinks)


def _fit_everywhere(make_run: Callable[[], Run], sinks, stop_when, timeout: float) -> Path:
    """`fit` in this process, or, under torchrun, in all the job's processes: rank 0 makes the run
    (reading and writing its folder) and sends it to the others, which get no lock and no folder
    of their own to write."""
    processes = join(timeout)
    together = False  # whether the processes end in step, and may wait for each other on the way out
    try:
        if not processes.many:
            return fit(make_run(), sinks, stop_when)
        made: list[Run] = []

        def make() -> tuple:
            run = make_run()
            made.append(run)
            if run.cfg.batch_size % processes.world:
                run.discard() if run.state is None else run.release()
                raise GanforgeError(f"--batch-size {run.cfg.batch_size} does not divide evenly among {processes.world} processes; "
                                    f"choose a multiple of {processes.world} (the batch size is the global one).")
            return str(run.folder.path), run.cfg, run.model_cfg, run.data, run.state, run.notes

        try:
            path, cfg, model_cfg, data, state, notes = processes.share(make)
        except LostContact as exc:
            raise JobBroken(f"lost contact with the other training processes while starting ({exc}).") from None
        run = made[0] if processes.is_main else Run(RunFolder(Path(path)), cfg, model_cfg, data, state, notes)
        try:
            out = fit(run, sinks, stop_when, processes)
        except TrainingInterrupted as exc:
            together = getattr(exc, "agreed", False)  # a stop they agreed on (not a second Ctrl-C to one of them)
            raise
        together = True
        return out
    finally:
        if together:
            leave(processes)


def train(cfg: TrainConfig, run_dir: str | os.PathLike | None = None, *, sinks: Iterable[Sink] | None = None,
          stop_when: Callable[[int], bool] | None = None, explicit=(), timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Train a new run of `cfg`; returns its folder. `sinks` receive every event besides the run
    folder (default: progress and messages on stderr; [] for none). Under torchrun, every process
    calls this; `timeout` is how long one waits for a silent other before the job is given up."""
    return _fit_everywhere(lambda: start(cfg, run_dir, explicit), _default_sinks(sinks), stop_when, timeout)


def resume_training(run_dir: str | os.PathLike, steps: int | None = None, device: str | None = None, data: str | os.PathLike | None = None, *,
                    sinks: Iterable[Sink] | None = None, stop_when: Callable[[int], bool] | None = None, timeout: float = DEFAULT_TIMEOUT,
                    **settings) -> Path:
    """Continue the run in `run_dir` from its newest checkpoint, with its own settings; `steps` may
    raise the number of steps, `device` move it, `data` point to its pictures' new place, and
    `settings` change precision, compile, sync_batchnorm, cuda_fast or tensorboard. Under torchrun, as `train`."""
    return _fit_everywhere(lambda: resume(run_dir, steps, device, data, **settings), _default_sinks(sinks), stop_when, timeout)
