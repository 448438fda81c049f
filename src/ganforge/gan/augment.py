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


def _uniform(g: torch.Generator, b: int, lo: float, hi: float, device) -> torch.Tensor:
    return (torch.rand(b, 1, 1, 1, generator=g) * (hi - lo) + lo).to(device)


def _chosen(g: torch.Generator, b: int, p: float, device) -> torch.Tensor:
    """(B, 1, 1, 1) float mask: 1 where this transform applies to the image."""
    return (torch.rand(b, 1, 1, 1, generator=g) < p).float().to(device)


def color(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    b, dev = x.shape[0], x.device
    on = _chosen(g, b, p, dev)
    x = x + on * _uniform(g, b, -0.5, 0.5, dev)  # brightness
    if x.shape[1] > 1:  # saturation
        mean = x.mean(1, keepdim=True)
        x = mean + (x - mean) * (1 + on * (_uniform(g, b, 0.0, 2.0, dev) - 1))
    mean = x.mean((1, 2, 3), keepdim=True)  # contrast
    return mean + (x - mean) * (1 + on * (_uniform(g, b, 0.5, 1.5, dev) - 1))


def translation(x: torch.Tensor, g: torch.Generator, p: float, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its size, filling with zeros (exact integer shifts)."""
    b, _, h, w = x.shape
    on = _chosen(g, b, p, "cpu").view(b)
    shift = torch.stack([torch.randint(-int(w * ratio), int(w * ratio) + 1, (b,), generator=g),
                         torch.randint(-int(h * ratio), int(h * ratio) + 1, (b,), generator=g)], 1).float() * on[:, None]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shift[:, 0] / w
    theta[:, 1, 2] = -2 * shift[:, 1] / h
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, g: torch.Generator, p: float, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of `ratio` times the image size at a random place in each image."""
    b, _, h, w = x.shape
    on = _chosen(g, b, p, "cpu").view(b, 1, 1)
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # the square's centre is anywhere in the image, so it may hang over an edge
    top = torch.randint(0, h + 1, (b, 1, 1), generator=g) - ch // 2
    left = torch.randint(0, w + 1, (b, 1, 1), generator=g) - cw // 2
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)  # (B, H, W)
    keep = 1 - (inside.float() * on)
    return x * keep.unsqueeze(1).to(x.device, x.dtype)


def augment(x: torch.Tensor, policy: tuple[str, ...], p: float, g: torch.Generator) -> torch.Tensor:
    """x: (B, C, H, W) in [-1, 1] -> the same shape, every op differentiable in x."""
    if p <= 0:
        return x
    for name in policy:
        x = {"color": color, "translation": translation, "cutout": cutout}[name](x, g, p)
    return x


def augment_views(x: torch.Tensor | list[torch.Tensor], policy: tuple[str, ...], p: float, g: torch.Generator):
    """`augment` for what a discriminator takes: one batch, or a list of the same batch at several
    scales (MSG-GAN), where every scale of an image gets the same transform."""
    if not policy:
        return x
    if not isinstance(x, list):
        return augment(x, policy, p, g)
    state, out = g.get_state(), []
    for xi in x:
        g.set_state(state)
        out.append(augment(xi, policy, p, g))
    return out


class AdaptiveP:
    """StyleGAN2-ADA's heuristic: r = E[sign(D(real))]; raise p while r > target, else lower it.

    `speed_kimg` is how many thousand images it takes p to move from 0 to 1.
    """

    def __init__(self, target: float = 0.6, interval: int = 4, speed_kimg: float = 100.0, p: float = 0.0):
        self.target, self.interval, self.speed_kimg, self.p = target, interval, speed_kimg, p
        self._signs, self._count, self._steps = 0.0, 0, 0

    def update(self, real_logits: torch.Tensor) -> float:
        self._signs += float(torch.sign(real_logits.detach()).sum())
        self._count += real_logits.numel()
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
