"""--transparent: pictures keep their alpha channel through training, sampling and saving."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from conftest import one_line_error, run
from ganforge.data import load_data
from ganforge.gan.augment import color, Draws
from ganforge.gan.checkpoint import load_generator
from ganforge.gan.config import TrainConfig
from ganforge.gan.loop import resume_training, train
from ganforge.gan.sampling import generate, latents
from ganforge.images import checkerboard, grid_image, save_pngs, to_float, to_uint8
from ganforge.metrics.features import to_rgb


@pytest.fixture
def icons(tmp_path):
    """24 coloured discs on a transparent background, 16 px, with soft edges."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "icons"
    folder.mkdir()
    for i in range(24):
        img = Image.new("RGBA", (16, 16), (255, 255, 255, 0))  # invisible white under the disc
        r = int(rng.integers(3, 7))
        ImageDraw.Draw(img).ellipse((8 - r, 8 - r, 8 + r, 8 + r), fill=tuple(int(v) for v in rng.integers(0, 255, 3)) + (255,))
        pixels = np.asarray(img).copy()
        pixels[0, :, 3] = 128  # a half-transparent top row
        Image.fromarray(pixels, "RGBA").save(folder / f"{i}.png")
    return folder


def test_the_alpha_channel_is_read_as_the_files_hold_it(icons):
    data = load_data(str(icons), 16, transparent=True)
    assert data.images.shape == (24, 4, 16, 16)
    first = np.asarray(Image.open(icons / "0.png"))
    assert np.array_equal(data.images[0, 3].numpy(), first[..., 3])
    visible = first[..., 3] > 0
    assert np.array_equal(data.images[0, :3].permute(1, 2, 0).numpy()[visible], first[..., :3][visible])
    assert (data.images[:, :3][data.images[:, 3:].expand(-1, 3, -1, -1) == 0] == 0).all()  # invisible pixels are transparent black
    assert load_data(str(icons), 16).images.shape[1] == 3  # without --transparent: composited on white, as before


def test_transparent_pngs_round_trip(tmp_path):
    rgba = torch.randint(0, 256, (2, 4, 8, 8), dtype=torch.uint8)
    paths = save_pngs(to_float(rgba), tmp_path)
    back = np.stack([np.asarray(Image.open(p)) for p in paths])
    assert Image.open(paths[0]).mode == "RGBA" and np.array_equal(back, rgba.permute(0, 2, 3, 1).numpy())


def test_grids_show_transparency_on_a_checkerboard():
    images = torch.zeros(4, 4, 16, 16, dtype=torch.uint8)
    images[:, :3] = 200
    images[:, 3, :8] = 255  # top half opaque, bottom half invisible
    grid = grid_image(images, nrow=2)
    assert grid.shape == (3, 2 * 18 + 2, 2 * 18 + 2)
    cell = grid[:, 2:18, 2:18]
    assert (cell[:, :8] == 200).all() and torch.equal(cell[:, 8:], checkerboard(16, 16, 2)[:, 8:])
    assert torch.equal(to_rgb(images)[0, :, 8:], torch.full((3, 8, 16), 255, dtype=torch.uint8))  # features see white, as untransparent training


def test_colour_augmentation_leaves_the_alpha_channel_alone():
    x = torch.rand(4, 4, 8, 8) * 2 - 1
    out = color(x, Draws(torch.Generator().manual_seed(0), 4), 1.0)
    assert torch.equal(out[:, 3], x[:, 3]) and not torch.allclose(out[:, :3], x[:, :3])


def test_a_transparent_run_trains_resumes_and_samples_with_alpha(icons, tmp_path):
    cfg = TrainConfig(data=str(icons), transparent=True, size=16, steps=4, batch_size=8, g_width=8, d_width=8, latent_dim=8,
                      sample_every=4, checkpoint_every=2, augment=True, collapse_check=True)
    run_dir = train(cfg, tmp_path / "r", sinks=[])
    resume_training(run_dir, steps=6, sinks=[])
    generator, model, step = load_generator(run_dir)
    assert model.channels == 4 and step == 6
    assert Image.open(run_dir / "samples" / "step-000004.png").mode == "RGB"  # on a checkerboard
    result = run("sample", run_dir, "-n", "3", "--out-dir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    expected = to_uint8(generate(generator, latents(3, model.latent_dim, 0)))
    saved = np.asarray(Image.open(tmp_path / "out" / "sample-00001.png"))
    assert saved.shape == (16, 16, 4) and np.array_equal(saved[..., 3], expected[1, 3].numpy())


def test_transparent_needs_a_folder_and_colour(icons, tmp_path):
    one_line_error(run("train", "digits", "--transparent", "--run-dir", tmp_path / "a"), "--transparent", "digits")
    one_line_error(run("train", icons, "--transparent", "--channels", "1", "--run-dir", tmp_path / "b"), "--channels 1")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_walk_videos_show_transparent_pictures_on_a_checkerboard(tmp_path):
    import imageio.v3 as iio

    from ganforge.gan.checkpoint import save_generator
    from ganforge.gan.families.base import ModelConfig
    from ganforge.gan.networks import build_generator
    from ganforge.gan.walk import interpolate, walk_frames
    from ganforge.images import for_viewing

    cfg = ModelConfig(size=16, channels=4, latent_dim=8, g_width=8)
    path = save_generator(build_generator(cfg), cfg, tmp_path / "g.safetensors", step=1)
    done = interpolate(path, tmp_path / "walk.gif", seeds="1,2", frames_per_point=2, fps=10)
    frames = iio.imread(tmp_path / "walk.gif", index=None)
    assert done.frames == 3 and frames.shape[1:3] == (16, 16) and frames.shape[-1] in (3, 4)
    if frames.shape[-1] == 4:  # a reader may add an opaque alpha channel to a GIF
        assert (frames[..., 3] == 255).all()
    first = walk_frames(path, seeds="1,2", frames_per_point=2)[:1]
    assert first.shape[1] == 4 and (first[:, 3] < 0.9).any()  # partly transparent pictures
    shown = for_viewing(first, square=8)[0].permute(1, 2, 0).numpy().astype(float)
    assert np.abs(frames[0][..., :3].astype(float) - shown).mean() < 3  # (a GIF's palette rounds a little)
    assert np.abs(shown[:8, :8] - shown[:8, 8:]).mean() > 5  # the checkerboard shows through


def test_what_translation_and_cutout_uncover_is_transparent_black():
    from ganforge.gan.augment import cutout, translation

    x = torch.ones(8, 4, 16, 16) * 0.5
    for op in (translation, cutout):
        out = op(x, Draws(torch.Generator().manual_seed(1), 8), 1.0)
        uncovered = (out != 0.5).any(1)  # (B, H, W)
        assert uncovered.any() and (out.permute(0, 2, 3, 1)[uncovered] == -1).all()
    three = torch.ones(2, 3, 8, 8) * 0.5  # colour pictures still get the zeros they always got
    assert (translation(three, Draws(torch.Generator().manual_seed(1), 2), 1.0) == 0).any()
