"""Small folders of one kind: candidate settings trained for the same CPU time, then scored.

    python benchmarks/small_data.py                                   # faces and icons, 64 px, 20 CPU-minutes each
    python benchmarks/small_data.py --cpu-minutes 5 --folders faces   # a quicker look
    python benchmarks/small_data.py --candidate narrow:arch=fastgan,g_width=8,d_width=8

The folders are built here from material any Debian machine has (`common.py`):
- faces: scikit-image's 200 faces from Labeled Faces in the Wild (25x25 gray, upsampled);
- icons: the 353 file-type icons of Debian's oxygen-icon-theme (128 px RGBA, on white);
- photos: ~200 random crops of real photographs (the folder `--preset small` was first chosen on).

Every candidate trains in a process of its own with one thread, `--jobs` at a time, each until it
has used `--cpu-minutes` of processor time (its own, so that runs sharing the machine stay equal).
Each is then scored with KID (lite0 features, 1,000 samples against the folder), its health
warnings are counted and its last sample grid is copied to OUT/grids/FOLDER-CANDIDATE.png.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import tempfile
import time
from pathlib import Path

from common import faces_folder, icons_folder, parse_variant, photo_folder

# `--preset small` as it was chosen on the photos folder before the fastgan family existed.
PRESET_2025 = dict(augment=True, augment_p="1", augment_policy="color,translation", lr_d=2e-4, ema=True, ema_decay=0.9975,
                   g_width=32, d_width=32, batch_size=16)
CANDIDATES = {
    "dcgan": dict(),  # plain DCGAN with BCE, every default
    "old-small": PRESET_2025,
    "fastgan": dict(arch="fastgan"),
    "small": dict(preset="small"),  # what --preset small is now
}
DEFAULT_CANDIDATES = ("dcgan", "old-small", "small")
FOLDERS = {
    "faces": lambda out: faces_folder(out / "faces"),
    "icons": lambda out: icons_folder(out / "icons"),
    "photos": lambda out: photo_folder(out / "photos-200", 200, seed=1, min_side=128, max_side=900),
}


def train_for(settings: dict, folder: str, run_dir: str, size: int, cpu_minutes: float, seed: int) -> None:
    import torch

    from ganforge.gan.config import TrainConfig
    from ganforge.gan.loop import TrainingInterrupted, train

    torch.set_num_threads(1)
    budget = time.process_time() + cpu_minutes * 60
    cfg = TrainConfig(data=folder, size=size, steps=10**7, seed=seed, sample_every=250, checkpoint_every=250, log_every=50, **settings)
    try:
        train(cfg, run_dir, sinks=[], stop_when=lambda step: time.process_time() > budget, explicit=set(settings))
    except TrainingInterrupted:
        pass


def score(run_dir: Path, folder: Path, seed: int) -> dict:
    from ganforge.scoring import evaluate

    result = evaluate(str(run_dir), str(folder), n=1000, seed=seed)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = max(r["step"] for r in rows)
    collapse = [r for r in rows if r.get("health", {}).get("kind") == "mode_collapse"]
    return {"steps": steps, "kid": result["kid"], "kid_std": result["kid_std"], "fid": result["fid"], "collapse_warnings": len(collapse)}


def run_all(jobs: list[tuple], parallel: int) -> None:
    """Run `train_for(*job)` for every job, `parallel` processes at a time."""
    context, running, queue = mp.get_context("spawn"), [], list(jobs)
    while queue or running:
        while queue and len(running) < parallel:
            p = context.Process(target=train_for, args=queue.pop(0))
            p.start()
            running.append(p)
        time.sleep(2)
        running = [p for p in running if p.is_alive()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folders", default="faces,icons", help=f"comma-separated, of {', '.join(FOLDERS)}")
    ap.add_argument("--candidate", action="append", help="NAME (one of %s) or NAME:field=value,... (repeatable)" % ", ".join(CANDIDATES))
    ap.add_argument("--cpu-minutes", type=float, default=20.0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--jobs", type=int, default=2, help="training processes at a time, one thread each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "ganforge-small-data")
    args = ap.parse_args()

    candidates = {}
    for text in args.candidate or DEFAULT_CANDIDATES:
        name, settings = parse_variant(text) if ":" in text else (text, CANDIDATES[text])
        candidates[name] = settings
    folders = {name: FOLDERS[name](args.out / "folders") for name in args.folders.split(",")}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs = {(f, c): args.out / f"{stamp}-{f}-{c}" for f in folders for c in candidates}
    run_all([(candidates[c], str(folders[f]), str(run), args.size, args.cpu_minutes, args.seed) for (f, c), run in runs.items()], args.jobs)

    grids = args.out / "grids"
    grids.mkdir(parents=True, exist_ok=True)
    print(f"{args.size} px, {args.cpu_minutes:g} CPU-minutes each, one thread, {args.jobs} at a time")
    print(f"{'folder':8}{'candidate':16}{'steps':>8}{'s/step':>8}{'KID':>9}{'± std':>8}{'FID':>8}{'vs ' + next(iter(candidates)):>12}{'collapse':>10}")
    for f, folder in folders.items():
        reference = None
        for c in candidates:
            run = runs[f, c]
            r = score(run, folder, args.seed)
            reference = reference or r["kid"]
            last = sorted((run / "samples").glob("step-*.png"))[-1]
            shutil.copy(last, grids / f"{f}-{c}.png")
            print(f"{f:8}{c:16}{r['steps']:8d}{args.cpu_minutes * 60 / max(r['steps'], 1):8.3f}{r['kid']:9.4f}{r['kid_std']:8.4f}"
                  f"{r['fid']:8.1f}{r['kid'] / reference:12.2f}{r['collapse_warnings']:10d}", flush=True)
    print(f"runs in {args.out}, last sample grids in {grids}")


if __name__ == "__main__":
    main()
