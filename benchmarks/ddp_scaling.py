"""Images per second of `ganforge train` on several processes against one, side by side.

    python benchmarks/ddp_scaling.py                     # 2 processes x 1 thread vs 1 process x 2 threads
    python benchmarks/ddp_scaling.py --nproc 4 --size 128 --batch-size 128 --device cuda   # on a 4-GPU machine
    python benchmarks/ddp_scaling.py --also=--no-sync-batchnorm --also="--precision bf16"   # more variants of the many

Every run is DCGAN at --size (default 64 px, widths 64) on a folder of photos of that size, the
same global batch, and the same steps; a run's speed is the median images/s of its metrics rows
after the first (which includes start-up and, with --compile, compiling). The variants alternate,
--rounds times, so that the machine's drift hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import photo_folder


def images_per_sec(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["images_per_sec"] for r in rows if "images_per_sec" in r][1:]
    return statistics.median(speeds)


def train(folder: Path, run: Path, args, nproc: int, threads: int, extra=()) -> float:
    cmd = [sys.executable, "-m", "ganforge", "train", str(folder), "--size", str(args.size), "--batch-size", str(args.batch_size),
           "--steps", str(args.steps), "--log-every", str(args.log_every), "--sample-every", "100000", "--checkpoint-every", "100000",
           "--no-collapse-check", "--device", args.device, "--run-dir", str(run), *extra]
    if nproc > 1:
        cmd += ["--nproc-per-node", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return images_per_sec(run)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="Threads of the single process (the many get threads/nproc each).")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--photos", type=int, default=256)
    p.add_argument("--also", action="append", default=[], help="Also time the many processes with these train options (repeatable).")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = photo_folder(Path(tmp) / "data", args.photos)
        variants = {f"1 process x {args.threads} threads": (1, args.threads, ()),
                    f"{args.nproc} processes x {max(1, args.threads // args.nproc)} thread(s)": (args.nproc, max(1, args.threads // args.nproc), ())}
        for extra in args.also:
            variants[f"{args.nproc} processes, {extra}"] = (args.nproc, max(1, args.threads // args.nproc), tuple(extra.split()))
        speeds = {name: [] for name in variants}
        for r in range(args.rounds):
            for i, (name, (nproc, threads, more)) in enumerate(variants.items()):
                speeds[name].append(train(folder, Path(tmp) / f"run-{r}-{i}", args, nproc, threads, more))
                print(f"round {r + 1}: {name}: {speeds[name][-1]:.1f} images/s", flush=True)
    base = statistics.mean(next(iter(speeds.values())))
    print(f"\nDCGAN-{args.size}, global batch {args.batch_size}, {args.steps} steps, {args.device}:")
    for name, values in speeds.items():
        mean = statistics.mean(values)
        print(f"  {name:<40} {mean:8.1f} images/s  ({mean / base:.2f}x)  runs: {', '.join(f'{v:.1f}' for v in values)}")


if __name__ == "__main__":
    main()
