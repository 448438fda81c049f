"""Seconds per optimisation step at 512 px for lite0 and vgg19, side by side, the wall time of a
default 512-px `stylize` run, and the seconds and peak memory of default runs at large sizes.

    .venv/bin/python benchmarks/stylize_speed.py                      # built-in test images
    .venv/bin/python benchmarks/stylize_speed.py photo.jpg style.jpg  # your own
    .venv/bin/python benchmarks/stylize_speed.py --steps 10 --threads 2
    .venv/bin/python benchmarks/stylize_speed.py --steps 0 --large-sizes 1024,2048,4096  # large sizes only

Both backbones use their default layers and the same loss code; VGG-19 runs with random weights
(the timing does not depend on them and nothing is downloaded). The two are timed alternately in
one process, so a busy machine slows both alike and the ratio stays meaningful.

Each large size (default 1024, 2048 and 4096 px; on a 2-core CPU the 4096-px run takes a quarter
of an hour or so) runs `stylize` with every default in a fresh process, which reports its wall
time (model loading included) and its peak resident memory (ru_maxrss: torch's allocations are
not seen by tracemalloc), with the scales it optimised and the tiles that `check_memory` chose.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.backbones import build_backbone
from ganforge.style import RECIPES, StyleTargets, fit_long_edge, resize_image, scale_schedule, stylize, to_tensor

DEFAULTS = {name: p.default for name, p in inspect.signature(stylize).parameters.items()}
CHILD = """
import json, resource, sys, time
import torch
from ganforge import style
content, painting, size, threads = json.loads(sys.argv[1])
if threads:
    torch.set_num_threads(threads)
tiles = []
check = style.check_memory
style.check_memory = lambda *a, **k: tiles.append(check(*a, **k)) or tiles[-1]  # to report the choice
start = time.perf_counter()
style.stylize(content, painting, size=size)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "tile": tiles[0]}))
"""


def _inputs(args):
    if args.content:
        from ganforge.images import load_image

        return load_image(args.content), load_image(args.style)
    from skimage import data

    return Image.fromarray(data.astronaut()), Image.fromarray(data.chelsea())


def _step_timer(name: str, content: Image.Image, style: Image.Image, size: int):
    """A function doing one Adam step of the full loss at `size` px with backbone `name`."""
    net = build_backbone(name, pretrained=(name == "lite0"))
    recipe = RECIPES[name]
    w, h = fit_long_edge(content.size, size)
    c = resize_image(to_tensor(content), (w, h))
    s = resize_image(to_tensor(style), fit_long_edge(style.size, max(w, h)))
    targets = StyleTargets(net, recipe, c, [s], [1.0], list(recipe.content_layers), list(recipe.style_layers),
                       torch.device("cpu"))
    image = c.clone().requires_grad_(True)
    opt = torch.optim.Adam([image], lr=0.02)

    def step() -> float:
        t = time.perf_counter()
        opt.zero_grad()
        sum(targets.losses(image).values()).backward()
        opt.step()
        return time.perf_counter() - t

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("content", nargs="?")
    ap.add_argument("style", nargs="?")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per backbone (after one warm-up; 0: none)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--large-sizes", default="1024,2048,4096", help="sizes of the full default runs ('' for none)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    content, style = _inputs(args)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), content {content.size[0]}x{content.size[1]}"
          f" -> {args.size} px long edge")

    if args.steps:
        _per_step(args, content, style)
    if args.large_sizes:
        _large(args, content, style)


def _per_step(args, content: Image.Image, style: Image.Image) -> None:
    timers = {name: _step_timer(name, content, style, args.size) for name in ("lite0", "vgg19")}
    for t in timers.values():
        t()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(args.steps):
        for name, t in timers.items():  # alternate, so background load hits both alike
            times[name].append(t())

    print(f"{'backbone':<8} {'s/step (median)':>16} {'s/step (min)':>13} {f'{args.steps} steps (s)':>14}")
    for name, ts in times.items():
        print(f"{name:<8} {np.median(ts):>16.3f} {min(ts):>13.3f} {sum(ts):>14.2f}")
    ratio_med = np.median(times["vgg19"]) / np.median(times["lite0"])
    ratio_min = min(times["vgg19"]) / min(times["lite0"])
    print(f"lite0 is {ratio_med:.1f}x faster per step than vgg19 (median; {ratio_min:.1f}x on the fastest steps)")

    t = time.perf_counter()
    stylize(content, style, size=args.size)
    print(f"default stylize at {args.size} px (lite0, all defaults, incl. model loading): "
          f"{time.perf_counter() - t:.1f} s")


def _large(args, content: Image.Image, style: Image.Image) -> None:
    paths = [args.content, args.style]
    if not args.content:
        tmp = Path(tempfile.mkdtemp())
        paths = [str(tmp / "content.png"), str(tmp / "style.png")]
        content.save(paths[0])
        style.save(paths[1])
    print(f"{'size':>5} {'picture':>10} {'scales (steps)':56} {'tiles':>9} {'seconds':>8} {'peak GB':>8}")
    for size in map(int, args.large_sizes.split(",")):
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps([*paths, size, args.threads])],
                             capture_output=True, text=True, check=True)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        schedule = scale_schedule(content.size, size, *(DEFAULTS[k] for k in ("scales", "steps", "base_size")))
        scales = ", ".join(f"{max(wh)} ({n})" for wh, n in schedule)
        w, h = schedule[-1][0]
        tiles = "whole" if got["tile"] is None or w * h <= got["tile"] else f"{got['tile'] / 2**20:g} Mpx"
        print(f"{size:>5} {f'{w}x{h}':>10} {scales:56} {tiles:>9} {got['seconds']:>8.0f} {got['peak'] / 1e9:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
