"""Saving and loading: training checkpoints (.pt) and shareable generators (.safetensors).

A checkpoint holds the trainer's state (weights, optimizer moments, runtime state, RNG), the
health checks' state, the user's config and the model config, under FORMAT_VERSION. Files written
by every earlier release still load: their keys are unchanged (tests/fixtures/runs-v1).

Checkpoints hold only tensors and plain Python values and are read back with
`torch.load(weights_only=True)`, so a file from elsewhere can never run code. Every file is
written to a temporary name and renamed into place: a killed process leaves either the previous
file or the complete new one, never half a file under a real name.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import torch
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.fileio import atomic_write
from ganforge.gan.families.base import ModelConfig
from ganforge.gan.networks import build_generator, recalibrate_batchnorm
from ganforge.gan.rundir import RunFolder

FORMAT_VERSION = 1


def save_checkpoint(state: dict, run: RunFolder | str | os.PathLike, step: int, keep: int) -> Path:
    """Write run's checkpoint for `step`, then delete all but the newest `keep`."""
    run = RunFolder(run) if not isinstance(run, RunFolder) else run
    state = {"format_version": FORMAT_VERSION, "step": step, **state}
    buffer = io.BytesIO()  # in memory first: torch.save would hide a full disk behind an error of its own
    torch.save(state, buffer)
    path = atomic_write(run.checkpoint(step), lambda f: f.write(buffer.getbuffer()))
    for _, old in run.checkpoint_files()[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise GanforgeError(f"{path}: no such checkpoint.") from None
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GanforgeError(f"{path} is not a readable ganforge checkpoint ({reason[:200]}).") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION or "generator" not in state:
        raise GanforgeError(f"{path} is not a ganforge checkpoint (format {FORMAT_VERSION}).")
    return state


def latest_checkpoint(run: RunFolder | str | os.PathLike, map_location="cpu", warn=None) -> dict | None:
    """The newest checkpoint that loads; an unreadable newer one is reported through `warn` and passed over."""
    run = RunFolder(run) if not isinstance(run, RunFolder) else run
    for step, path in reversed(run.checkpoint_files()):
        try:
            return load_checkpoint(path, map_location)
        except GanforgeError as exc:
            if warn:
                warn(f"{exc} Falling back to the previous checkpoint.")
    return None


def save_generator(generator: nn.Module, cfg: ModelConfig, path: Path, step: int, extra: dict | None = None) -> Path:
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    metadata = {"format": "ganforge-generator", "format_version": str(FORMAT_VERSION), "step": str(step), "model_config": json.dumps(cfg.to_dict())}
    for k, v in (extra or {}).items():
        metadata[k] = json.dumps(v)
    return atomic_write(Path(path), lambda f: f.write(save(tensors, metadata=metadata)))


def _model_config(d, source: Path) -> ModelConfig:
    try:
        return ModelConfig.from_dict(json.loads(d) if isinstance(d, str) else d)
    except (AttributeError, TypeError, ValueError):
        raise GanforgeError(f"{source}: its description of the generator is damaged.") from None


def _generator_from_state(state_dict: dict, cfg: ModelConfig, source: Path) -> nn.Module:
    try:
        g = build_generator(cfg)
        g.load_state_dict(state_dict)
    except (RuntimeError, KeyError, ValueError, TypeError, ZeroDivisionError):
        raise GanforgeError(f"{source}: the weights do not match the generator its settings describe; the file is damaged or altered.") from None
    return g.eval()


def read_generator_file(path: Path) -> tuple[nn.Module, ModelConfig, int]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise GanforgeError(f"{path}: no such file.") from None
    except Exception as exc:
        raise GanforgeError(f"{path} is not a readable safetensors file ({str(exc).strip()[:200]}).") from None
    if meta.get("format") != "ganforge-generator":
        raise GanforgeError(f"{path} is a safetensors file but not a ganforge generator (no ganforge metadata).")
    try:
        cfg = _model_config(meta["model_config"], path)
        step = int(meta.get("step", 0))
    except (KeyError, ValueError, TypeError):
        raise GanforgeError(f"{path}: its ganforge metadata is damaged.") from None
    return _generator_from_state(tensors, cfg, path), cfg, step


def load_generator(source: str | os.PathLike) -> tuple[nn.Module, ModelConfig, int]:
    """A generator from a run folder (the newer of generator.safetensors and the latest checkpoint),
    a generator .safetensors file, or a checkpoint .pt file. Returns (generator, config, step)."""
    source = Path(source)
    if not source.exists():
        raise GanforgeError(f"{source}: no such run folder or generator file.")
    if source.is_dir():
        run, candidates = RunFolder(source), []
        if run.generator.is_file():
            candidates.append(read_generator_file(run.generator))
        ckpts = run.checkpoint_files()
        if ckpts and (not candidates or ckpts[-1][0] > candidates[0][2]):
            candidates = [_generator_from_checkpoint(ckpts[-1][1])]
        if not candidates:
            raise GanforgeError(f"{source} holds no generator.safetensors and no checkpoints; is it a ganforge run folder?")
        return candidates[0]
    if source.suffix == ".pt":
        return _generator_from_checkpoint(source)
    return read_generator_file(source)


def _generator_from_checkpoint(path: Path) -> tuple[nn.Module, ModelConfig, int]:
    state = load_checkpoint(path)
    if "model_config" not in state:
        raise GanforgeError(f"{path} does not say which generator it holds (no model_config); it was not written by ganforge train.")
    cfg = _model_config(state["model_config"], path)
    if "generator_ema" in state:  # sample from the moving average when trained with one
        g = recalibrate_batchnorm(_generator_from_state(state["generator_ema"], cfg, path), cfg.latent_dim)
        return g, cfg, int(state["step"])
    return _generator_from_state(state["generator"], cfg, path), cfg, int(state["step"])
