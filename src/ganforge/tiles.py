"""Feature maps of pictures too large to run through a network at once, computed tile by tile.

    tiler = Tiler(net, ["stem", "blocks.5.expand"])
    for row in tiler.tiles(height, width, budget=2**21):
        for tile in row:
            feats = net.features(x[tile.crop], ["stem"])       # the grown tile's features
            own = tile.own(feats["stem"], tiler.stride["stem"])  # the part that is this tile's

A convolutional feature depends on the input only within its receptive field. A tile grown by a
halo as wide as that field, run through the network, therefore gives the features the whole
picture would have at the tile's own positions, up to float rounding; only those are kept. Sums
over positions (Gram matrices, squared errors, and their gradients) then need one tile's
activations in memory at a time instead of the whole picture's (`ganforge.style` builds its
large-picture losses on this).

Two details make the features equal rather than close. Tiles start at multiples of the deepest
layer's stride, so every layer's positions line up with the whole picture's. And EfficientNet's
TensorFlow-style "same" padding depends on whether each stride-2 convolution's input is even or
odd, so a grown tile is made as long as the picture modulo that stride: every strided convolution
then pads its top and left exactly as on the whole picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganforge.backbones import SameConv2d


@dataclass(frozen=True)
class Footprint:
    """The input a layer's feature i (along either axis) can see: pixels i*stride - before ... i*stride + after."""

    stride: int
    before: int
    after: int


def footprint(net: nn.Module, layer: str) -> Footprint:
    """Stride and receptive field of `layer`, from the convolutions and poolings the network runs to reach it.

    Every such module is treated as one link of a chain (true of VGG; in EfficientNet the skip
    connections only add paths that see less), with kernel, stride and padding read from it.
    """
    called: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, args, out: called.append(m))
             for m in net.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]
    try:
        with torch.no_grad():
            param = next(net.parameters())
            net.features(torch.zeros(1, 3, 64, 64, device=param.device, dtype=param.dtype), [layer])
    finally:
        for h in hooks:
            h.remove()
    stride, before, after = 1, 0, 0
    for m in called:
        k, s, pads = _geometry(m)
        before += stride * max(pads)
        after += stride * (k - 1 - min(pads))
        stride *= s
    return Footprint(stride, before, after)


def _geometry(m: nn.Module) -> tuple[int, int, set[int]]:
    """(kernel, stride, the paddings before the first pixel it may use) of a convolution or pooling."""
    first = (lambda v: v[0] if isinstance(v, tuple) else v)
    k, s = first(m.kernel_size), first(m.stride)
    if isinstance(m, nn.Conv2d):
        k = first(m.dilation) * (k - 1) + 1
    if isinstance(m, SameConv2d):  # padding chosen per input size; each of its cases
        return k, s, {max((math.ceil(n / s) - 1) * s + k - n, 0) // 2 for n in range(2 * s, 4 * s)}
    return k, s, {first(m.padding)}


@dataclass(frozen=True)
class Tile:
    """One tile of an (h, w) picture: the grown part the network sees, and the part it owns."""

    rows: tuple[int, int]  # the grown tile, [start, end) in input pixels
    cols: tuple[int, int]
    own_rows: tuple[int, int]  # what it contributes; the tiles' own parts partition the picture
    own_cols: tuple[int, int]
    picture: tuple[int, int]  # (h, w)

    @property
    def crop(self) -> tuple:
        """Index the picture (…, H, W) with this to get the grown tile."""
        return (..., slice(*self.rows), slice(*self.cols))

    def own(self, features: Tensor, stride: int) -> Tensor:
        """The tile's own positions of a feature map computed on the grown tile (…, h, w)."""
        (r0, r1), (c0, c1) = self.own_rows, self.own_cols
        h, w = self.picture
        rows = slice((r0 - self.rows[0]) // stride, None if r1 == h else (r1 - self.rows[0]) // stride)
        cols = slice((c0 - self.cols[0]) // stride, None if c1 == w else (c1 - self.cols[0]) // stride)
        return features[..., rows, cols]

    def origin(self, stride: int) -> tuple[int, int]:
        """Where `own`'s first position lies in the whole picture's feature map."""
        return self.own_rows[0] // stride, self.own_cols[0] // stride


class Tiler:
    """Cuts pictures into tiles whose features at `layers` of `net` equal the whole picture's."""

    def __init__(self, net: nn.Module, layers: list[str]):
        prints = {k: footprint(net, k) for k in layers}
        self.stride = {k: p.stride for k, p in prints.items()}
        self.align = max(self.stride.values())
        # Own rows [a, b) have features a/stride ... b/stride - 1, which see a - before ... b - stride + after.
        self.before = _round_up(max(p.before for p in prints.values()), self.align)
        self.after = max(0, max(p.after - p.stride + 1 for p in prints.values()))
        self._grids: dict[tuple[int, int, int], list[list[Tile]]] = {}

    @property
    def min_budget(self) -> int:
        """The smallest budget `tiles` keeps to: a tile's own part at least four strides wide. Below
        it the halo would be nearly all of every tile's work."""
        return (self.before + 4 * self.align + self.after) ** 2

    def tiles(self, h: int, w: int, budget: int) -> list[list[Tile]]:
        """Rows of tiles for an (h, w) picture, each grown tile at most `budget` pixels (at least
        `min_budget`); of the grids that keep to it, the one that computes the fewest pixels in all."""
        budget = max(budget, self.min_budget)
        if (h, w, budget) not in self._grids:
            self._grids[h, w, budget] = self._grid(h, w, budget)
        return self._grids[h, w, budget]

    def _grid(self, h: int, w: int, budget: int) -> list[list[Tile]]:
        ys, xs = self._splits(h), self._splits(w)
        best = None
        for ny, (ymax, ysum, _) in ys.items():
            for nx, (xmax, xsum, _) in xs.items():
                key = (ymax * xmax > budget, ysum * xsum if ymax * xmax <= budget else ymax * xmax, ny * nx)
                if best is None or key < best[0]:
                    best = (key, ny, nx)
        assert best is not None
        _, ny, nx = best
        return [[Tile(r, c, own_r, own_c, (h, w)) for c, own_c in xs[nx][2]] for r, own_r in ys[ny][2]]

    def _splits(self, n: int) -> dict[int, tuple[int, int, list]]:
        """For each number of parts: (longest grown part, sum of grown parts, [(grown, own)])."""
        units = math.ceil(n / self.align)
        out = {}
        for parts in range(1, units + 1):
            cuts = [min(n, round(i * units / parts) * self.align) for i in range(parts + 1)]
            spans = [(self._grow(a, b, n), (a, b)) for a, b in zip(cuts, cuts[1:])]
            lengths = [e - s for (s, e), _ in spans]
            out[parts] = (max(lengths), sum(lengths), spans)
        return out

    def _grow(self, a: int, b: int, n: int) -> tuple[int, int]:
        start, end = max(0, a - self.before), min(n, b + self.after)
        if end < n:  # as long as the picture modulo the stride: see the module docstring
            end = min(n, end + (n - end) % self.align)
        return start, end


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m
