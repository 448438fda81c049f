"""The GAN training loop, as the lesson describes it: alternate a discriminator phase and a
generator phase, with the remedies for imbalance (separate learning rates, skipping D's update
while its loss is too low, label smoothing) as settings.

    from ganforge.config import TrainConfig
    from ganforge.train import train
    run_dir = train(TrainConfig(data="digits", steps=2000))
"""

from __future__ import annotations

import json
import platform
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganforge import __version__
from ganforge.augment import AdaptiveP, augment, parse_policy
from ganforge.checkpoint import GENERATOR_FILE, latest_checkpoint, save_checkpoint, save_generator
from ganforge.config import TrainConfig
from ganforge.data import BatchSampler, ImageData, check_size, dataset_name, default_size, is_builtin, load_data, to_float
from ganforge.devices import pick_device
from ganforge.errors import GanforgeError
from ganforge.health import RunHealth
from ganforge.metrics import generate, is_diverged
from ganforge.multiscale import grow_stage, grow_stages, pyramid, stage_start
from ganforge.models import ModelConfig, build_discriminator, build_generator, default_width, recalibrate_batchnorm
from ganforge.runlog import RunLog, next_run_dir, save_grid

FIXED_SAMPLES = 64
MAX_ROLLBACKS = 3


class TrainingInterrupted(Exception):
    """Raised after a checkpoint has been written in answer to Ctrl-C or SIGTERM."""

    def __init__(self, signum: int, step: int, run_dir: Path):
        self.signum, self.step, self.run_dir = signum, step, run_dir
        super().__init__(f"Stopped at step {step} ({signal.Signals(signum).name}); checkpoint saved. Continue with: ganforge train --resume {run_dir}")


def resolve(cfg: TrainConfig, data: ImageData) -> tuple[TrainConfig, ModelConfig]:
    """Fill the 'auto' settings from the data and return the model's configuration."""
    size = data.size
    if cfg.grow and cfg.arch != "dcgan":
        raise GanforgeError(f"--grow builds its own convolutional networks; it cannot be combined with --arch {cfg.arch}.")
    cfg = replace(
        cfg,
        size=size,
        channels=data.channels,
        g_width=cfg.g_width or default_width(size, data.channels),
        d_width=cfg.d_width or default_width(size, data.channels),
        flip=(not is_builtin(cfg.data)) if cfg.flip is None else cfg.flip,
        # Both papers upsample with nearest + conv; a growing generator built from transposed
        # convolutions showed a checkerboard from 32 px on, still there after 1,000 steps at 128 px.
        upsample=cfg.upsample or ("nearest" if cfg.grow or cfg.arch == "msg" else "transpose"),
    )
    if cfg.grow and cfg.grow_stage_steps is None:
        cfg = replace(cfg, grow_stage_steps=max(1, cfg.steps // grow_stages(size)))
    model = ModelConfig(arch="progressive" if cfg.grow else cfg.arch, size=size, channels=data.channels, latent_dim=cfg.latent_dim, g_width=cfg.g_width,
                        d_width=cfg.d_width, upsample=cfg.upsample, g_norm=cfg.g_norm, spectral_norm=cfg.spectral_norm, d_blur=cfg.d_blur)
    return cfg, model


def check_config(cfg: TrainConfig) -> None:
    for name in ("steps", "batch_size", "latent_dim", "log_every", "sample_every", "checkpoint_every", "keep"):
        if getattr(cfg, name) < 1:
            raise GanforgeError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(cfg, name)}.")
    if cfg.grow_stage_steps is not None and not cfg.grow:
        raise GanforgeError("--grow-stage-steps needs --grow: only a growing run trains in stages.")
    if cfg.grow_stage_steps is not None and cfg.grow_stage_steps < 1:
        raise GanforgeError(f"--grow-stage-steps must be at least 1, not {cfg.grow_stage_steps}.")
    for name in ("lr_g", "lr_d"):
        if not getattr(cfg, name) > 0:
            raise GanforgeError(f"--{name.replace('_', '-')} must be positive.")
    if not 0 <= cfg.label_smoothing < 1:
        raise GanforgeError("--label-smoothing must be in [0, 1).")
    if cfg.r1 < 0 or not 0 <= cfg.ema_decay < 1:
        raise GanforgeError("--r1 must be at least 0 and --ema-decay in [0, 1).")
    if cfg.augment:
        parse_policy(cfg.augment_policy)
        if cfg.augment_p != "auto":
            try:
                ok = 0 <= float(cfg.augment_p) <= 1
            except ValueError:
                ok = False
            if not ok:
                raise GanforgeError(f"--augment-p must be a probability from 0 to 1 or 'auto', not {cfg.augment_p!r}.")
    if cfg.size is not None:
        check_size(cfg.size)


def library_versions() -> dict:
    import numpy, PIL, torchvision

    return {"ganforge": __version__, "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": numpy.__version__, "pillow": PIL.__version__}


@dataclass
class StepStats:
    loss_d: float
    loss_g: float
    d_real: float
    d_fake: float
    d_skipped: bool


class GANTrainer:
    """Holds the two networks and their optimizers; one call of `step` is one training step.

    It knows nothing of files or progress bars: `train()` below does the bookkeeping.
    """

    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig, device: torch.device):
        self.cfg, self.model_cfg, self.device = cfg, model_cfg, device
        torch.manual_seed(cfg.seed)
        self.G = build_generator(model_cfg).to(device)
        self.D = build_discriminator(model_cfg).to(device)
        # oneDNN's convolutions run faster on NHWC tensors; the result is the same network.
        self.memory_format = torch.channels_last if device.type == "cpu" and model_cfg.arch != "mlp" else torch.contiguous_format
        self.G.to(memory_format=self.memory_format)
        self.D.to(memory_format=self.memory_format)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        self.fixed_noise = self.noise(FIXED_SAMPLES, torch.Generator().manual_seed(cfg.seed))
        self.d_skipped = 0
        self.rollbacks, self.lr_scale = 0, 1.0  # divergence recoveries so far, and the learning-rate cut they made
        self.ema = None
        if cfg.ema:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema_decay = cfg.ema_decay  # set per step by ema_decay_at
            self.ema = AveragedModel(self.G, multi_avg_fn=lambda avg, cur, n: get_ema_multi_avg_fn(self.ema_decay)(avg, cur, n), use_buffers=True)
        self.policy = parse_policy(cfg.augment_policy) if cfg.augment else ()
        self.ada = AdaptiveP() if cfg.augment and cfg.augment_p == "auto" else None
        self.augment_p = 0.0 if not cfg.augment else (self.ada.p if self.ada else float(cfg.augment_p))
        self.multiscale, self.progressive = model_cfg.arch == "msg", model_cfg.arch == "progressive"

    def set_stage(self, step: int) -> None:
        """Progressive growing: every network to the resolution and fade-in of `step`."""
        if self.progressive:
            stage = grow_stage(step, self.model_cfg.size, self.cfg.grow_stage_steps)
            for net in (self.G, self.D, *([self.ema.module] if self.ema is not None else [])):
                net.set_stage(*stage)

    def ema_decay_at(self, step: int) -> float:
        """--ema-decay, except while growing: each stage's new block starts from its initial
        weights, and a long average blends those into the samples (washed-out, blocky pictures for
        hundreds of steps after every fade-in). So the average restarts short at every stage and
        lengthens as the stage goes on, with TensorFlow's ExponentialMovingAverage ramp."""
        if not self.progressive:
            return self.cfg.ema_decay
        into = step - stage_start(step, self.model_cfg.size, self.cfg.grow_stage_steps)
        return min(self.cfg.ema_decay, (1 + into) / (10 + into))

    def _real_input(self, real: torch.Tensor):
        """What D sees of a real batch: a pyramid (MSG-GAN), the growing resolution, or as is."""
        if self.multiscale:
            return pyramid(real)
        if self.progressive:
            res, alpha = self.G.resolution, self.G.alpha
            real = F.adaptive_avg_pool2d(real, res) if res < real.shape[-1] else real
            if alpha < 1:  # reals fade in like the generator's new block
                real = torch.lerp(F.interpolate(F.avg_pool2d(real, 2), scale_factor=2, mode="nearest"), real, alpha)
        return real

    @property
    def sampler_g(self) -> nn.Module:
        """The generator to draw pictures from: the moving average (with BatchNorm statistics
        measured for its weights) when there is one, else G itself."""
        if self.ema is None:
            return self.G
        return recalibrate_batchnorm(self.ema.module, self.model_cfg.latent_dim, seed=self.cfg.seed)

    def _d_losses(self, logits_real, logits_fake, real_target):
        if self.cfg.loss == "hinge":
            return F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean()
        zeros = torch.zeros_like(logits_fake)
        return F.binary_cross_entropy_with_logits(logits_real, real_target) + F.binary_cross_entropy_with_logits(logits_fake, zeros)

    def _g_loss(self, logits_fake):
        if self.cfg.loss == "hinge":
            return -logits_fake.mean()
        return F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        # Drawn on the CPU so every device sees the same latent vectors for a seed.
        return torch.randn(n, self.model_cfg.latent_dim, generator=generator).to(self.device)

    def step(self, real_u8: torch.Tensor, step: int) -> StepStats:
        real = to_float(real_u8.to(self.device, non_blocking=True)).contiguous(memory_format=self.memory_format)  # (B, C, H, W) in [-1, 1]
        z = self.noise(real.shape[0], torch.Generator().manual_seed(self.cfg.seed * 1_000_033 + step + 1))
        real_target = torch.full((real.shape[0],), 1.0 - self.cfg.label_smoothing, device=self.device)
        g_aug = torch.Generator().manual_seed(self.cfg.seed * 2_000_029 + step + 1)
        self.set_stage(step)

        def aug(x):
            if not self.policy:
                return x
            if isinstance(x, list):  # every scale of one image gets the same transform
                state, out = g_aug.get_state(), []
                for xi in x:
                    g_aug.set_state(state)
                    out.append(augment(xi, self.policy, self.augment_p, g_aug))
                return out
            return augment(x, self.policy, self.augment_p, g_aug)

        fake = self.G.forward_scales(z) if self.multiscale else self.G(z)

        # ---- update D: real images towards 1, generated images towards 0 ----
        if self.cfg.r1 > 0:
            real.requires_grad_(True)
        logits_real = self.D(aug(self._real_input(real)))
        logits_fake = self.D(aug([f.detach() for f in fake] if self.multiscale else fake.detach()))
        loss_d = self._d_losses(logits_real, logits_fake, real_target)
        if self.cfg.r1 > 0:  # R1: penalise D's gradient on real images, keeping it smooth there
            (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
            loss_d = loss_d + self.cfg.r1 / 2 * grad.pow(2).sum((1, 2, 3)).mean()
        if self.ada is not None:
            self.augment_p = self.ada.update(logits_real)
        skip = loss_d.item() < self.cfg.d_skip_below
        if skip:  # D is winning: let G catch up
            self.d_skipped += 1
        else:
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()

        # ---- update G through a frozen D, towards 1 (the non-saturating loss) ----
        self.D.requires_grad_(False)
        loss_g = self._g_loss(self.D(aug(fake)))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        if self.ema is not None:
            self.ema_decay = self.ema_decay_at(step)
            self.ema.update_parameters(self.G)

        with torch.no_grad():
            d_real, d_fake = torch.sigmoid(logits_real).mean().item(), torch.sigmoid(logits_fake).mean().item()
        return StepStats(loss_d.item(), loss_g.item(), d_real, d_fake, skip)

    @torch.no_grad()
    def fixed_samples(self) -> torch.Tensor:
        images = generate(self.sampler_g, self.fixed_noise)  # eval mode, restored after
        if images.shape[-1] < self.model_cfg.size:  # still growing: show it at full size
            images = F.interpolate(images, size=self.model_cfg.size, mode="nearest")
        return images

    def state(self) -> dict:
        return {
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "d_skipped": self.d_skipped,
            "d_skip_below": self.cfg.d_skip_below,  # auto-balance may have raised it
            "rollbacks": self.rollbacks,
            "lr_scale": self.lr_scale,
            "torch_rng": torch.get_rng_state(),
            **({"generator_ema": self.ema.module.state_dict(), "ema_n": self.ema.n_averaged} if self.ema is not None else {}),
            **({"ada": self.ada.state_dict()} if self.ada is not None else {}),
        }

    def roll_back(self, state: dict, lr_factor: float = 0.5) -> None:
        """Return to a checkpoint after a divergence, with both learning rates cut by `lr_factor`
        relative to what they were when the run diverged."""
        rollbacks, new_scale = self.rollbacks + 1, self.lr_scale * lr_factor
        self.load_state(state)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] *= new_scale / self.lr_scale
        self.rollbacks, self.lr_scale = rollbacks, new_scale

    def load_state(self, state: dict) -> None:
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.d_skipped = int(state["d_skipped"])
        self.cfg = replace(self.cfg, d_skip_below=float(state["d_skip_below"]))
        self.rollbacks, self.lr_scale = int(state["rollbacks"]), float(state["lr_scale"])
        torch.set_rng_state(state["torch_rng"])
        if self.ema is not None:
            self.ema.module.load_state_dict(state["generator_ema"])
            self.ema.n_averaged.copy_(state["ema_n"])
        if self.ada is not None:
            self.ada.load_state_dict(state["ada"])
            self.augment_p = self.ada.p


class LossWindow:
    """Means of the step statistics since the last metrics line, and the speed over those steps."""

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
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _start_run(cfg: TrainConfig, run_dir: Path | None) -> tuple[TrainConfig, ModelConfig, ImageData, Path]:
    cfg = cfg.with_preset()
    check_config(cfg)
    data = load_data(cfg.data, cfg.size or default_size(cfg.data), cfg.channels, cfg.data_root)
    cfg, model_cfg = resolve(cfg, data)
    if not is_builtin(cfg.data):
        cfg = replace(cfg, data=str(Path(cfg.data).resolve()))
    run_dir = Path(run_dir) if run_dir else next_run_dir(Path("runs"), dataset_name(cfg.data))
    if (run_dir / "config.json").exists():
        raise GanforgeError(f"{run_dir} already holds a run; continue it with --resume {run_dir}, or choose another --run-dir.")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"train": cfg.to_dict(), "model": model_cfg.to_dict(), "dataset": {"name": data.name, "images": len(data), "skipped": len(data.skipped)}, "versions": library_versions()}
    (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return cfg, model_cfg, data, run_dir


def train(cfg: TrainConfig, run_dir: str | Path | None = None, resume: str | Path | None = None, steps: int | None = None,
          device: str | None = None, quiet: bool = False, callback=None) -> Path:
    """Train (or, with `resume`, continue) a GAN; returns the run folder.

    `callback(step, stats, trainer)` is called after every step; returning True stops training
    there with a checkpoint, as Ctrl-C does.
    """
    echo = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    start_state = None
    if resume is not None:
        run_dir = Path(resume)
        config_file = run_dir / "config.json"
        if not config_file.is_file():
            raise GanforgeError(f"{run_dir} is not a ganforge run folder (no config.json).")
        try:
            saved = json.loads(config_file.read_text())
            cfg = TrainConfig.from_dict(saved["train"])
        except (ValueError, KeyError, TypeError):
            raise GanforgeError(f"{config_file} is damaged; cannot resume this run.") from None
        log = RunLog(run_dir, echo)
        data = load_data(cfg.data, cfg.size, cfg.channels, cfg.data_root)
        cfg, model_cfg = resolve(cfg, data)
        start_state = latest_checkpoint(run_dir, warn=log.warn)
        if start_state is None:
            raise GanforgeError(f"{run_dir} has no readable checkpoint to resume from.")
    else:
        cfg, model_cfg, data, run_dir = _start_run(cfg, run_dir)
        log = RunLog(run_dir, echo)
        if data.skipped:
            log.warn(data.skip_summary())
            log.write_only("\n".join(f"  skipped {f}: {why}" for f, why in data.skipped))
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    if device is not None:
        cfg = replace(cfg, device=device)
    check_config(cfg)

    dev = pick_device(cfg.device)
    trainer = GANTrainer(cfg, model_cfg, dev)
    step, elapsed_before = 0, 0.0
    if start_state is not None:
        trainer.load_state(start_state)
        step, elapsed_before = int(start_state["step"]), float(start_state.get("elapsed_s", 0.0))
        log.info(f"Resuming {run_dir} at step {step} of {cfg.steps}.")
        if step >= cfg.steps:
            raise GanforgeError(f"{run_dir} already reached step {step}; pass a larger --steps to continue it.")
    else:
        log.info(f"Training {cfg.arch}{' grown from 8px' if cfg.grow else ''} at {cfg.size}px on {data.name} ({len(data)} images, {data.channels} channel(s)) on {dev.type}.")

    health = RunHealth(cfg, model_cfg, data, log, run_dir, dev)
    if start_state is not None and "health" in start_state:
        health.load_state_dict(start_state["health"])
    if dev.type == "cuda" and data.images.numel() < 2**30:  # small enough: keep the data on the GPU
        data = replace(data, images=data.images.to(dev))
    sampler = BatchSampler(data, cfg.batch_size, cfg.seed, cfg.flip)
    history = log.truncate_metrics(step) if start_state is not None else []

    def checkpoint(at: int):
        save_checkpoint({**trainer.state(), "health": health.state_dict(), "config": trainer.cfg.to_dict(), "model_config": model_cfg.to_dict(),
                         "elapsed_s": elapsed_before + time.perf_counter() - t0}, run_dir, at, cfg.keep)

    def roll_back(failed_at: int) -> int:
        """A NaN or infinite loss: back to the newest checkpoint with lower learning rates."""
        if trainer.rollbacks >= MAX_ROLLBACKS:
            raise GanforgeError(f"Training diverged (a NaN or infinite loss) at step {failed_at} after {MAX_ROLLBACKS} rollbacks; "
                                f"the checkpoints in {run_dir} are intact. Try lower --lr-g and --lr-d, or --r1 10.")
        state = latest_checkpoint(run_dir, warn=log.warn)
        trainer.roll_back(state)
        if "health" in state:
            health.load_state_dict(state["health"])
        log.warn(f"the loss diverged at step {failed_at}; rolled back to step {state['step']} with learning rates x{trainer.lr_scale:g} "
                 f"(rollback {trainer.rollbacks} of {MAX_ROLLBACKS}).")
        log.metrics({"step": failed_at, "health": {"step": failed_at, "kind": "divergence", "message": f"rolled back to step {state['step']}", "actions": []}})
        history[:] = [r for r in history if r["step"] <= state["step"]]
        return int(state["step"])

    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    if start_state is None:
        checkpoint(0)  # something to roll back to if the very first steps diverge
    window = LossWindow()
    bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True, disable=quiet, file=sys.stderr,
               mininterval=0.2 if sys.stderr.isatty() else 30)
    try:
        with StopFlag() as stop:
            while step < cfg.steps:
                stats = trainer.step(sampler.batch(step), step)
                if is_diverged(stats.loss_d, stats.loss_g):
                    step = roll_back(step + 1)
                    bar.n = step
                    window.reset()
                    continue
                step += 1
                health.after_step(step, stats, trainer)
                window.add(stats)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    row = {"step": step, **window.means(cfg.batch_size), "d_skipped": trainer.d_skipped, "augment_p": round(trainer.augment_p, 4),
                           "elapsed_s": round(elapsed_before + time.perf_counter() - t0, 2), "kimg": round(step * cfg.batch_size / 1000, 3)}
                    if cfg.grow:
                        row.update(resolution=trainer.G.resolution, alpha=round(trainer.G.alpha, 3))
                    log.metrics(row)
                    history.append(row)
                    bar.set_postfix(loss_d=f"{row['loss_d']:.3f}", loss_g=f"{row['loss_g']:.3f}", img_s=f"{row['images_per_sec']:.0f}", refresh=False)
                if cfg.eval_every and step % cfg.eval_every == 0:
                    history.append(health.evaluate(step, trainer))
                if step % cfg.sample_every == 0 or step == cfg.steps:
                    samples = trainer.fixed_samples()
                    save_grid(samples, run_dir / "samples" / f"step-{step:06d}.png")
                    health.after_samples(step, samples, resolution=getattr(trainer.G, "resolution", None))
                    log.plot_losses(history)
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    checkpoint(step)
                bar.update(1)
                user_stop = callback is not None and callback(step, stats, trainer)
                if (stop.signum is not None or user_stop) and step < cfg.steps:
                    if step % cfg.checkpoint_every:
                        checkpoint(step)
                    log.plot_losses(history)
                    raise TrainingInterrupted(stop.signum or signal.SIGINT, step, run_dir)
    finally:
        bar.close()

    save_generator(trainer.sampler_g, model_cfg, run_dir / GENERATOR_FILE, step, extra={"train_config": trainer.cfg.to_dict()})
    elapsed = elapsed_before + time.perf_counter() - t0
    summary = log.write_summary(step=step, elapsed_s=round(elapsed, 1), d_skipped=trainer.d_skipped, rollbacks=trainer.rollbacks,
                                best_kid=None if health.best_kid == float("inf") else health.best_kid)
    log.info(f"Done: {step} steps in {elapsed:.0f} s; {trainer.d_skipped} discriminator updates skipped; "
             f"{len(summary['health_events'])} health warning(s){' (see summary.json)' if summary['health_events'] else ''}.")
    return run_dir
