"""Starting a run and resuming one: everything that happens before the first training step.

    run = start(TrainConfig(data="photos/", size=64))      # validates, loads data, makes the folder
    run = resume("runs/00003-photos", steps=30000)         # its own settings, its newest checkpoint

Both check everything they can before writing anything, and return a `Run` that
`ganforge.gan.loop.fit` trains.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path

from ganforge.data import ImageData, dataset_name, default_size, is_builtin, load_data
from ganforge.devices import pick_device
from ganforge.errors import GanforgeError
from ganforge.gan.checkpoint import latest_checkpoint
from ganforge.gan.config import TrainConfig, apply_preset
from ganforge.gan.events import Log
from ganforge.gan.families.base import ModelConfig
from ganforge.gan.families.layers import default_width
from ganforge.gan.families.progressive import grow_stages
from ganforge.gan.networks import FAMILIES
from ganforge.gan.rundir import RunFolder, create_run_folder
from ganforge.version import __version__

RUNS_ROOT = Path("runs")
RESUMABLE = ("steps", "device")  # what a resumed run may change; all else is the run's own


@dataclass
class Run:
    """A run folder ready to train: its settings, its data, and the checkpoint to continue from."""

    folder: RunFolder
    cfg: TrainConfig  # resolved: every "auto" setting filled in from the data
    model_cfg: ModelConfig
    data: ImageData
    state: dict | None = None  # None: a fresh run
    notes: list[Log] = field(default_factory=list)  # what starting found worth saying


def resolve(cfg: TrainConfig, data: ImageData) -> tuple[TrainConfig, ModelConfig]:
    """Fill the settings left to "auto" from the data and the network family, and return the
    model's configuration."""
    size, arch = data.size, "progressive" if cfg.grow else cfg.arch  # growing is a family of its own
    cfg = replace(
        cfg,
        size=size,
        channels=data.channels,
        g_width=cfg.g_width or default_width(size, data.channels),
        d_width=cfg.d_width or default_width(size, data.channels),
        flip=(not is_builtin(cfg.data)) if cfg.flip is None else cfg.flip,
        upsample=cfg.upsample or FAMILIES[arch].default_upsample,
    )
    if cfg.grow and cfg.grow_stage_steps is None:
        cfg = replace(cfg, grow_stage_steps=max(1, cfg.steps // grow_stages(size)))
    model = ModelConfig(arch=arch, size=size, channels=data.channels, latent_dim=cfg.latent_dim, g_width=cfg.g_width, d_width=cfg.d_width,
                        upsample=cfg.upsample, g_norm=cfg.g_norm, spectral_norm=cfg.spectral_norm, d_blur=cfg.d_blur)
    return cfg, model


def library_versions() -> dict:
    import numpy
    import PIL
    import torch
    import torchvision

    return {"ganforge": __version__, "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "pillow": PIL.__version__}


def _check_fits(cfg: TrainConfig, data: ImageData) -> None:
    if cfg.batch_size > len(data):
        raise GanforgeError(f"--batch-size {cfg.batch_size} is larger than the dataset ({len(data)} images).")


def start(cfg: TrainConfig, run_dir: str | os.PathLike | None = None, explicit=()) -> Run:
    """A new run of `cfg` in `run_dir` (default: runs/NNNNN-<data>/).

    `cfg.preset` fills every setting still at its default, except those named in `explicit` (the
    command line passes the options it was given). Settings, device and data are checked before
    the folder is made.
    """
    cfg = apply_preset(cfg, explicit)
    cfg.validate()
    cfg = replace(cfg, data=os.fspath(cfg.data))
    pick_device(cfg.device)
    data = load_data(cfg.data, cfg.size or default_size(cfg.data), cfg.channels, cfg.data_root)
    cfg, model_cfg = resolve(cfg, data)
    _check_fits(cfg, data)
    if not is_builtin(cfg.data):
        cfg = replace(cfg, data=str(Path(cfg.data).resolve()))
    if run_dir is not None:
        folder = RunFolder(Path(run_dir))
        if folder.config.exists():
            raise GanforgeError(f"{folder} already holds a run; continue it with --resume {folder}, or choose another --run-dir.")
        folder.path.mkdir(parents=True, exist_ok=True)
    else:
        folder = create_run_folder(RUNS_ROOT, dataset_name(cfg.data))
    folder.write_config({"train": cfg.to_dict(), "model": model_cfg.to_dict(),
                         "dataset": {"name": data.name, "images": len(data), "skipped": len(data.skipped)}, "versions": library_versions()})
    notes = []
    if data.skipped:
        notes += [Log(data.skip_summary(), "warning"), Log("\n".join(f"  skipped {f}: {why}" for f, why in data.skipped), "detail")]
    return Run(folder, cfg, model_cfg, data, None, notes)


def resume(run_dir: str | os.PathLike, steps: int | None = None, device: str | None = None) -> Run:
    """The run in `run_dir`, to continue from its newest readable checkpoint with its own settings;
    only `steps` (to train further) and `device` may change."""
    folder = RunFolder(Path(run_dir))
    if not folder.path.is_dir():
        raise GanforgeError(f"{folder}: no such run folder.")
    saved = folder.read_config()
    try:
        cfg = TrainConfig.from_dict(saved["train"])
    except (KeyError, TypeError, AttributeError):
        raise GanforgeError(f"{folder.config} is damaged; cannot resume this run.") from None
    cfg = replace(cfg, **{k: v for k, v in (("steps", steps), ("device", device)) if v is not None})
    cfg.validate()
    pick_device(cfg.device)
    notes: list[Log] = []
    state = latest_checkpoint(folder, warn=lambda message: notes.append(Log(message, "warning")))
    if state is None:
        raise GanforgeError(f"{folder} has no readable checkpoint to resume from.")
    if int(state["step"]) >= cfg.steps:
        raise GanforgeError(f"{folder} already reached step {int(state['step'])}; pass a larger --steps to continue it.")
    if "health_warnings" not in state:  # written before the count was kept: count the logged events
        state["health_warnings"] = sum(1 for r in folder.read_metrics() if "health" in r and r.get("step", 0) <= int(state["step"]))
    data = load_data(cfg.data, cfg.size, cfg.channels, cfg.data_root)
    cfg, model_cfg = resolve(cfg, data)
    _check_fits(cfg, data)
    return Run(folder, cfg, model_cfg, data, state, notes)
