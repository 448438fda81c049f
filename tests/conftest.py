import numpy as np
import pytest
import torch
from PIL import Image


def make_photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A smooth random colour image: gradients plus a few blobs, so resizing has something to do."""
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack([x, y, 1 - x], -1) * rng.uniform(0.3, 1.0, 3)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
        base += (((x - cx) ** 2 + (y - cy) ** 2) < r * r)[..., None] * rng.uniform(-0.5, 0.5, 3)
    return Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8), "RGB")


@pytest.fixture
def photo_folder(tmp_path):
    """20 small colour pictures of assorted sizes and formats."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for i in range(20):
        img = make_photo(rng, int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        ext = [".jpg", ".PNG", ".webp", ".bmp", ".tif"][i % 5]
        img.save((folder if i % 2 else folder / "nested") / f"img{i}{ext}")
    return folder


def run(*args):
    """`ganforge ARGS...` in-process; returns click's Result (output holds stdout and stderr)."""
    from click.testing import CliRunner

    from ganforge.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *fragments):
    """A user's mistake: exit code 2 and one line starting `Error`, naming each fragment."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error"), result.output
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of tiny pictures: thread hand-offs cost more than they save,
    and on a busy 2-core machine spinning worker threads slow each step many times over."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
