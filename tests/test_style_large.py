"""Large pictures: the coarse-to-fine schedule above --base-size, losses computed tile by tile with
the untiled gradient, and the memory check that refuses what cannot fit before any work.

Tiles only split pictures wider than the deepest layer's receptive field plus a few strides: with
lite0's default layers (~340 px) that takes 448x576 px, a few seconds on one thread; layers up to
blocks.5.expand (~80 px) let 176x240 px have tiles inside the picture.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from ganforge import style
from ganforge.backbones import build_backbone
from ganforge.cli.main import cli
from ganforge.errors import GanforgeError
from ganforge.style import RECIPES, TILES, StyleTargets, check_memory, estimate_memory, scale_schedule, stylize
from ganforge.tiles import Tiler

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread

SHALLOW = dict(content_layers="blocks.3.expand", style_layers="stem,blocks.1.expand,blocks.3.expand,blocks.5.expand")


@pytest.fixture(scope="module")
def lite0():
    return build_backbone("lite0")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    Image.fromarray(skdata.astronaut()).resize((96, 96)).save(d / "content.png")
    Image.fromarray(skdata.chelsea()).resize((90, 60)).save(d / "style.jpg")
    return d


def _targets(net, content, painting, tile, octaves, layers):
    r = RECIPES["lite0"]
    c_layers, s_layers = (layers["content_layers"].split(","), layers["style_layers"].split(",")) if layers else (
        list(r.content_layers), list(r.style_layers))
    return StyleTargets(net, r, content, [painting], [1.0], c_layers, s_layers, torch.device("cpu"), octaves=octaves, tile=tile)


# ---- tiles


def test_tiles_cover_the_picture_once_and_keep_to_the_budget(lite0):
    r = RECIPES["lite0"]
    tiler = Tiler(lite0, list(dict.fromkeys(r.content_layers + r.style_layers)))
    grid = tiler.tiles(3072, 4096, 2**22)
    owned = np.zeros((3072, 4096), np.int8)
    for tile in (t for row in grid for t in row):
        owned[slice(*tile.own_rows), slice(*tile.own_cols)] += 1
        assert (tile.rows[1] - tile.rows[0]) * (tile.cols[1] - tile.cols[0]) <= 2**22
    assert (owned == 1).all() and len(grid) * len(grid[0]) == 4


@pytest.mark.parametrize("layers, hw, tile, grid, octaves", [
    (None, (448, 576), 200_000, (2, 2), 1),  # lite0's default layers
    (SHALLOW, (176, 240), 12_000, (3, 3), 2),  # inner tiles, with halos all round; a second octave
])
def test_tiled_gradient_equals_the_untiled_one(lite0, layers, hw, tile, grid, octaves):
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, *hw, generator=g)
    painting = torch.rand(1, 3, hw[0] + 40, hw[1] + 48, generator=g)  # more than NO_GRAD_TILES * tile: its Grams are tiled too
    whole, tiled = _targets(lite0, content, painting, None, octaves, layers), _targets(lite0, content, painting, tile, octaves, layers)
    rows = tiled.tiler.tiles(*hw, tile)
    assert len(rows) >= grid[0] and len(rows[0]) >= grid[1]
    for k, v in whole.content.items():
        assert torch.allclose(tiled.content[k], v, rtol=1e-4, atol=1e-5)
    for k, v in whole.grams.items():
        assert torch.allclose(tiled.grams[k], v, rtol=1e-4, atol=1e-6)

    picture = torch.rand(1, 3, *hw, generator=g)
    grads, values = [], []
    for targets in (whole, tiled):
        x = picture.clone().requires_grad_(True)
        terms = targets.losses(x)
        (2.0 * terms["content"] + 1e3 * terms["style"] + 20.0 * terms["tv"]).backward()
        grads.append(x.grad)
        values.append(torch.stack(list(terms.values())))
    # Float32 sums in another order: measured 1e-6 of the largest gradient; allow 1e-4.
    assert torch.allclose(values[1], values[0], rtol=1e-5)
    assert torch.allclose(grads[1], grads[0], rtol=1e-4, atol=1e-4 * grads[0].abs().max().item())


def test_stylize_uses_the_tiles_that_check_memory_picks(images, monkeypatch):
    out, tiled = {}, []
    monkeypatch.setattr(style, "tiled_statistics", lambda *a, f=style.tiled_statistics: tiled.append(1) or f(*a))
    for tile in (None, 12_000):
        monkeypatch.setattr(style, "check_memory", lambda *a, t=tile, **k: t)
        out[tile] = np.asarray(stylize(images / "content.png", images / "style.jpg", size=240, base_size=240, scales=1, steps=2,
                                       **SHALLOW), dtype=np.int16)
        assert bool(tiled) == (tile is not None)
    # Adam's first steps move each pixel by about lr whatever the gradient's size, so where a
    # gradient is near 0 float rounding can flip its sign: a few pixels may differ by a few levels.
    diff = np.abs(out[12_000] - out[None])
    assert out[None].shape == (240, 240, 3) and diff.mean() < 0.05, (diff.mean(), diff.max())


# ---- the schedule


def test_large_sizes_add_doublings_with_fewer_steps():
    assert scale_schedule((4000, 3000), 4096, 2, 150, 512) == [
        ((256, 192), 150), ((512, 384), 150), ((1024, 768), 75), ((2048, 1536), 38), ((4096, 3072), 20)]
    assert scale_schedule((4000, 3000), 2048, 3, 30, 512) == [((128, 96), 30), ((256, 192), 30), ((512, 384), 30),
                                                             ((1024, 768), 20), ((2048, 1536), 20)]
    # the base is the halving nearest --base-size: 640 and 1280 start from a 640-px run, 750 from 375
    assert [wh[0] for wh, _ in scale_schedule((4000, 3000), 640, 3, 150, 512)] == [160, 320, 640]
    assert [wh[0] for wh, _ in scale_schedule((4000, 3000), 1280, 3, 150, 512)] == [160, 320, 640, 1280]
    assert [wh[0] for wh, _ in scale_schedule((4000, 3000), 750, 3, 150, 512)] == [94, 188, 375, 750]
    # at --base-size or below, as before: --scales sizes ending at --size, --steps each
    assert scale_schedule((4000, 3000), 512, 2, 150, 512) == [((256, 192), 150), ((512, 384), 150)]
    assert scale_schedule((4000, 3000), 4096, 2, 150, 4096) == [((2048, 1536), 150), ((4096, 3072), 150)]


def test_stylize_follows_the_schedule_but_refines_a_start_picture_at_size(images):
    seen = []
    stylize(images / "content.png", images / "style.jpg", size=64, base_size=32, scales=1, steps=24,
            callback=lambda p: seen.append((p.scale, p.scales, p.size, p.total)))
    assert [s for s in seen if s[0] == 1][0] == (1, 2, (32, 32), 44) and len([s for s in seen if s[0] == 1]) == 24
    assert [s[2] for s in seen if s[0] == 2] == [(64, 64)] * 20
    seen.clear()
    stylize(images / "content.png", images / "style.jpg", size=64, base_size=32, scales=1, steps=2,
            start=Image.open(images / "content.png"), callback=lambda p: seen.append(p.size))
    assert seen == [(64, 64)] * 2


# ---- memory


def test_2048_and_4096_fit_24_gib_of_memory_and_an_8_gib_gpu(monkeypatch):
    monkeypatch.setattr(style, "_linux_number", lambda *a, **k: None)
    photo, painting = (4032, 3024), [(1280, 1014)]
    cpu, gpu = torch.device("cpu"), torch.device("cuda")  # only compared by type; no GPU needed
    monkeypatch.setattr(style, "available_memory", lambda device: 20e9)  # what 24 GiB leave free
    assert check_memory("lite0", photo, painting, 2048, 1.0, 4096, cpu) is None  # whole
    assert check_memory("lite0", photo, painting, 4096, 1.0, 4096, cpu) in TILES
    monkeypatch.setattr(style, "available_memory", lambda device: 7.5e9)  # an 8 GiB GPU's free memory
    assert check_memory("lite0", photo, painting, 2048, 1.0, 4096, gpu) in (None, *TILES)
    assert check_memory("lite0", photo, painting, 4096, 1.0, 4096, gpu) in TILES


def test_a_size_that_cannot_fit_is_refused_in_one_sentence_naming_one_that_does(images, tmp_path, monkeypatch):
    free = 3e9
    monkeypatch.setattr(style, "available_memory", lambda device: free)
    monkeypatch.setattr(style, "_linux_number", lambda *a, **k: None)  # nothing resident yet, for the sums below
    monkeypatch.setattr(style, "_network", lambda *a, **k: pytest.fail("refused too late"))
    out = tmp_path / "out.png"
    result = CliRunner().invoke(cli, ["stylize", str(images / "content.png"), str(images / "style.jpg"), "-o", str(out),
                                      "--size", "4096", "--device", "cpu"])
    assert result.exit_code == 2 and not out.exists()
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: --size 4096 would need about ") and "GB of memory are free; the largest --size that fits is about" in line
    largest = int(line.rsplit(" ", 1)[-1].rstrip("."))
    assert 512 < largest < 4096  # tiles let far more than a whole picture would

    def need(size):
        return estimate_memory("lite0", (96, 96), [(90, 60)], size, 1.0, 4096, tile=TILES[-1])

    assert need(largest) <= 0.9 * free < need(largest + 16)
    assert check_memory("lite0", (96, 96), [(90, 60)], largest, 1.0, 4096, torch.device("cpu")) in (None, *TILES)
    with pytest.raises(GanforgeError):
        check_memory("lite0", (96, 96), [(90, 60)], largest + 16, 1.0, 4096, torch.device("cpu"))
