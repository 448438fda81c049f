"""Distances between two sets of image features (N, D): "fake" (generated) first, "real" (data) second.

    fid(fake, real) -> float                           Frechet distance (torch-fidelity)
    kid(fake, real, subsets, subset_size, seed) -> (mean, std)   unbiased polynomial-kernel MMD^2
    precision_recall(fake, real, k=3) -> (p, r)        Kynkaanniemi et al. 2019 (torch-fidelity)
    density_coverage(fake, real, k=5) -> (d, c)        Naeem et al. 2020
    compare(fake, real, seed) -> dict                  all of the above
    mean_pairwise_distance(features) -> float          one set's diversity
"""

from __future__ import annotations

import torch
from torch import Tensor

from ganforge.errors import GanforgeError


def _check_pair(fake: Tensor, real: Tensor, least: int) -> None:
    if fake.ndim != 2 or real.ndim != 2 or fake.shape[1] != real.shape[1]:
        raise ValueError(f"expected two (N, D) feature tensors, got {tuple(fake.shape)} and {tuple(real.shape)}")
    if min(len(fake), len(real)) < least:
        raise GanforgeError(f"need at least {least} images on each side, got {len(fake)} generated and {len(real)} real.")


def fid(fake: Tensor, real: Tensor) -> float:
    """Frechet distance between Gaussians fitted to the two feature sets (biased for small N)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    _check_pair(fake, real, 2)
    s1, s2 = fid_features_to_statistics(fake.double().cpu()), fid_features_to_statistics(real.double().cpu())
    return max(0.0, fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"])


def kid(fake: Tensor, real: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel distance: the unbiased MMD^2 with the cubic polynomial kernel, mean and standard
    deviation over random subsets of `subset_size`, capped at half the smaller set so that the
    subsets differ. Unbiased, so its expectation is 0 for two samples of one distribution at any N."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    _check_pair(fake, real, 4)
    size = min(subset_size, min(len(fake), len(real)) // 2)
    out = kid_features_to_metric(fake.float().cpu(), real.float().cpu(), kid_subsets=subsets, kid_subset_size=size,
                                 rng_seed=seed, verbose=False)
    return out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"]


def precision_recall(fake: Tensor, real: Tensor, k: int = 3) -> tuple[float, float]:
    """Precision: share of generated samples inside the real k-NN manifold; recall: the reverse."""
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    _check_pair(fake, real, k + 1)
    return calculate_precision_recall_full(fake.float().cpu(), real.float().cpu(), neighborhood=k)


def density_coverage(fake: Tensor, real: Tensor, k: int = 5) -> tuple[float, float]:
    """Density: how many real k-NN balls hold each generated sample, / k (about 1 when matched);
    coverage: share of real balls holding at least one generated sample."""
    _check_pair(fake, real, k + 1)
    fake, real = fake.float().cpu(), real.float().cpu()
    radii = torch.cdist(real, real).kthvalue(k + 1, dim=1).values  # (R,), k+1 skips the self-distance
    inside = torch.cdist(real, fake) < radii[:, None]  # (R, F)
    return (inside.sum().item() / (k * len(fake)), inside.any(dim=1).float().mean().item())


def compare(fake: Tensor, real: Tensor, seed: int = 0, kid_subsets: int = 100) -> dict:
    """All distances between two feature sets."""
    kid_mean, kid_std = kid(fake, real, subsets=kid_subsets, seed=seed)
    p, r = precision_recall(fake, real)
    d, c = density_coverage(fake, real)
    return {"fid": fid(fake, real), "kid": kid_mean, "kid_std": kid_std, "precision": p, "recall": r, "density": d, "coverage": c}


def mean_pairwise_distance(features: Tensor) -> float:
    """Mean Euclidean distance over all distinct pairs: a batch's diversity."""
    n = len(features)
    if n < 2:
        return 0.0
    d = torch.cdist(features.float(), features.float())
    return (d.sum() / (n * (n - 1))).item()
