"""Watching a run: GAN health checks and a cheap quality score during training.

GANs fail quietly, so the training loop reports here after every step and at every sample grid,
and these checks decide; they write no files and change no optimizer. The loop logs their events
and has the trainer apply their actions.
- DiscriminatorMonitor: D winning (its loss and D(G(z)) near zero for a sustained window) -> an
  event, with the lesson's remedies as actions under --auto-balance (skip D's updates, lower its
  learning rate);
- CollapseDetector: the fixed sample batch far less diverse than the data -> an event naming the step;
- KIDTracker: with --eval-every, a cheap KID on fixed latents;
- is_diverged: a NaN or infinite loss, after which the loop rolls back to a checkpoint.
`HealthChecks` holds the ones a run asked for, with their state for checkpoints.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.images import to_float
from ganforge.gan.sampling import generate, latents
from ganforge.metrics.features import FeatureExtractor, build_extractor
from ganforge.metrics.stats import kid, mean_pairwise_distance


def _fixed_real_subset(images: Tensor, n: int, seed: int) -> Tensor:
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return images[idx.to(images.device)].cpu()


class KIDTracker:
    """A cheap KID for `--eval-every`: `n` real images' features computed once, and the same `n`
    latent vectors each call, so changes come from the generator rather than the draw."""

    def __init__(self, real_images: Tensor, extractor: FeatureExtractor, n: int = 128, seed: int = 0, subsets: int = 20):
        self.extractor, self.subsets, self.seed = extractor, subsets, seed
        self.real = extractor(_fixed_real_subset(real_images, n, seed))  # (n, D)
        self.n = len(self.real)
        self._z = None

    def __call__(self, generator: nn.Module, latent_dim: int) -> dict:
        if self._z is None or self._z.shape[1] != latent_dim:
            self._z = latents(self.n, latent_dim, self.seed + 12345)
        fake = self.extractor(generate(generator, self._z))
        mean, std = kid(fake, self.real, subsets=self.subsets, seed=self.seed)
        return {"kid": round(mean, 6), "kid_std": round(std, 6)}


@dataclass
class CollapseCheck:
    step: int
    diversity: float  # mean pairwise feature distance of the generated batch
    ratio: float  # diversity / the data's diversity at the same batch size
    collapsed: bool
    message: str | None  # a warning, set on the check where the ratio falls below the threshold


class CollapseDetector:
    """Mode collapse shows as generated samples that look alike: the mean pairwise feature
    distance of a fixed sample batch, relative to that of as many real images, falls.

    A freshly initialised generator's samples are alike too (about 0.1 of the data's diversity on
    digits), so a low ratio is only reported once the detector is armed: after the ratio has
    reached `threshold` once, or from step `warmup` on. Each fall below it is reported once.
    """

    def __init__(self, real_images: Tensor, extractor: FeatureExtractor, n: int = 64, threshold: float = 0.4,
                 warmup: int = 1000, seed: int = 0):
        self.extractor, self.threshold, self.warmup = extractor, threshold, warmup
        self._real = _fixed_real_subset(real_images, n, seed)
        self._real_diversity_at = {self._real.shape[-1]: mean_pairwise_distance(extractor(self._real))}  # by resolution
        self.healthy_seen = False
        self._warned = False

    def _diversity_of_data_at(self, resolution: int) -> float:
        """The real images' diversity when made as coarse as samples from a generator still growing
        at `resolution` (area-downsampled, then nearest-upsampled back): blurred pictures are less
        diverse in feature space, and comparing them with sharp ones would cry collapse."""
        if resolution not in self._real_diversity_at:
            real = to_float(self._real) if self._real.dtype == torch.uint8 else self._real
            coarse = F.interpolate(F.adaptive_avg_pool2d(real, resolution), size=real.shape[-1], mode="nearest")
            self._real_diversity_at[resolution] = mean_pairwise_distance(self.extractor(coarse))
        return self._real_diversity_at[resolution]

    def check(self, step: int, images: Tensor, resolution: int | None = None) -> CollapseCheck:
        """`images`: the fixed sample batch, (N, C, H, W) in [-1, 1] (or uint8); `resolution`: the
        size the generator made them at, when smaller (progressive growing)."""
        diversity = mean_pairwise_distance(self.extractor(images))
        ratio = diversity / max(self._diversity_of_data_at(resolution or self._real.shape[-1]), 1e-12)
        collapsed = ratio < self.threshold
        message = None
        if not collapsed:
            self.healthy_seen, self._warned = True, False
        elif (self.healthy_seen or step >= self.warmup) and not self._warned:
            self._warned = True
            message = (f"possible mode collapse at step {step}: generated samples are {ratio:.0%} as diverse as the "
                       f"training images (warning below {self.threshold:.0%}).")
        return CollapseCheck(step, round(diversity, 5), round(ratio, 4), collapsed, message)


@dataclass(frozen=True)
class Action:
    """A remedy that the trainer applies (`GANTrainer.apply`): the checks only decide."""

    kind: str  # "skip_d_below": skip D's updates while its loss is below value; "scale_lr_d": multiply D's lr by value
    value: float

    def describe(self) -> str:
        if self.kind == "skip_d_below":
            return f"skipping discriminator updates while its loss is below {self.value:g}"
        return f"multiplying the discriminator's learning rate by {self.value:g}"


@dataclass
class HealthEvent:
    step: int
    kind: str  # "d_winning", "mode_collapse" or "divergence"
    message: str
    actions: list[Action] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"step": self.step, "kind": self.kind, "message": self.message, "actions": [asdict(a) for a in self.actions]}


class DiscriminatorMonitor:
    """The discriminator is winning when, on at least `sustained` of the last `window` steps, its
    loss is near 0 (below `loss_d_below`) and D(G(z)) is near 0 (below `d_fake_below`): the
    generator then gets vanishing gradients and stops learning. Counting steps rather than
    averaging keeps one wild step from hiding, or faking, a sustained problem.

    After an event the window starts afresh, so a persisting problem is reported once per window.
    With `auto_balance`, each event carries the remedies: skip D's updates while its loss is below
    `skip_below`, and scale its learning rate by `lr_factor` (not below `min_lr_factor` overall).
    """

    def __init__(self, window: int = 200, loss_d_below: float = 0.1, d_fake_below: float = 0.05, sustained: float = 0.9,
                 auto_balance: bool = False, skip_below: float = 0.3, lr_factor: float = 0.5, min_lr_factor: float = 1 / 16):
        self.window, self.loss_d_below, self.d_fake_below, self.sustained = window, loss_d_below, d_fake_below, sustained
        self.auto_balance, self.skip_below, self.lr_factor, self.min_lr_factor = auto_balance, skip_below, lr_factor, min_lr_factor
        self.lr_scale = 1.0
        self._recent: deque[tuple[float, float]] = deque(maxlen=window)

    def update(self, step: int, loss_d: float, d_fake: float) -> HealthEvent | None:
        self._recent.append((loss_d, d_fake))
        if len(self._recent) < self.window:
            return None
        winning = sum(1 for l, f in self._recent if l < self.loss_d_below and f < self.d_fake_below)
        if winning < self.sustained * self.window:
            return None
        mean_loss = sum(l for l, _ in self._recent) / self.window
        mean_fake = sum(f for _, f in self._recent) / self.window
        self._recent.clear()
        message = (f"the discriminator is winning at step {step}: over the last {self.window} steps its loss averaged "
                   f"{mean_loss:.3f} and D(G(z)) {mean_fake:.3f}, so the generator learns little.")
        actions = []
        if self.auto_balance:
            actions.append(Action("skip_d_below", self.skip_below))
            if self.lr_scale * self.lr_factor >= self.min_lr_factor:
                self.lr_scale *= self.lr_factor
                actions.append(Action("scale_lr_d", self.lr_factor))
            message += " Auto-balance: " + "; ".join(a.describe() for a in actions) + "."
        else:
            message += " Try --auto-balance, a lower --lr-d, or --d-skip-below 0.3."
        return HealthEvent(step, "d_winning", message, actions)

    def state_dict(self) -> dict:
        return {"lr_scale": self.lr_scale, "recent": list(self._recent)}

    def load_state_dict(self, state: dict) -> None:
        self.lr_scale = float(state["lr_scale"])
        self._recent = deque((tuple(r) for r in state["recent"]), maxlen=self.window)


def is_diverged(loss_d: float, loss_g: float) -> bool:
    """True when either loss is NaN or infinite: the weights are no longer usable."""
    return not (math.isfinite(loss_d) and math.isfinite(loss_g))


class HealthChecks:
    """The checks a run asked for (`--collapse-check`, `--eval-every`, always the D monitor), sharing
    one lite0 feature network, and the best KID so far."""

    def __init__(self, cfg, images: Tensor | None, device: torch.device):
        self.monitor = DiscriminatorMonitor(auto_balance=cfg.auto_balance)
        needs_features = images is not None and (cfg.eval_every > 0 or cfg.collapse_check)
        extractor = build_extractor("lite0", device=device) if needs_features else None
        self.kid = KIDTracker(images, extractor, n=128, seed=cfg.seed) if needs_features and cfg.eval_every > 0 else None
        # An EMA generator without --ema-warmup still carries its first weights for a few averaging
        # windows, so its samples look alike for longer; warn about low variety only after that.
        warmup = max(1000, int(3 / (1 - cfg.ema_decay))) if cfg.ema and not cfg.ema_warmup else 1000
        self.collapse = CollapseDetector(images, extractor, warmup=warmup, seed=cfg.seed) if needs_features and cfg.collapse_check else None
        self.best_kid = math.inf

    def after_step(self, step: int, loss_d: float, d_fake: float) -> HealthEvent | None:
        return self.monitor.update(step, loss_d, d_fake)

    def check_samples(self, step: int, samples: Tensor, resolution: int | None = None) -> CollapseCheck | None:
        return None if self.collapse is None else self.collapse.check(step, samples, resolution)

    def score(self, generator: nn.Module, latent_dim: int) -> tuple[dict, bool] | None:
        """({"kid", "kid_std"}, whether it is the best so far), or None without --eval-every."""
        if self.kid is None:
            return None
        row = self.kid(generator, latent_dim)
        best = row["kid"] < self.best_kid
        self.best_kid = min(self.best_kid, row["kid"])
        return row, best

    def state_dict(self) -> dict:
        return {"monitor": self.monitor.state_dict(), "best_kid": self.best_kid,
                "collapse_armed": bool(self.collapse and self.collapse.healthy_seen)}

    def load_state_dict(self, state: dict) -> None:
        self.monitor.load_state_dict(state["monitor"])
        self.best_kid = float(state["best_kid"])
        if self.collapse is not None:
            self.collapse.healthy_seen = bool(state["collapse_armed"])
