"""Starting a run and resuming one: everything that happens before the first training step.

    run = start(TrainConfig(data="photos/", size=64))      # validates, loads data, makes the folder
    run = resume("runs/00003-photos", steps=30000)         # its own settings, its newest checkpoint

Both check everything they can before writing anything, lock the folder against a second
process, and return a `Run` that `ganforge.gan.loop.fit` trains. A folder becomes a run with its
first checkpoint; until then, whatever stops the start (an error, Ctrl-C, a kill) leaves nothing
that blocks the same command from starting it again.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path

from ganforge.data import ImageData, compare_listings, dataset_name, default_size, is_builtin, load_data
from ganforge.devices import pick_device
from ganforge.errors import GanforgeError, signals_held
from ganforge.fileio import atomic_write_text, make_folder
from ganforge.gan.checkpoint import latest_checkpoint
from ganforge.gan.config import TrainConfig, apply_preset
from ganforge.gan.events import Log
from ganforge.gan.families.base import ModelConfig
from ganforge.gan.families.progressive import grow_stages
from ganforge.gan.networks import FAMILIES
from ganforge.gan.rundir import RunFolder, RunLock, create_run_folder
from ganforge.version import __version__

RUNS_ROOT = Path("runs")
# What a resumed run may change (how many steps, where, how fast); all else is the run's own.
RESUMABLE = ("steps", "device", "data", "precision", "compile", "sync_batchnorm", "cuda_fast", "tensorboard")


@dataclass
class Run:
    """A run folder ready to train, locked for this process: its settings, its data, and the
    checkpoint to continue from."""

    folder: RunFolder
    cfg: TrainConfig  # resolved: every "auto" setting filled in from the data
    model_cfg: ModelConfig
    data: ImageData
    state: dict | None = None  # None: a fresh run, which becomes a run with its first checkpoint
    notes: list[Log] = field(default_factory=list)  # what starting found worth saying
    lock: RunLock | None = None
    created: bool = False  # whether this start made the folder

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def discard(self) -> None:
        """After a start that stopped before its first checkpoint: the folder goes if this start
        made it (ganforge's files only); a folder that was there stays, marked as an unfinished
        start with its settings, which the same command starts afresh and --resume restarts."""
        try:
            with signals_held():  # a second Ctrl-C waits for the clean-up
                if self.created:
                    self.folder.remove()
        finally:
            self.release()


def check_precision(precision: str, device) -> None:
    """Refuse, in one sentence, a --precision that `device` cannot train in."""
    import torch

    if precision == "fp16" and device.type != "cuda":
        raise GanforgeError(f"--precision fp16 needs a CUDA GPU (its gradient scaling is made for one); on {device.type} use --precision bf16 or fp32.")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise GanforgeError("--precision bf16: this GPU has no bfloat16 arithmetic; use --precision fp16 or fp32.")


def resolve(cfg: TrainConfig, data: ImageData) -> tuple[TrainConfig, ModelConfig]:
    """Fill the settings left to "auto" from the data and the network family, and return the
    model's configuration."""
    size, arch = data.size, "progressive" if cfg.grow else cfg.arch  # growing is a family of its own
    cfg = replace(
        cfg,
        size=size,
        channels=None if cfg.transparent else data.channels,  # --channels speaks of colour only; RGBA is --transparent
        g_width=cfg.g_width or FAMILIES[arch].default_width(size, data.channels),
        d_width=cfg.d_width or FAMILIES[arch].default_width(size, data.channels),
        flip=(not is_builtin(cfg.data)) if cfg.flip is None else cfg.flip,
        upsample=cfg.upsample or FAMILIES[arch].default_upsample,
    )
    if cfg.grow and cfg.grow_stage_steps is None:
        cfg = replace(cfg, grow_stage_steps=max(1, cfg.steps // grow_stages(size)))
    model = ModelConfig(arch=arch, size=size, channels=data.channels, latent_dim=cfg.latent_dim, g_width=cfg.g_width, d_width=cfg.d_width,
                        upsample=cfg.upsample, g_norm=cfg.g_norm, g_noise=cfg.g_noise, spectral_norm=cfg.spectral_norm, d_blur=cfg.d_blur,
                        classes=data.classes if cfg.conditional else ())
    return cfg, model


def library_versions() -> dict:
    import numpy
    import PIL
    import torch
    import torchvision

    return {"ganforge": __version__, "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "pillow": PIL.__version__}


def _fit_batch(cfg: TrainConfig, data: ImageData, notes: list[Log]) -> TrainConfig:
    """A folder smaller than --batch-size trains on batches of all its pictures."""
    if cfg.batch_size <= len(data):
        return cfg
    notes.append(Log(f"--batch-size {cfg.batch_size} is more than the {len(data)} pictures; training on batches of {len(data)}.", "warning"))
    return replace(cfg, batch_size=len(data))


def _config_json(cfg: TrainConfig, model_cfg: ModelConfig, data: ImageData) -> dict:
    return {"train": cfg.to_dict(), "model": model_cfg.to_dict(), "dataset": {"name": data.name, "images": len(data), "skipped": len(data.skipped)},
            "versions": library_versions()}


def _write_listing(folder: RunFolder, data: ImageData) -> None:
    if data.files is not None:
        atomic_write_text(folder.data_listing, json.dumps({"files": data.files}) + "\n")


def _read_listing(folder: RunFolder) -> dict | None:
    try:
        files = json.loads(folder.data_listing.read_text())["files"]
        return files if isinstance(files, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a run from before the listing was kept, or a damaged one: nothing to compare


def _tidy(folder: RunFolder, notes: list[Log]) -> None:
    """Remove what killed writes left behind in the folder."""
    removed = folder.remove_temporaries()
    if removed:
        notes.append(Log(f"removed {len(removed)} unfinished file(s) that an interrupted write left: "
                         f"{', '.join(p.name for p in removed[:3])}{' ...' if len(removed) > 3 else ''}", "detail"))


def _begin(folder: RunFolder, cfg: TrainConfig, model_cfg: ModelConfig, data: ImageData, notes: list[Log]) -> None:
    """Write a start's settings into its (locked) folder, marked as a start until its first checkpoint."""
    if folder.unfinished():
        notes.append(Log(f"{folder} held a start that never reached its first checkpoint; starting it afresh.", "warning"))
        folder.clear_start()
    _tidy(folder, notes)
    atomic_write_text(folder.starting, "a start that has not reached its first checkpoint\n")
    folder.write_config(_config_json(cfg, model_cfg, data))
    _write_listing(folder, data)


def start(cfg: TrainConfig, run_dir: str | os.PathLike | None = None, explicit=()) -> Run:
    """A new run of `cfg` in `run_dir` (default: runs/NNNNN-<data>/), locked for this process.

    `cfg.preset` fills every setting still at its default, except those named in `explicit` (the
    command line passes the options it was given). Settings, device and data are checked before
    the folder is made. A `run_dir` holding a start that never reached its first checkpoint is
    started afresh; one holding a run is refused.
    """
    cfg = apply_preset(cfg, explicit)
    cfg.validate()
    cfg = replace(cfg, data=os.fspath(cfg.data))
    check_precision(cfg.precision, pick_device(cfg.device))
    data = load_data(cfg.data, cfg.size or max(default_size(cfg.data), FAMILIES[cfg.arch].min_size), cfg.channels, cfg.data_root, cfg.conditional, cfg.transparent)
    cfg, model_cfg = resolve(cfg, data)
    notes: list[Log] = []
    cfg = _fit_batch(cfg, data, notes)
    if not is_builtin(cfg.data):
        cfg = replace(cfg, data=str(Path(cfg.data).resolve()))
    if run_dir is not None:
        folder = RunFolder(Path(run_dir))
        created = not folder.path.exists()
        make_folder(folder.path)
    else:
        folder, created = create_run_folder(RUNS_ROOT, dataset_name(cfg.data)), True
    run = Run(folder, cfg, model_cfg, data, None, notes, created=created)
    try:
        run.lock = RunLock(folder)
        if folder.holds_run():
            raise GanforgeError(f"{folder} already holds a run; continue it with --resume {folder}, or choose another --run-dir.")
        _begin(folder, cfg, model_cfg, data, notes)
    except BaseException:
        if run.lock is not None:
            run.discard()
        raise
    if data.skipped:
        notes += [Log(data.skip_summary(), "warning"), Log("\n".join(f"  skipped {f}: {why}" for f, why in data.skipped), "detail")]
    return run


def resume(run_dir: str | os.PathLike, steps: int | None = None, device: str | None = None, data: str | os.PathLike | None = None,
           **settings) -> Run:
    """The run in `run_dir`, locked for this process, to continue from its newest readable
    checkpoint with its own settings; only `steps` (to train further), `device`, `data` (the
    same pictures, moved) and, as `settings`, precision, compile, sync_batchnorm, cuda_fast and tensorboard may change. A start
    that never reached its first checkpoint starts again from step 0, with its own settings."""
    unknown = sorted(set(settings) - set(RESUMABLE))
    if unknown:
        raise GanforgeError(f"a resumed run keeps its own settings; {', '.join(unknown)} cannot change (only {', '.join(RESUMABLE)}).")
    folder = RunFolder(Path(run_dir))
    if not folder.path.is_dir():
        raise GanforgeError(f"{folder}: no such run folder.")
    if not folder.config.exists() and not folder.lock_file.exists():  # no run: leave the folder as it is
        raise GanforgeError(f"{folder} is not a ganforge run folder (no config.json).")
    lock = RunLock(folder)
    try:
        run = _resume(folder, folder.read_config(), {"steps": steps, "device": device, **settings}, data)
    except BaseException:
        lock.release()
        raise
    run.lock = lock
    return run


def _resume(folder: RunFolder, saved: dict, changes: dict, new_data: str | os.PathLike | None) -> Run:
    try:
        before = TrainConfig.from_dict(saved["train"])
    except (KeyError, TypeError, AttributeError):
        raise GanforgeError(f"{folder.config} is damaged; cannot resume this run.") from None
    cfg = replace(before, **{k: v for k, v in changes.items() if v is not None})
    if new_data is not None:
        cfg = replace(cfg, data=_moved_data(before.data, os.fspath(new_data)))
    cfg.validate()
    check_precision(cfg.precision, pick_device(cfg.device))
    notes: list[Log] = []
    state = latest_checkpoint(folder, warn=lambda message: notes.append(Log(message, "warning")))
    unfinished = folder.unfinished()
    if state is None and not unfinished:
        raise GanforgeError(f"{folder} has no readable checkpoint to resume from.")
    if state is not None and int(state["step"]) >= cfg.steps:
        raise GanforgeError(f"{folder} already reached step {int(state['step'])}; pass a larger --steps to continue it.")
    if not is_builtin(cfg.data) and not Path(cfg.data).exists():
        raise GanforgeError(f"{cfg.data}, the pictures this run trained on, is gone; if they moved, continue with: "
                            f"ganforge train --resume {folder} --data NEW_PATH.")
    data = load_data(cfg.data, cfg.size, cfg.channels, cfg.data_root, cfg.conditional, cfg.transparent)
    cfg, model_cfg = resolve(cfg, data)
    _check_classes(folder, saved, model_cfg)
    cfg = _fit_batch(cfg, data, notes)
    if unfinished:  # stopped before its first checkpoint: start it again, with its own settings
        notes.append(Log(f"{folder} never reached its first checkpoint; training it from step 0 with its own settings.", "warning"))
        _begin(folder, cfg, model_cfg, data, notes)
        return Run(folder, cfg, model_cfg, data, None, notes)
    _tidy(folder, notes)
    _check_data(folder, cfg, data, notes, moved=new_data is not None)
    if cfg != before:  # more steps, another device, the pictures' new place: the run's settings now
        folder.write_config({**saved, "train": cfg.to_dict(), "dataset": _config_json(cfg, model_cfg, data)["dataset"]})
    if "health_warnings" not in state:  # written before the count was kept: count the logged events
        state["health_warnings"] = sum(1 for r in folder.read_metrics() if "health" in r and r.get("step", 0) <= int(state["step"]))
    return Run(folder, cfg, model_cfg, data, state, notes)


def _check_classes(folder: RunFolder, saved: dict, model_cfg: ModelConfig) -> None:
    """A conditional run continues with the classes it learnt, or not at all: a class added, gone or
    renamed would change what each learnt class means."""
    before = tuple((saved.get("model") or {}).get("classes") or ())
    if before != model_cfg.classes:
        raise GanforgeError(f"{folder} learnt the classes {', '.join(before)}, but the class subfolders are now "
                            f"{', '.join(model_cfg.classes) or 'none'}; put them back as they were to continue, or start a new run.")


def _moved_data(trained_on: str, new: str) -> str:
    """--data on resume: the same pictures in a new place, never other ones."""
    if is_builtin(trained_on) or is_builtin(new):
        if new != trained_on:
            raise GanforgeError(f"this run trained on {trained_on}; --data with --resume can only say where the same pictures are now.")
        return new
    return str(Path(new).resolve())


def _check_data(folder: RunFolder, cfg: TrainConfig, data: ImageData, notes: list[Log], moved: bool) -> None:
    """Say, and log, when the pictures differ from those the run last trained on; refuse a --data
    that holds mostly other pictures; then remember the pictures."""
    before = _read_listing(folder) if data.files is not None else None
    if before:
        added, removed, changed = compare_listings(before, data.files)
        kept = len(before) - removed
        if moved and kept < len(before) / 2:
            raise GanforgeError(f"{cfg.data} holds only {kept} of the {len(before)} pictures this run trained on; "
                                f"--data with --resume is for the same pictures moved; to train on others, start a new run.")
        if added or removed or changed:
            notes.append(Log(f"the pictures in {cfg.data} changed since the run last trained: {added} added, {removed} removed, "
                             f"{changed} changed; training continues on the {len(data)} there now (so it will not repeat an "
                             f"uninterrupted run exactly).", "warning"))
    _write_listing(folder, data)
