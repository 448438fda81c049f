"""Peak memory of `ganforge stylize` against the estimate it checks before it starts.

    python benchmarks/stylize_memory.py                      # lite0 on the CPU
    python benchmarks/stylize_memory.py --backbone vgg19 --weights vgg19.pth

Each setting runs in a fresh process (2 steps, 1 scale) and reports its peak resident memory
(ru_maxrss), the estimate of ganforge.style.estimate_memory, and the bytes per pixel above a
64-px run's peak: of the picture optimised when it dominates, of the painting read when a large
--style-scale makes that dominate. The last settings force tiles of a given size (as stylize
picks when a whole picture does not fit): there the picture's own bytes per pixel are what is
left after the largest tile's work, counted at the untiled runs' highest bytes per pixel. These are the figures
style.MEMORY_MODEL is set from; the estimate should stay above every measurement.
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
from ganforge import style
args = json.loads(sys.argv[1])
tile = args.pop("tile", None)
if tile:  # as if the memory free allowed no larger tiles
    style.check_memory = lambda *a, **k: tile
style.stylize(args.pop("content"), args.pop("style"), steps=2, scales=1, base_size=args["size"], device="cpu", **args)
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
    ap.add_argument("--tiled-sizes", default="1536,2048", help="sizes also run in tiles of 0.5 and 1 Mpx")
    args = ap.parse_args()
    from ganforge.backbones import build_backbone
    from ganforge.style import RECIPES, estimate_memory
    from ganforge.tiles import Tiler

    recipe = RECIPES[args.backbone]
    tiler = Tiler(build_backbone(args.backbone, pretrained=False), list(dict.fromkeys(recipe.content_layers + recipe.style_layers)))

    tmp = Path(tempfile.mkdtemp())
    content = picture(tmp / "content.png", 2048, 1536, 0)  # 4:3, as most photos
    style = picture(tmp / "style.png", 2048, 2048, 1)
    extra = {"backbone": args.backbone, **({"weights": args.weights} if args.weights else {})}
    base = measure({"content": str(content), "style": str(style), "size": 64, **extra})
    print(f"{args.backbone}: peak of a 64-px run {base / 1e6:.0f} MB")
    print(f"{'setting':46}{'pixels':>12}{'peak MB':>10}{'estimate MB':>13}{'bytes/pixel':>13}")
    cases = [(f"--size {s} (picture dominates)", dict(size=s, style_scale=0.25), "picture") for s in map(int, args.sizes.split(","))]
    cases += [(f"--size {s} --style-scale 4", dict(size=s, style_scale=4.0), "painting") for s in (128, 256, 512)]
    cases += [(f"--size {s}, tiles of {t / 2**20:g} Mpx", dict(size=s, style_scale=0.25, tile=t), "picture")
              for s in map(int, args.tiled_sizes.split(",")) for t in (2**19, 2**20)]
    cases += [(f"--size 512 --style-scale 4, tiles of {t / 2**20:g} Mpx", dict(size=512, style_scale=4.0, tile=t), "painting")
              for t in (2**19,)]
    per_pixel = 0.0  # the highest of the untiled runs, for the tiles' share of the tiled ones
    for name, setting, which in cases:
        peak = measure({"content": str(content), "style": str(style), **setting, **extra})
        cw, ch = Image.open(content).size
        w, h = round(cw * setting["size"] / max(cw, ch)), round(ch * setting["size"] / max(cw, ch))
        pixels = w * h if which == "picture" else min(round(setting["size"] * setting["style_scale"]), 4096) ** 2
        tile = setting.get("tile")
        estimate = estimate_memory(args.backbone, (cw, ch), [(2048, 2048)], setting["size"], setting["style_scale"], 4096, tile=tile)
        if tile is None:
            per_pixel = max(per_pixel, (peak - base) / pixels) if which == "picture" else per_pixel
            print(f"{name:46}{pixels:12,d}{peak / 1e6:10.0f}{estimate / 1e6:13.0f}{(peak - base) / pixels:13.0f}")
        else:
            largest = max((t.rows[1] - t.rows[0]) * (t.cols[1] - t.cols[0]) for row in tiler.tiles(h, w, tile) for t in row)
            own = (peak - base - per_pixel * largest) / pixels if which == "picture" else (peak - base) / pixels
            print(f"{name:46}{pixels:12,d}{peak / 1e6:10.0f}{estimate / 1e6:13.0f}{own:13.0f}")


if __name__ == "__main__":
    main()
