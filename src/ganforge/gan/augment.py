"""Differentiable augmentation of everything the discriminator sees (DiffAugment, Zhao et al. 2020).

Real and generated batches pass through the same random colour, translation and cutout
transforms, so D cannot memorise a small training set while G still gets gradients through the
augmentation. Each transform is applied to each image with probability `p`; with `--augment-p
auto`, `p` follows D's overfitting signal as in StyleGAN2-ADA (Karras et al. 2020).

All randomness comes from an explicit torch.Generator, so a resumed run augments identically.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganforge.errors import GanforgeError

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """"color,translation" -> ("color", "translation"); GanforgeError for an unknown name."""
    parts = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in parts if p not in POLICIES]
    if unknown:
        raise GanforgeError(f"--augment-policy: unknown augmentation {', '.join(unknown)}; choose from {', '.join(POLICIES)}.")
    return parts


class Draws:
    """Random numbers for the images of a batch: drawn for all `total` images of the global batch,
    then cut to this process's `rows`, so that each image gets the same transform however many
    processes share the batch."""

    def __init__(self, g: torch.Generator, total: int, rows: slice = slice(None)):
        self.g, self.total, self.rows = g, total, rows

    def rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(self.total, *shape, generator=self.g)[self.rows]

    def randint(self, lo: int, hi: int, *shape: int) -> torch.Tensor:
        return torch.randint(lo, hi, (self.total, *shape), generator=self.g)[self.rows]


def _uniform(r: Draws, lo: float, hi: float, device) -> torch.Tensor:
    return (r.rand(1, 1, 1) * (hi - lo) + lo).to(device)


def _chosen(r: Draws, p: float, device) -> torch.Tensor:
    """(B, 1, 1, 1) float mask: 1 where this transform applies to the image."""
    return (r.rand(1, 1, 1) < p).float().to(device)


def color(x: torch.Tensor, r: Draws, p: float) -> torch.Tensor:
    if x.shape[1] == 4:  # RGBA: the colours change, the transparency does not
        return torch.cat([color(x[:, :3], r, p), x[:, 3:]], 1)
    dev = x.device
    on = _chosen(r, p, dev)
    x = x + on * _uniform(r, -0.5, 0.5, dev)  # brightness
    if x.shape[1] > 1:  # saturation
        mean = x.mean(1, keepdim=True)
        x = mean + (x - mean) * (1 + on * (_uniform(r, 0.0, 2.0, dev) - 1))
    mean = x.mean((1, 2, 3), keepdim=True)  # contrast
    return mean + (x - mean) * (1 + on * (_uniform(r, 0.5, 1.5, dev) - 1))


def _transparent_fill(op):
    """`op` fills with zeros; on RGBA pictures it fills with -1 instead, transparent black, like every
    invisible pixel of the data."""

    def wrapped(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if x.shape[1] != 4:
            return op(x, *args, **kwargs)
        return op(x + 1, *args, **kwargs) - 1  # op's zeros land on -1

    return wrapped


@_transparent_fill
def translation(x: torch.Tensor, r: Draws, p: float, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its size, filling with zeros (exact integer shifts)."""
    b, _, h, w = x.shape
    on = _chosen(r, p, "cpu").view(b)
    shift = torch.stack([r.randint(-int(w * ratio), int(w * ratio) + 1),
                         r.randint(-int(h * ratio), int(h * ratio) + 1)], 1).float() * on[:, None]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shift[:, 0] / w
    theta[:, 1, 2] = -2 * shift[:, 1] / h
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


@_transparent_fill
def cutout(x: torch.Tensor, r: Draws, p: float, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of `ratio` times the image size at a random place in each image."""
    b, _, h, w = x.shape
    on = _chosen(r, p, "cpu").view(b, 1, 1)
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # the square's centre is anywhere in the image, so it may hang over an edge
    top = r.randint(0, h + 1, 1, 1) - ch // 2
    left = r.randint(0, w + 1, 1, 1) - cw // 2
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)  # (B, H, W)
    keep = 1 - (inside.float() * on)
    return x * keep.unsqueeze(1).to(x.device, x.dtype)


def augment(x: torch.Tensor, policy: tuple[str, ...], p: float, g: torch.Generator, total: int | None = None,
            rows: slice = slice(None)) -> torch.Tensor:
    """x: (B, C, H, W) in [-1, 1] -> the same shape, every op differentiable in x. `x` may be the
    `rows` of a global batch of `total` images (default: all of it)."""
    if p <= 0:
        return x
    draws = Draws(g, x.shape[0] if total is None else total, rows)
    for name in policy:
        x = {"color": color, "translation": translation, "cutout": cutout}[name](x, draws, p)
    return x


def augment_views(x: torch.Tensor | list[torch.Tensor], policy: tuple[str, ...], p: float, g: torch.Generator,
                  total: int | None = None, rows: slice = slice(None)):
    """`augment` for what a discriminator takes: one batch, or a list of the same batch at several
    scales (MSG-GAN), where every scale of an image gets the same transform."""
    if not policy:
        return x
    if not isinstance(x, list):
        return augment(x, policy, p, g, total, rows)
    state, out = g.get_state(), []
    for xi in x:
        g.set_state(state)
        out.append(augment(xi, policy, p, g, total, rows))
    return out


class AdaptiveP:
    """StyleGAN2-ADA's heuristic: r = E[sign(D(real))]; raise p while r > target, else lower it.

    `speed_kimg` is how many thousand images it takes p to move from 0 to 1.
    """

    def __init__(self, target: float = 0.6, interval: int = 4, speed_kimg: float = 100.0, p: float = 0.0):
        self.target, self.interval, self.speed_kimg, self.p = target, interval, speed_kimg, p
        self._signs, self._count, self._steps = 0.0, 0, 0

    def update(self, real_logits: torch.Tensor) -> float:
        return self.update_counts(float(torch.sign(real_logits.detach()).sum()), real_logits.numel())

    def update_counts(self, signs: float, count: int) -> float:
        """`update` from the sum of the signs of D's outputs on real images and their number (summed
        over the processes of a job, so that each holds the same p)."""
        self._signs += signs
        self._count += count
        self._steps += 1
        if self._steps % self.interval == 0:
            r = self._signs / max(self._count, 1)
            step = self._count / (self.speed_kimg * 1000)
            self.p = min(1.0, max(0.0, self.p + (step if r > self.target else -step)))
            self._signs, self._count = 0.0, 0
        return self.p

    def state_dict(self) -> dict:
        return {"p": self.p, "signs": self._signs, "count": self._count, "steps": self._steps}

    def load_state_dict(self, state: dict) -> None:
        self.p, self._signs, self._count, self._steps = float(state["p"]), float(state["signs"]), int(state["count"]), int(state["steps"])
