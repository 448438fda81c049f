"""Peak memory of `ganforge stylize` against the estimate it checks before it starts.

    python benchmarks/stylize_memory.py                      # lite0 on the CPU
    python benchmarks/stylize_memory.py --backbone vgg19 --weights vgg19.pth

Each setting runs in a fresh process (2 steps, 1 scale) and reports its peak resident memory
(ru_maxrss), the estimate of ganforge.style.estimate_memory, and the bytes per pixel above a
64-px run's peak: of the picture optimised when it dominates, of the painting read when a large
--style-scale makes that dominate. These are the figures style.MEMORY_MODEL is set from; the
estimate should stay above every measurement.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CHILD = """
import json, resource, sys
from ganforge.style import stylize
args = json.loads(sys.argv[1])
stylize(args.pop("content"), args.pop("style"), steps=2, scales=1, device="cpu", **args)
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def picture(path: Path, w: int, h: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([np.sin(x / (7 + 5 * rng.random()) + y / 11), np.cos(y / (5 + 9 * rng.random())), np.sin((x + y) / 13)], -1)
    Image.fromarray(((arr * 0.5 + 0.5) * 255).astype(np.uint8)).save(path)
    return path


def measure(settings: dict) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(settings)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="lite0", choices=["lite0", "vgg19"])
    ap.add_argument("--weights", help="local weights for vgg19")
    ap.add_argument("--sizes", default="256,512,1024,1536")
    args = ap.parse_args()
    from ganforge.style import estimate_memory

    tmp = Path(tempfile.mkdtemp())
    content = picture(tmp / "content.png", 2048, 1536, 0)  # 4:3, as most photos
    style = picture(tmp / "style.png", 2048, 2048, 1)
    extra = {"backbone": args.backbone, **({"weights": args.weights} if args.weights else {})}
    base = measure({"content": str(content), "style": str(style), "size": 64, **extra})
    print(f"{args.backbone}: peak of a 64-px run {base / 1e6:.0f} MB")
    print(f"{'setting':34}{'pixels':>12}{'peak MB':>10}{'estimate MB':>13}{'bytes/pixel':>13}")
    cases = [(f"--size {s} (picture dominates)", dict(size=s, style_scale=0.25), "picture") for s in map(int, args.sizes.split(","))]
    cases += [(f"--size {s} --style-scale 4", dict(size=s, style_scale=4.0), "painting") for s in (128, 256, 512)]
    for name, setting, which in cases:
        peak = measure({"content": str(content), "style": str(style), **setting, **extra})
        w, h = Image.open(content).size
        scale = setting["size"] / max(w, h)
        pixels = round(w * scale) * round(h * scale) if which == "picture" else min(round(setting["size"] * setting["style_scale"]), 4096) ** 2
        estimate = estimate_memory(args.backbone, (w, h), [(2048, 2048)], setting["size"], setting["style_scale"], 4096)
        print(f"{name:34}{pixels:12,d}{peak / 1e6:10.0f}{estimate / 1e6:13.0f}{(peak - base) / pixels:13.0f}")


if __name__ == "__main__":
    main()
