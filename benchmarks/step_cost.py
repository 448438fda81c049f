"""Seconds per training step of a few settings, timed in alternating rounds so that the machine's
load falls on all of them alike.

    python benchmarks/step_cost.py                                  # MSG at 128 px: D blurred or not
    python benchmarks/step_cost.py --grow --size 64 --variant plain:d_blur=0 --variant blur:d_blur=1

Each variant is `name:field=value,...` over TrainConfig's fields, applied on top of
`--preset small` with the widths given; the first variant is the reference for the ratios.
Images are random: a step's cost does not depend on what the pictures show.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch
from common import parse_variant

from ganforge.data import ImageData
from ganforge.gan.config import TrainConfig, apply_preset
from ganforge.gan.run import resolve
from ganforge.gan.trainer import GANTrainer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grow", action="store_true", help="progressive growing, timed in its last (full-size) stage, instead of MSG")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10, help="steps per variant per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--variant", action="append", help="name:field=value,... (repeatable)")
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variant or ["plain:d_blur=0", "blur:d_blur=1"]]

    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, args.size, args.size), dtype=torch.uint8)
    data = ImageData(images=images, name="random")
    base = TrainConfig(data="random", arch="dcgan" if args.grow else "msg", grow=args.grow, size=args.size, preset="small", g_width=args.width, d_width=args.width,
                       batch_size=args.batch_size, steps=10**6, grow_stage_steps=1, collapse_check=False, device="cpu")
    base = apply_preset(base, explicit={"g_width", "d_width", "batch_size"})
    trainers = {}
    for name, settings in variants:
        cfg, model_cfg = resolve(replace(base, **settings), data)
        trainers[name] = GANTrainer(cfg, model_cfg, torch.device("cpu"))
    start = 10**5  # far past the growing stages: the full-size networks
    batch = images[: args.batch_size]
    for t in trainers.values():  # warm-up
        t.step(batch, start)
    times = {name: [] for name in trainers}
    for _ in range(args.rounds):
        for name, t in trainers.items():
            t0 = time.perf_counter()
            for i in range(args.steps):
                t.step(batch, start + i)
            times[name].append((time.perf_counter() - t0) / args.steps)

    print(f"{'msg' if not args.grow else 'grow'} at {args.size} px, widths {args.width}, batch {args.batch_size}, "
          f"{torch.get_num_threads()} thread(s), {args.rounds} rounds of {args.steps} steps")
    ref = statistics.median(times[variants[0][0]])
    for name, settings in variants:
        s = statistics.median(times[name])
        print(f"{name:12} {s:7.3f} s/step  {s / ref:5.2f}x  {settings}")


if __name__ == "__main__":
    main()
