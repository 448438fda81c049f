"""Watching a run: KID during training, the best generator so far, and GAN health warnings.

GANs fail quietly, so the training loop reports here after every step and at every sample grid:
- the discriminator winning (its loss and D(G(z)) near zero for a sustained window) -> a warning,
  and with --auto-balance the lesson's remedies (skip D's updates, lower its learning rate);
- mode collapse (the fixed sample batch far less diverse than the data) -> a warning naming the step;
- with --eval-every, a cheap KID logged to metrics.jsonl and best.safetensors kept.
Divergence (a NaN loss) is handled by the training loop itself, which rolls back to a checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ganforge.checkpoint import save_generator
from ganforge.metrics import CollapseDetector, DiscriminatorMonitor, KIDTracker, apply_actions, build_extractor

BEST_FILE = "best.safetensors"


class RunHealth:
    def __init__(self, cfg, model_cfg, data, log, run_dir: Path, device: torch.device):
        self.cfg, self.model_cfg, self.log, self.run_dir = cfg, model_cfg, log, Path(run_dir)
        self.monitor = DiscriminatorMonitor(auto_balance=cfg.auto_balance)
        needs_features = cfg.eval_every > 0 or cfg.collapse_check
        extractor = build_extractor("lite0", device=device) if needs_features else None
        self.kid = KIDTracker(data.images, extractor, n=128, seed=cfg.seed) if cfg.eval_every > 0 else None
        # An EMA generator still carries its first weights for a few averaging windows, so its
        # samples look alike for longer; warn about low variety only after that.
        warmup = max(1000, int(3 / (1 - cfg.ema_decay))) if cfg.ema else 1000
        self.collapse = CollapseDetector(data.images, extractor, warmup=warmup, seed=cfg.seed) if cfg.collapse_check else None
        self.best_kid = math.inf

    def _event(self, row: dict) -> None:
        self.log.warn(row["message"])
        self.log.metrics({"step": row["step"], "health": row})

    def after_step(self, step: int, stats, trainer) -> None:
        event = self.monitor.update(step, stats.loss_d, stats.d_fake)
        if event is not None:
            apply_actions(event.actions, trainer)
            self._event(event.to_dict())

    def after_samples(self, step: int, samples: torch.Tensor, resolution: int | None = None) -> None:
        if self.collapse is None:
            return
        check = self.collapse.check(step, samples, resolution)
        self.log.metrics({"step": step, "diversity_ratio": check.ratio})
        if check.message:
            self._event({"step": step, "kind": "mode_collapse", "message": check.message, "actions": []})

    def evaluate(self, step: int, trainer) -> dict | None:
        if self.kid is None or step % self.cfg.eval_every:
            return None
        generator = trainer.sampler_g
        row = {"step": step, **self.kid(generator, self.model_cfg.latent_dim)}
        self.log.metrics(row)
        if row["kid"] < self.best_kid:
            self.best_kid = row["kid"]
            save_generator(generator, self.model_cfg, self.run_dir / BEST_FILE, step, extra={"kid": row["kid"]})
        return row

    def state_dict(self) -> dict:
        return {"monitor": self.monitor.state_dict(), "best_kid": self.best_kid,
                "collapse_armed": bool(self.collapse and self.collapse.healthy_seen)}

    def load_state_dict(self, state: dict) -> None:
        self.monitor.load_state_dict(state["monitor"])
        self.best_kid = float(state["best_kid"])
        if self.collapse is not None:
            self.collapse.healthy_seen = bool(state["collapse_armed"])
