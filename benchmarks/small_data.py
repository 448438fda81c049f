"""Small folders: `--preset small` against a plain DCGAN with BCE, for the same CPU time.

    python benchmarks/small_data.py                    # ~200 photos, 64 px, 20 minutes each
    python benchmarks/small_data.py --minutes 5        # a quicker look

Both runs train on the same folder of ~200 crops of real photographs, each for the same wall-clock
budget with the same thread count (run one after the other, or side by side with --parallel and
one thread each). Each is then scored with KID (lite0 features, 1,000 samples against the folder)
and its health warnings are counted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

from common import photo_folder

CONFIGS = {
    "plain DCGAN, BCE": dict(),
    "--preset small": dict(preset="small"),
}


def train_for(name: str, folder: str, run_dir: str, minutes: float, threads: int, seed: int) -> None:
    import torch

    from ganforge.gan.config import TrainConfig
    from ganforge.gan.loop import TrainingInterrupted, train

    torch.set_num_threads(threads)
    deadline = time.perf_counter() + minutes * 60
    cfg = TrainConfig(data=folder, size=64, steps=10**7, seed=seed, sample_every=250, checkpoint_every=250, log_every=50, **CONFIGS[name])
    try:
        train(cfg, run_dir, sinks=[], stop_when=lambda step: time.perf_counter() > deadline)
    except TrainingInterrupted:
        pass


def score(run_dir: Path, folder: Path, seed: int) -> dict:
    from ganforge.scoring import evaluate

    result = evaluate(str(run_dir), str(folder), n=1000, seed=seed)
    summary_rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = max(r["step"] for r in summary_rows)
    collapse = [r["health"] for r in summary_rows if "health" in r and r["health"]["kind"] == "mode_collapse"]
    return {"steps": steps, "kid": result["kid"], "kid_std": result["kid_std"], "fid": result["fid"], "collapse_warnings": len(collapse)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--parallel", action="store_true", help="train both at once, one thread each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "ganforge-small-data")
    args = ap.parse_args()

    folder = photo_folder(args.out / f"photos-{args.images}", args.images, seed=1, min_side=128, max_side=900)
    runs = {name: args.out / f"run-{i}-{int(time.time())}" for i, name in enumerate(CONFIGS)}
    threads = 1 if args.parallel else 2
    jobs = [(name, str(folder), str(run), args.minutes, threads, args.seed) for name, run in runs.items()]
    if args.parallel:
        procs = [mp.get_context("spawn").Process(target=train_for, args=job) for job in jobs]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    else:
        for job in jobs:
            train_for(*job)
    print(f"{args.images} photos at 64 px, {args.minutes:g} min each, {threads} thread(s) each")
    results = {name: score(run, folder, args.seed) for name, run in runs.items()}
    print(f"{'':20}{'steps':>8}{'KID':>10}{'± std':>9}{'FID':>9}{'collapse warnings':>19}")
    for name, r in results.items():
        print(f"{name:20}{r['steps']:8d}{r['kid']:10.4f}{r['kid_std']:9.4f}{r['fid']:9.2f}{r['collapse_warnings']:19d}")
    a, b = (results[n]["kid"] for n in CONFIGS)
    print(f"KID ratio (preset / plain): {b / a:.2f}" if a > 0 else "plain KID is not positive; ratio undefined")
    for name, run in runs.items():
        print(f"{name}: {run}")


if __name__ == "__main__":
    main()
