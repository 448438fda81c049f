"""Seconds per optimisation step at 512 px for lite0 and vgg19, side by side, and the wall time of
a default 512-px `stylize` run.

    .venv/bin/python benchmarks/stylize_speed.py                      # built-in test images
    .venv/bin/python benchmarks/stylize_speed.py photo.jpg style.jpg  # your own
    .venv/bin/python benchmarks/stylize_speed.py --steps 10 --threads 2

Both backbones use their default layers and the same loss code; VGG-19 runs with random weights
(the timing does not depend on them and nothing is downloaded). The two are timed alternately in
one process, so a busy machine slows both alike and the ratio stays meaningful.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from PIL import Image

from ganforge.backbones import build_backbone
from ganforge.style import RECIPES, StyleTargets, fit_long_edge, resize_image, stylize, to_tensor


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
    ap.add_argument("--steps", type=int, default=6, help="timed steps per backbone (after one warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    content, style = _inputs(args)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), content {content.size[0]}x{content.size[1]}"
          f" -> {args.size} px long edge")

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


if __name__ == "__main__":
    main()
