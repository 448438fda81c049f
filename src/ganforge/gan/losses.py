"""The adversarial losses, on D's logits: D pushes real towards 1 and generated towards 0, G pushes
generated towards 1 through a frozen D; and the R1 penalty that keeps D smooth on real images.

    LOSSES["bce"].d(logits_real, logits_fake, real_target)   # real_target: 1 - label smoothing
    LOSSES["hinge"].g(logits_fake)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class BCE:
    """The non-saturating loss of Goodfellow et al.: G maximises log D(G(z))."""

    @staticmethod
    def d(logits_real: torch.Tensor, logits_fake: torch.Tensor, real_target: torch.Tensor) -> torch.Tensor:
        zeros = torch.zeros_like(logits_fake)
        return F.binary_cross_entropy_with_logits(logits_real, real_target) + F.binary_cross_entropy_with_logits(logits_fake, zeros)

    @staticmethod
    def g(logits_fake: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))


class Hinge:
    """Lim and Ye 2017, as in SAGAN and BigGAN; it ignores label smoothing."""

    @staticmethod
    def d(logits_real: torch.Tensor, logits_fake: torch.Tensor, real_target: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean()

    @staticmethod
    def g(logits_fake: torch.Tensor) -> torch.Tensor:
        return -logits_fake.mean()


LOSSES = {"bce": BCE, "hinge": Hinge}


def r1_penalty(logits_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean squared norm of D's gradient with respect to the real images (which must require grad),
    kept in the graph so that D learns from it (Mescheder et al. 2018)."""
    (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
    return grad.pow(2).sum((1, 2, 3)).mean()
