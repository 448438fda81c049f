"""How large are the strokes? Orientation coherence of stylised pictures against their painting.

    .venv/bin/python benchmarks/stroke_scale.py                              # the shared photos and paintings
    .venv/bin/python benchmarks/stroke_scale.py --variant old:scales=2,style_octaves=1 --variant new
    .venv/bin/python benchmarks/stroke_scale.py --pair photo.jpg:painting.jpg --out /tmp/strokes

A brush stroke is an oriented structure: along a band of The Scream or a swirl of The Starry Night
the direction of the brightness gradient stays the same over many pixels, while in a fine
crinkled-paper texture it turns every few pixels. The structure tensor measures exactly that, at a
scale s: gradients taken with a Gaussian derivative of width s (so they see structures about s
wide), their outer products averaged over a window of width 2s, give two eigenvalues, and
(l1 - l2) / (l1 + l2) is 1 where every gradient in the window points one way and 0 where they point
every way. Its gradient-energy-weighted mean over the picture, the *coherence at scale s*, is high
at large s only where strokes are wide and long; a fine texture is blurred away there, leaving the
weaker, less ordered structure beneath. Every picture is measured at the output's size (long edge
512), the painting at the size `stylize` uses it at (`style_size`).

`distance` is the mean absolute difference between a picture's coherence and its painting's at
s = 2, 4 and 8 px: 0 when its strokes are as wide and as long as the painting's. At 16 px and more
the photo's large shapes dominate, so those scales are printed but not counted. The photo's own
distance is the starting point: a result that only recolours the photo scores about that. The VGG-19 result of neural-style for Tuebingen and The Starry Night, where
present, is measured too, as the look people compare against.

Each variant is `NAME` or `NAME:option=value,...` over `stylize`'s keyword arguments (a layer list
takes `+` between names). Pictures go to --out, one grid per pair.
"""

from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from common import SHARED_IMAGES

SCALES = (1, 2, 4, 8, 16)
COUNTED = (2, 4, 8)
PAIRS = (("tubingen", "starry_night"), ("tubingen", "mosaic"), ("hoovertowernight", "udnie"), ("hoovertowernight", "starry_night"))
REFERENCE = SHARED_IMAGES / "reference" / "tubingen_starry_vgg19.png"


def luminance(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(img.convert("RGB").resize(size, Image.Resampling.LANCZOS), dtype=np.float64) / 255.0
    return arr @ np.array([0.299, 0.587, 0.114])


def coherence(y: np.ndarray, scales=SCALES) -> np.ndarray:
    """Gradient-energy-weighted structure-tensor coherence of a luminance picture at each scale."""
    out = []
    for s in scales:
        gx = ndimage.gaussian_filter(y, s, order=(0, 1))
        gy = ndimage.gaussian_filter(y, s, order=(1, 0))
        jxx, jyy, jxy = (ndimage.gaussian_filter(a, 2 * s) for a in (gx * gx, gy * gy, gx * gy))
        out.append(np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2).sum() / (jxx + jyy).sum())
    return np.array(out)


def distance(c: np.ndarray, painting: np.ndarray) -> float:
    idx = [SCALES.index(s) for s in COUNTED]
    return float(np.abs(c[idx] - painting[idx]).mean())


def parse_variant(text: str) -> tuple[str, dict]:
    from ganforge.style import stylize

    name, _, items = text.partition(":")
    params = inspect.signature(stylize).parameters
    options = {}
    for item in filter(None, items.split(",")):
        key, _, value = item.partition("=")
        if key not in params:
            raise SystemExit(f"stylize has no option {key!r} (variant {text!r})")
        default = params[key].default
        options[key] = value.replace("+", ",") if not isinstance(default, (int, float)) or isinstance(default, bool) \
            else type(default)(value)
    return name, options


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", action="append", help="NAME or NAME:option=value,... (default: the defaults alone)")
    ap.add_argument("--pair", action="append", help="PHOTO:PAINTING paths (default: four pairs of the shared images)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--out", type=Path, default=Path("stroke-scale"))
    args = ap.parse_args()

    from ganforge.style import fit_long_edge, style_size, stylize

    variants = [parse_variant(v) for v in (args.variant or ["defaults"])]
    pairs = [tuple(Path(p) for p in text.split(":")) for text in args.pair] if args.pair else \
        [(SHARED_IMAGES / f"{a}.jpg", SHARED_IMAGES / f"{b}.jpg") for a, b in PAIRS]
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size} px; coherence at scale s = "
          f"{', '.join(map(str, SCALES))} px; distance to the painting's at s = {COUNTED}")
    print(f"{'photo / painting':<32} {'picture':<14} {'coherence':<36} {'distance':>8} {'seconds':>8}")

    def row(label: str, what: str, c: np.ndarray, c_painting: np.ndarray, seconds: float | None = None) -> None:
        print(f"{label:<32} {what:<14} {' '.join(f'{v:.3f}' for v in c):<36} "
              f"{distance(c, c_painting):>8.3f} {'' if seconds is None else f'{seconds:.1f}':>8}", flush=True)

    for photo_path, painting_path in pairs:
        photo, painting = Image.open(photo_path).convert("RGB"), Image.open(painting_path).convert("RGB")
        label = f"{photo_path.stem} / {painting_path.stem}"
        size = fit_long_edge(photo.size, args.size)
        c_photo = coherence(luminance(photo, size))
        c_painting = coherence(luminance(painting, style_size(painting.size, args.size, 1.0, 4096)))
        row(label, "photo", c_photo, c_painting)
        row(label, "painting", c_painting, c_painting)
        if (photo_path.stem, painting_path.stem) == ("tubingen", "starry_night") and REFERENCE.is_file():
            c_ref = coherence(luminance(Image.open(REFERENCE), size))
            row(label, "vgg19 (ref.)", c_ref, c_painting)
        pictures = []
        for name, options in variants:
            t = time.perf_counter()
            out = stylize(photo, painting, size=args.size, **options)
            seconds = time.perf_counter() - t
            c_out = coherence(luminance(out, size))
            row(label, name, c_out, c_painting, seconds)
            out.save(args.out / f"{photo_path.stem}-{painting_path.stem}-{name}.png")
            pictures.append(out)
        grid = Image.new("RGB", (sum(p.width for p in pictures) + 8 * (len(pictures) - 1), pictures[0].height), "white")
        x = 0
        for p in pictures:
            grid.paste(p, (x, 0))
            x += p.width + 8
        grid.save(args.out / f"{photo_path.stem}-{painting_path.stem}.jpg", quality=90)


if __name__ == "__main__":
    main()
