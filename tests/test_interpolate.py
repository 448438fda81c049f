"""`ganforge interpolate`, the latent walks behind it (`ganforge.gan.walk`) and the video writer
(`ganforge.video`), on tiny untrained generators built in place."""

import imageio.v2 as iio
import numpy as np
import pytest
import torch
from conftest import one_line_error, run
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.gan.checkpoint import load_generator, save_generator
from ganforge.gan.families.base import ModelConfig
from ganforge.gan.networks import build_generator
from ganforge.gan.sampling import generate, latents, sample_images
from ganforge.gan.walk import PAD, frame_count, resize, slerp, walk_frames, walk_latents
from ganforge.video import gif_durations, write_video

D = 8  # latent size of the test generators


def _save(path, **kw):
    """A generator whose pictures differ clearly from latent to latent: freshly initialised ones
    draw a flat gray, which would let tests of "the frames move" pass by rounding."""
    torch.manual_seed(0)
    cfg = ModelConfig(**{"size": 16, "channels": 1, "latent_dim": D, "g_width": 8} | kw)
    g = build_generator(cfg)
    with torch.no_grad():
        for p in g.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    save_generator(g, cfg, path, 0)
    return path


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("gen") / "g.safetensors")


@pytest.fixture(scope="module")
def cond(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("gen") / "c.safetensors", classes=("zero", "one", "two"))


def close(actual, expected):
    # The same picture drawn in batches of other sizes may differ in the last bits (oneDNN picks
    # its convolution by batch size).
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=0)


def cell(frames, k, cols, h):
    """Cell k of tiled frames (T, C, H, W)."""
    y, x = PAD + (k // cols) * (h + PAD), PAD + (k % cols) * (h + PAD)
    return frames[:, :, y : y + h, x : x + h]


def pngs(folder):
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("frame-*.png"))]


# --- slerp and the walk's frames ------------------------------------------------------------


def test_slerp_ends_on_the_points_keeps_the_length_and_moves_evenly():
    a, b = torch.randn(2, 64, generator=torch.Generator().manual_seed(0))
    b = b * 1.3  # unequal lengths
    t = torch.linspace(0, 1, 11)
    out = slerp(a, b, t)  # (11, 64)
    assert torch.equal(out[0], a) and torch.equal(out[-1], b)
    norms = out.norm(dim=1)
    close(norms, (1 - t) * a.norm() + t * b.norm())  # the length moves linearly
    assert norms.min() >= min(a.norm(), b.norm()) - 1e-5
    # the direction moves at an even pace along the great circle: angle from a = t * angle(a, b)
    cos = lambda u, v: (u @ v / (u.norm() * v.norm())).clamp(-1, 1)  # noqa: E731
    omega = torch.acos(cos(a, b))
    angles = torch.stack([torch.acos(cos(a, o)) for o in out])
    torch.testing.assert_close(angles, t * omega, atol=1e-3, rtol=0)
    # where a straight line sags towards the origin, well below both lengths
    assert ((a + b) / 2).norm() < 0.85 * min(a.norm(), b.norm())


def test_slerp_of_parallel_and_zero_vectors_is_a_straight_line():
    a = torch.tensor([3.0, 4.0])
    t = torch.tensor([0.0, 0.25, 1.0])
    close(slerp(a, 2 * a, t), torch.stack([a, 1.25 * a, 2 * a]))
    close(slerp(torch.zeros(2), a, t), torch.stack([0 * a, 0.25 * a, a]))


def test_walk_frame_counts_and_the_seam_of_a_loop():
    points = torch.randn(3, 2, D)  # 3 points, 2 cells
    walk = walk_latents(points, 4)
    assert walk.shape == (9, 2, D) == (frame_count(3, 4, False), 2, D)
    assert all(torch.equal(walk[4 * i], points[i]) for i in range(3))
    looped = walk_latents(points, 4, loop=True)
    assert looped.shape == (12, 2, D) == (frame_count(3, 4, True), 2, D)
    assert not torch.equal(looped[-1], points[0])  # the first point is not shown again at the seam
    close(looped[-1], slerp(points[2], points[0], [0.75])[0])
    with pytest.raises(GanforgeError, match="at least two points"):
        walk_latents(points[:1], 4, loop=True)


def test_resize_repeats_pixels_for_whole_multiples():
    x = torch.rand(2, 1, 4, 4) * 2 - 1
    big = resize(x, 12)
    assert big.shape == (2, 1, 12, 12) and torch.equal(big[:, :, ::3, ::3], x) and torch.equal(big[:, :, 2::3, 2::3], x)
    odd = resize(x, 10)
    assert odd.shape == (2, 1, 10, 10) and odd.min() >= -1 and odd.max() <= 1


# --- the files written ------------------------------------------------------------------------


def test_mp4_and_gif_have_every_frame_at_the_expected_size(gen, tmp_path):
    for name in ("walk.mp4", "walk.gif"):
        result = run("interpolate", gen, "--seeds", "1,2,3", "--frames-per-point", "5", "--size", "48", "-o", tmp_path / name)
        assert result.exit_code == 0, result.output
        assert "Wrote 11 frames (48x48" in result.output
        frames = iio.mimread(tmp_path / name, format="FFMPEG" if name.endswith("mp4") else "GIF", memtest=False)
        assert len(frames) == 11 and frames[0].shape[:2] == (48, 48)
    assert Image.open(tmp_path / "walk.gif").info["loop"] == 0  # plays round forever
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.gif", "walk.mp4"]  # no temporary files left


def test_frames_folder_loop_and_determinism(gen, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        result = run("interpolate", gen, "-n", "3", "--seed", "4", "--frames-per-point", "4", "--loop", "-o", out)
        assert result.exit_code == 0, result.output
    frames_a, frames_b = pngs(a), pngs(b)
    assert len(frames_a) == 12 and frames_a[0].shape == (16, 16)
    assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b))  # same command, same pictures
    assert np.abs(frames_a[-1].astype(int) - frames_a[0]).mean() > 5  # no repeated frame at the seam
    # -n 3 --seed 4 is --seeds 4,5,6; a shorter walk into the same folder leaves none of the old frames
    result = run("interpolate", gen, "--seeds", "4,5,6", "--frames-per-point", "2", "-o", a)
    frames = pngs(a)
    assert result.exit_code == 0 and len(frames) == 5 and len(list(a.iterdir())) == 5
    assert np.array_equal(frames[2], frames_b[4]) and np.array_equal(frames[4], frames_b[8])


def test_grid_cells_are_the_pictures_of_sample(gen, tmp_path):
    result = run("interpolate", gen, "--grid", "2x3", "--seeds", "7,8", "--frames-per-point", "2", "--size", "16", "-o", tmp_path / "g")
    assert result.exit_code == 0, result.output
    frames = pngs(tmp_path / "g")
    assert len(frames) == 3 and frames[0].shape == (2 * (16 + PAD) + PAD, 3 * (16 + PAD) + PAD)
    walk = walk_frames(gen, grid="2x3", seeds="7,8", frames_per_point=2)
    for k in range(6):  # the documented choice: cell k's point for seed S is picture k of `sample --seed S -n 6`
        close(cell(walk, k, 3, 16)[0], sample_images(gen, n=6, seed=7)[k])
        close(cell(walk, k, 3, 16)[-1], sample_images(gen, n=6, seed=8)[k])


def test_truncation_zero_draws_the_mean_picture_throughout(gen):
    frames = walk_frames(gen, seeds="1,2,3", frames_per_point=3, truncation=0.0)
    G, _, _ = load_generator(gen)
    mean = generate(G, torch.zeros(1, D))
    assert len(frames) == 7 and frames.std(dim=0).max() == 0
    close(frames[:1], mean)
    assert walk_frames(gen, seeds="1,2,3", frames_per_point=3).std(dim=0).mean() > 0.1  # untruncated, it moves


def test_from_latents_start_and_end_on_the_saved_latents(gen, tmp_path):
    za, zb = torch.randn(2, D, generator=torch.Generator().manual_seed(3))
    np.save(tmp_path / "a.npy", za.numpy())
    np.save(tmp_path / "b.npy", zb.numpy()[None].astype(np.float64))  # (1, D), float64: both accepted
    frames = walk_frames(gen, from_latents=f"{tmp_path / 'a.npy'},{tmp_path / 'b.npy'}", frames_per_point=4)
    G, _, _ = load_generator(gen)
    assert len(frames) == 5
    close(frames[0], generate(G, za[None])[0])
    close(frames[-1], generate(G, zb[None])[0])
    result = run("interpolate", gen, "--from-latents", f"{tmp_path / 'a.npy'},{tmp_path / 'b.npy'}", "--loop",
                 "--frames-per-point", "3", "-o", tmp_path / "ab.mp4")
    assert result.exit_code == 0 and "Wrote 6 frames (16x16" in result.output, result.output


def test_a_conditional_grid_walks_a_class_per_cell(cond):
    walk = walk_frames(cond, grid="1x4", seeds="2,9", frames_per_point=2)
    start = sample_images(cond, n=4, seed=2)  # classes 0, 1, 2, 0, as in `ganforge sample`
    G, _, _ = load_generator(cond)
    for k in range(4):
        close(cell(walk, k, 4, 16)[0], start[k])
        close(cell(walk, k, 4, 16)[0], generate(G, latents(4, D, 2)[k : k + 1], torch.tensor([k % 3]))[0])
    one = walk_frames(cond, grid="1x2", seeds="2,9", frames_per_point=2, class_="two")
    close(cell(one, 1, 2, 16)[0], generate(G, latents(2, D, 2)[1:], torch.tensor([2]))[0])


def test_saved_latents_of_a_conditional_generator_need_their_class(cond, tmp_path):
    for name, seed in (("a", 1), ("b", 2)):
        np.save(tmp_path / f"{name}.npy", latents(1, D, seed)[0].numpy())
    files = f"{tmp_path / 'a.npy'},{tmp_path / 'b.npy'}"
    with pytest.raises(GanforgeError, match="needs --class"):
        walk_frames(cond, from_latents=files, frames_per_point=2)
    G, _, _ = load_generator(cond)
    frames = walk_frames(cond, from_latents=files, frames_per_point=2, class_="two")
    close(frames[-1], generate(G, latents(1, D, 2), torch.tensor([2]))[0])


@pytest.mark.parametrize("arch", ["mlp", "msg", "progressive"])
def test_every_architecture_walks(arch, tmp_path):
    path = _save(tmp_path / "g.safetensors", arch=arch, channels=3, g_norm="pixel" if arch != "mlp" else "batch")
    frames = walk_frames(path, seeds="1,2", frames_per_point=3, size=32)
    assert frames.shape == (4, 3, 32, 32) and frames.std(dim=0).mean() > 0.05


# --- the video writer -------------------------------------------------------------------------


def test_odd_gray_frames_become_even_rgb_mp4(tmp_path):
    frames = [np.full((9, 15), 40 * i, np.uint8) for i in range(5)]  # (H, W) gray, odd sides
    assert write_video(frames, tmp_path / "v.mp4", fps=10) == 5
    back = iio.mimread(tmp_path / "v.mp4", format="FFMPEG")
    assert len(back) == 5 and back[0].shape == (10, 16, 3)
    assert abs(int(back[3][4, 7, 0]) - 120) <= 3 and abs(int(back[3][4, 7, 0]) - int(back[3][4, 7, 2])) <= 3  # gray stays gray


def test_a_failure_midway_leaves_no_half_file(tmp_path):
    def frames():
        yield np.zeros((8, 8, 3), np.uint8)
        raise GanforgeError("stop")

    for name in ("v.mp4", "v.gif", "v"):
        with pytest.raises(GanforgeError, match="stop"):
            write_video(frames(), tmp_path / name)
    assert [p.name for p in tmp_path.iterdir()] == ["v"]  # no video under its name, no temporary files
    assert [p.name for p in (tmp_path / "v").iterdir()] == ["frame-00000.png"]  # a folder keeps its whole frames
    assert Image.open(tmp_path / "v" / "frame-00000.png").size == (8, 8)


def test_gif_durations_average_to_the_frame_rate():
    d = gif_durations(24, 24)
    assert set(d) == {40, 50} and sum(d) == 1000
    assert gif_durations(3, 10) == [100, 100, 100]


# --- mistakes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["--grid", "2by3"], ["--grid", "2by3"]),
    (["--grid", "0x3"], ["--grid"]),
    (["-o", "walk.avi"], ["walk.avi", ".avi"]),
    (["--seeds", "3"], ["at least two points"]),
    (["--seeds", "1,two"], ["--seeds", "1,two"]),
    (["--seeds", "1,2", "-n", "3"], ["--seeds and -n"]),
    (["--class", "3"], ["--class", "conditional"]),
    (["--fps", "60", "-o", "w.gif"], ["--fps 60", "GIF"]),
])
def test_bad_options_get_one_line(gen, tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    one_line_error(run("interpolate", gen, *args), *fragments)
    assert list(tmp_path.iterdir()) == []


def test_bad_latents_files_get_one_line_naming_the_file(gen, tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.zeros(D, np.float32))
    np.save(tmp_path / "short.npy", np.zeros(D - 1, np.float32))
    np.save(tmp_path / "words.npy", np.array(["a"] * D))
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    for name, fragment in [("missing.npy", "no such latents file"), ("short.npy", f"shape ({D - 1},)"),
                           ("junk.npy", "not a readable .npy"), ("words.npy", "not the numbers")]:
        one_line_error(run("interpolate", gen, "--from-latents", f"{good},{tmp_path / name}", "-o", tmp_path / "x.mp4"), name, fragment)
    one_line_error(run("interpolate", gen, "--from-latents", f"{good},{good}", "--seeds", "1,2"), "--seeds and --from-latents")
    one_line_error(run("interpolate", gen, "--from-latents", f"{good},{good}", "--grid", "2x2"), "same walk")
    assert not (tmp_path / "x.mp4").exists()


def test_missing_ffmpeg_is_one_line_before_any_work(gen, tmp_path, monkeypatch):
    import imageio_ffmpeg

    def missing():
        raise RuntimeError("No ffmpeg exe could be found.")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", missing)
    monkeypatch.setattr("ganforge.gan.walk.plan_walk", lambda *a, **k: pytest.fail("the walk was planned before the output was checked"))
    one_line_error(run("interpolate", gen, "-o", tmp_path / "w.mp4"), "ffmpeg", ".gif")
    assert not (tmp_path / "w.mp4").exists()
