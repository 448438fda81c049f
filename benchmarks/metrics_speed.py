"""Seconds to compute KID and FID for 2,000 against 2,000 images at 64 px with lite0 features on the CPU.

    python benchmarks/metrics_speed.py              # --n 2000 --size 64, torch's thread count
    python benchmarks/metrics_speed.py --threads 1  # one core

The two image sets are random crops of real photographs (the shared benchmark images when
present, plus scikit-image's samples), resized to 64 px and held in memory, so only the metric
is timed: features for both sets (lite0 at its 128 px input), then each statistic on them, as
`ganforge evaluate` computes it (KID: 100 subsets of 1,000).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

from common import source_photos


def random_crops(n: int, size: int, seed: int) -> torch.Tensor:
    """uint8 (n, 3, size, size) square crops of the source photos."""
    rng = np.random.default_rng(seed)
    photos = source_photos()
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        src = photos[int(rng.integers(len(photos)))]
        w, h = src.size
        side = int(min(w, h) * rng.uniform(0.2, 0.8))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        out[i] = np.asarray(src.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BILINEAR))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads [default: torch's choice]")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from ganforge.metrics.features import LITE0_SIZE, build_extractor
    from ganforge.metrics.stats import density_coverage, fid, kid, precision_recall

    a, b = random_crops(args.n, args.size, 0), random_crops(args.n, args.size, 1)
    t = time.perf_counter()
    extractor = build_extractor("lite0", device="cpu")
    extractor(a[:2])  # weights loaded and the model warmed up outside the timing
    setup = time.perf_counter() - t

    def timed(fn):
        t0 = time.perf_counter()
        value = fn()
        return value, time.perf_counter() - t0

    (fa, fb), t_feat = timed(lambda: (extractor(a), extractor(b)))
    (kid_mean, kid_std), t_kid = timed(lambda: kid(fa, fb))
    fid_value, t_fid = timed(lambda: fid(fa, fb))
    _, t_prc = timed(lambda: precision_recall(fa, fb))
    _, t_dc = timed(lambda: density_coverage(fa, fb))

    print(f"{args.n} vs {args.n} images at {args.size} px, lite0 features at {LITE0_SIZE} px, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")
    print(f"  model load          {setup:7.2f} s (once)")
    print(f"  features, both sets {t_feat:7.2f} s ({t_feat / (2 * args.n) * 1000:.1f} ms per image)")
    print(f"  KID statistic       {t_kid:7.2f} s   (KID {kid_mean:.4f} ± {kid_std:.4f}, 100 subsets of {min(1000, args.n // 2)})")
    print(f"  FID statistic       {t_fid:7.2f} s   (FID {fid_value:.2f})")
    print(f"  precision/recall    {t_prc:7.2f} s")
    print(f"  density/coverage    {t_dc:7.2f} s")
    print(f"  KID total           {t_feat + t_kid:7.2f} s (features + statistic)")
    print(f"  FID total           {t_feat + t_fid:7.2f} s (features + statistic)")
    print(f"  both, sharing features {t_feat + t_kid + t_fid:7.2f} s")


if __name__ == "__main__":
    main()
