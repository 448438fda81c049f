"""One GAN training step, as the lesson describes it: the discriminator learns real images towards 1
and generated ones towards 0, then the generator learns through a frozen discriminator towards 1.

    trainer = GANTrainer(cfg, model_cfg, torch.device("cpu"))
    stats = trainer.step(real_u8, step)      # uint8 (B, C, H, W) -> StepStats
    stats = trainer.step(real_u8, step, labels)   # a class-conditional pair: the batch's classes (B,)

The trainer holds the two networks, their optimizers, the EMA generator, the adaptive augmentation
probability and the runtime state (`Runtime`); it knows nothing of files, folders or progress bars.
Family-specific behaviour (image pyramids, growing resolutions) comes from the network family's
adapter, so the step below is written once for all of them.

In a job of several processes (`ganforge.gan.distributed`), each process runs the step on its
rows of the same global batch and latent vectors, through DistributedDataParallel wrappers and
BatchNorm over the global batch; every decision (skipping D's update, the augmentation
probability) is taken from statistics averaged over the processes, so they never disagree.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.gan.augment import AdaptiveP, augment_views, parse_policy
from ganforge.gan.config import TrainConfig
from ganforge.gan.distributed import Processes, sync_batchnorm
from ganforge.gan.families.base import ModelConfig
from ganforge.gan.health import Action
from ganforge.gan.losses import LOSSES, r1_penalty
from ganforge.gan.networks import build_discriminator, build_generator, family, recalibrate_batchnorm
from ganforge.gan.sampling import generate, latents
from ganforge.images import to_float

FIXED_SAMPLES = 64
CLASS_ROWS, PER_CLASS = 16, 8  # a conditional run's sample grid: a row of 8 for each of (up to) 16 classes


@dataclass
class StepStats:
    loss_d: float
    loss_g: float
    d_real: float  # mean D output on the real batch
    d_fake: float  # mean D output on the generated batch
    d_skipped: bool


@dataclass
class Runtime:
    """What training changes as it goes, besides weights and optimizer moments. It is saved in
    checkpoints; the user's TrainConfig is never rewritten."""

    d_skip_below: float  # starts at --d-skip-below; auto-balance may raise it
    d_skipped: int = 0  # discriminator updates skipped so far
    rollbacks: int = 0  # divergence recoveries so far
    lr_scale: float = 1.0  # the cut of both learning rates that those recoveries made


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of --precision on `device`; None for plain fp32."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def compiler_problem(device: torch.device) -> str | None:
    """Why torch.compile cannot run here (no C++ compiler, say), or None when it can."""
    try:
        torch.compile(lambda x: x * 2 + 1)(torch.ones(4, device=device))
        return None
    except Exception as exc:  # anything the compiler stack raises
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__


def judge(D: nn.Module, x, y: torch.Tensor | None) -> torch.Tensor:
    """D's logits for x, told the classes y when the pair is conditional."""
    return D(x) if y is None else D(x, y)


def fixed_inputs(model_cfg: ModelConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The latents (and class labels) that every sample grid of a run draws: 64 latents, or for a
    conditional run the same 8 latents in a row for each class, so that a column shows one latent
    across the classes."""
    if not model_cfg.classes:
        return latents(FIXED_SAMPLES, model_cfg.latent_dim, seed), None
    rows = min(model_cfg.num_classes, CLASS_ROWS)
    z = latents(PER_CLASS, model_cfg.latent_dim, seed).repeat(rows, 1)
    return z, torch.arange(rows).repeat_interleave(PER_CLASS)


class GANTrainer:
    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig, device: torch.device, processes: Processes = Processes()):
        self.cfg, self.model_cfg, self.device, self.processes = cfg, model_cfg, device, processes
        self.notes: list[str] = []  # warnings for the loop to pass on
        self.family = family(model_cfg)(model_cfg, cfg)
        self.loss = LOSSES[cfg.loss]
        torch.manual_seed(cfg.seed)
        self.G = build_generator(model_cfg).to(device)
        self.D = build_discriminator(model_cfg).to(device)
        # oneDNN's convolutions run faster on NHWC tensors; the result is the same network.
        self.memory_format = torch.channels_last if device.type == "cpu" and self.family.channels_last else torch.contiguous_format
        self.G.to(memory_format=self.memory_format)
        self.D.to(memory_format=self.memory_format)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
        self.fixed_noise, self.fixed_labels = fixed_inputs(model_cfg, cfg.seed)
        self.fixed_noise = self.fixed_noise.to(device)
        self.runtime = Runtime(d_skip_below=cfg.d_skip_below)
        self.ema = None
        if cfg.ema:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema_decay = cfg.ema_decay  # set per step from the family's schedule
            self.ema = AveragedModel(self.G, multi_avg_fn=lambda avg, cur, n: get_ema_multi_avg_fn(self.ema_decay)(avg, cur, n), use_buffers=True)
        self.policy = parse_policy(cfg.augment_policy) if cfg.augment else ()
        self.ada = AdaptiveP() if cfg.augment and cfg.augment_p == "auto" else None
        self.augment_p = 0.0 if not cfg.augment else (self.ada.p if self.ada else float(cfg.augment_p))
        self._sampler = None  # (EMA updates seen, generator with its BatchNorm statistics measured)
        self.amp_dtype = amp_dtype(getattr(cfg, "precision", "fp32"), device)
        fp16 = self.amp_dtype == torch.float16
        self.scalers = {"g": torch.amp.GradScaler("cuda"), "d": torch.amp.GradScaler("cuda")} if fp16 else {}
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.cuda_fast
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.cuda_fast
        if cfg.compile:
            self._compile()
        # The networks as a step runs them: G and D themselves in one process; with several, wrapped
        # so that their gradients are averaged (the EMA copy above keeps plain BatchNorm: sampling
        # happens on rank 0 alone).
        self.g_run, self.d_run = self.G, self.D
        if processes.many:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # A 1-channel convolution's weight looks alike in both layouts, and DDP notes the copy it makes.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            # BatchNorm's statistics are the global batch's on every process already: no copying them.
            no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters else {"broadcast_buffers": False}
            options = dict(device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=self.family.unused_parameters, **no_sync)
            synced = sync_batchnorm if cfg.sync_batchnorm else (lambda net: net)
            self.g_run = DDP(synced(self.G), **options)
            self.d_run = DDP(synced(self.D), **options)

    def _compile(self) -> None:
        """torch.compile G and D in place (their state dicts keep their keys), or say why not."""
        problem = compiler_problem(self.device)
        if problem is not None:
            self.notes.append(f"--compile: torch.compile cannot run here ({problem}); training in eager mode.")
            return
        import torch._dynamo

        torch._dynamo.config.suppress_errors = True  # a graph it cannot compile runs eagerly
        self.G.compile()
        if self.cfg.r1 > 0:  # the R1 penalty differentiates through D twice, which compiled graphs cannot
            self.notes.append("--compile: with --r1 only the generator is compiled (the penalty needs D's double backward).")
        else:
            self.D.compile()
    def _nets(self) -> list[nn.Module]:
        return [self.G, self.D, *([self.ema.module] if self.ema is not None else [])]

    def set_step(self, step: int) -> None:
        """Bring every network to `step`'s schedule (a growing resolution, say)."""
        self.family.begin_step(step, self._nets())

    def step(self, real_u8: torch.Tensor, step: int, labels: torch.Tensor | None = None) -> StepStats:
        """One step on the global batch `real_u8` (uint8, (B, C, H, W)), and its class labels (B,)
        for a conditional pair; with several processes, this one trains on its rows of it. The
        statistics returned are the global batch's."""
        values, skip = self.step_async(real_u8, step, labels)
        return StepStats(*values.tolist(), skip)

    def step_async(self, real_u8: torch.Tensor, step: int, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, bool]:
        """`step`, without waiting for the device: the statistics (loss_d, loss_g, d_real, d_fake)
        as a tensor where the step computed them, and whether D's update was skipped."""
        batch, rows, processes = real_u8.shape[0], self.processes.rows(real_u8.shape[0]), self.processes
        real = to_float(real_u8[rows].to(self.device, non_blocking=True)).contiguous(memory_format=self.memory_format)  # (b, C, H, W) in [-1, 1]
        z = latents(batch, self.model_cfg.latent_dim, self.cfg.seed * 1_000_033 + step + 1)[rows].to(self.device)
        # A conditional pair: G draws the classes of the real batch, so that D cannot tell real from
        # generated by how often a class comes up (a folder's classes are rarely balanced).
        y = labels[rows].to(self.device) if self.model_cfg.classes else None
        real_target = torch.full((real.shape[0],), 1.0 - self.cfg.label_smoothing, device=self.device)
        g_aug = torch.Generator().manual_seed(self.cfg.seed * 2_000_029 + step + 1)
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None)
        self.set_step(step)

        def aug(x):
            return augment_views(x, self.policy, self.augment_p, g_aug, batch, rows)

        with autocast:
            fake = self.family.fake(self.g_run, z, y)

        # ---- update D: real images towards 1, generated images towards 0 ----
        if self.cfg.r1 > 0:
            real.requires_grad_(True)
        with autocast:
            logits_real, own_loss = self.family.judge_real(self.d_run, aug(self.family.real(real, self.G)), y)
            logits_real = logits_real.float()
            logits_fake = judge(self.d_run, aug(self.family.detach(fake)), y).float()
        loss_d = self.loss.d(logits_real, logits_fake, real_target)
        if self.cfg.r1 > 0:  # R1: penalise D's gradient on real images, keeping it smooth there (in fp32)
            loss_d = loss_d + self.cfg.r1 / 2 * r1_penalty(logits_real, real)
        if self.ada is not None:
            signs, count = (processes.mean(torch.stack([torch.sign(logits_real.detach()).sum(), torch.tensor(float(logits_real.numel()),
                                                                                                  device=self.device)])) * processes.world).tolist()
            self.augment_p = self.ada.update_counts(signs, round(count))
        # Both losses are never negative: without a threshold there is nothing to wait for the device for.
        skip = self.runtime.d_skip_below > 0 and processes.mean(loss_d.detach()).item() < self.runtime.d_skip_below
        if skip:  # D is winning: let G catch up
            self.runtime.d_skipped += 1
        else:
            self.opt_d.zero_grad(set_to_none=True)
            # D's own loss (fastgan's reconstruction) trains D, but the reported loss stays the
            # adversarial one, which the health checks and --d-skip-below read.
            self._backward_and_step(loss_d if own_loss is None else loss_d + own_loss.float(), self.opt_d, "d")

        # ---- update G through a frozen D, towards 1 ----
        # (D itself, not its gradient-averaging wrapper: no gradients of D are coming.)
        self.D.requires_grad_(False)
        with autocast:
            logits_g = judge(self.D, aug(fake), y).float()
        loss_g = self.loss.g(logits_g)
        self.opt_g.zero_grad(set_to_none=True)
        self._backward_and_step(loss_g, self.opt_g, "g")
        self.D.requires_grad_(True)
        if self.ema is not None:
            self.ema_decay = self.ema_decay_at(step)
            self.ema.update_parameters(self.G)

        with torch.no_grad():
            values = torch.stack([loss_d.detach(), loss_g.detach(), torch.sigmoid(logits_real).mean(), torch.sigmoid(logits_fake).mean()])
        return processes.mean(values), skip

    def _backward_and_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, which: str) -> None:
        scaler = self.scalers.get(which)
        if scaler is None:
            loss.backward()
            opt.step()
        else:  # fp16: scale the loss so that small gradients survive, and skip steps that overflow
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    def ema_decay_at(self, step: int) -> float:
        """The moving average's decay at `step`: the family's schedule, and with --ema-warmup the
        ramp of TensorFlow's ExponentialMovingAverage, (1 + step) / (10 + step), so that the
        average follows G closely at first and lengthens up to --ema-decay."""
        decay = self.family.ema_decay(step, self.cfg.ema_decay)
        return min(decay, (1 + step) / (10 + step)) if self.cfg.ema_warmup else decay

    # ---- the remedies that health checks decide on ----

    def apply(self, action: Action) -> None:
        if action.kind == "scale_lr_d":
            for group in self.opt_d.param_groups:
                group["lr"] *= action.value
        elif action.kind == "skip_d_below":
            self.runtime.d_skip_below = max(self.runtime.d_skip_below, action.value)
        else:
            raise ValueError(f"unknown action {action.kind!r}")

    def roll_back(self, state: dict, lr_factor: float = 0.5) -> None:
        """Return to a checkpoint after a divergence, with both learning rates cut by `lr_factor`
        relative to what they were when the run diverged."""
        rollbacks, new_scale = self.runtime.rollbacks + 1, self.runtime.lr_scale * lr_factor
        self.load_state_dict(state)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] *= new_scale / self.runtime.lr_scale
        self.runtime.rollbacks, self.runtime.lr_scale = rollbacks, new_scale

    # ---- sampling ----

    def sampler(self) -> nn.Module:
        """The generator to draw pictures from: the moving average when there is one (a copy with
        BatchNorm statistics measured for its weights, made once per EMA update), else G itself."""
        if self.ema is None:
            return self.G
        version = int(self.ema.n_averaged)
        if self._sampler is None or self._sampler[0] != version:
            self._sampler = (version, recalibrate_batchnorm(self.ema.module, self.model_cfg.latent_dim, seed=self.cfg.seed))
        return self._sampler[1]

    @torch.no_grad()
    def fixed_samples(self) -> torch.Tensor:
        """The fixed noise batch through the sampler, (64, C, size, size) in [-1, 1] on the CPU."""
        images = generate(self.sampler(), self.fixed_noise, self.fixed_labels)  # eval mode, restored after
        if images.shape[-1] < self.model_cfg.size:  # still growing: show it at full size
            images = F.interpolate(images, size=self.model_cfg.size, mode="nearest")
        return images

    # ---- checkpoints ----

    def state_dict(self) -> dict:
        return {
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            **asdict(self.runtime),
            "torch_rng": torch.get_rng_state(),
            **({"generator_ema": self.ema.module.state_dict(), "ema_n": self.ema.n_averaged} if self.ema is not None else {}),
            **({"ada": self.ada.state_dict()} if self.ada is not None else {}),
            **{f"scaler_{k}": v.state_dict() for k, v in self.scalers.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.runtime = Runtime(d_skip_below=float(state["d_skip_below"]), d_skipped=int(state["d_skipped"]),
                               rollbacks=int(state["rollbacks"]), lr_scale=float(state["lr_scale"]))
        torch.set_rng_state(state["torch_rng"])
        if self.ema is not None:
            self.ema.module.load_state_dict(state["generator_ema"])
            self.ema.n_averaged.copy_(state["ema_n"])
        if self.ada is not None:
            self.ada.load_state_dict(state["ada"])
            self.augment_p = self.ada.p
        for k, scaler in self.scalers.items():
            if f"scaler_{k}" in state:
                scaler.load_state_dict(state[f"scaler_{k}"])
        self._sampler = None
