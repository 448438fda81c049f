"""Video style transfer: flow, warping and occlusions against hand-made motions, the temporal loss,
round trips through every input and output kind, resume == uninterrupted, and bad input.

Clips of four 32x24 frames, a photo crop moving 2 px a frame, and two steps a frame keep the file
fast on a 2-core CPU.
"""

from __future__ import annotations

import subprocess

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import one_line_error, run
from PIL import Image
from skimage import data as skdata

import ganforge
from ganforge.errors import GanforgeError
from ganforge.style import stylize
from ganforge.stylevideo import (FOLDER_FPS, frames_folder, is_video_source, occlusion_mask, optical_flow, stylize_video, temporal_loss,
                                 warp)
from ganforge.video import ffmpeg_exe, write_video

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread

FAST = dict(size=32, steps=2, scales=1, frame_steps=2)
FPS = 10


def photo(w: int, h: int, dx: int = 0, dy: int = 0) -> np.ndarray:
    """A crop of the astronaut photo (reduced to 128 px, so it has detail at every scale), moved
    right by dx and down by dy: the crop's window moves the other way."""
    img = np.asarray(Image.fromarray(skdata.astronaut()).resize((128, 128), Image.LANCZOS))
    return np.ascontiguousarray(img[30 - dy : 30 - dy + h, 40 - dx : 40 - dx + w])


def frames_of(path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(path.glob("frame-*.png"))])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("video")
    frames = [photo(32, 24, dx=2 * i) for i in range(4)]
    write_video(frames, d / "clip.mp4", fps=FPS)
    (d / "folder").mkdir()
    for i, f in enumerate(frames):  # natural order: frame2 before frame10
        Image.fromarray(f).save(d / "folder" / f"shot{[0, 2, 10, 11][i]}.png")
    write_video(frames, d / "clip.gif", fps=FPS)
    Image.fromarray(skdata.chelsea()).resize((40, 30)).save(d / "style.jpg")
    return d


# ---- flow, warping, occlusions, the loss


def test_warp_by_hand():
    image = np.arange(24, dtype=np.float32).reshape(6, 4)  # a ramp: 4 per row, 1 per column
    one_right = np.zeros((6, 4, 2), np.float32)
    one_right[..., 0] = 1.0
    # out(x) = image(x + 1): each row moves one left; past the edge, the mirror image (column 2)
    assert np.allclose(warp(image, one_right)[:2], [[1, 2, 3, 2], [5, 6, 7, 6]])
    half_down = np.zeros((6, 4, 2), np.float32)
    half_down[..., 1] = 0.5
    # halfway between two rows; bicubic is exact on a ramp where it has two rows on either side
    assert np.allclose(warp(image, half_down)[1:4], (image[1:4] + image[2:5]) / 2)


def test_flow_then_warp_recovers_a_shifted_picture():
    a, b = photo(64, 48), photo(64, 48, dx=3, dy=2)  # b shows a's content 3 px right and 2 px down
    flow = optical_flow(b, a)
    inner = (slice(8, -8), slice(8, -8))
    assert np.allclose(np.median(flow[inner].reshape(-1, 2), axis=0), [-3, -2], atol=0.25)
    moved = warp(a.astype(np.float32), flow)
    before, after = np.abs(a.astype(np.float32) - b)[inner].mean(), np.abs(moved - b)[inner].mean()
    assert after < 0.25 * before, (after, before)


def test_occlusion_mask_by_hand():
    h, w = 10, 12
    forward, backward = np.zeros((h, w, 2), np.float32), np.zeros((h, w, 2), np.float32)
    forward[..., 0], backward[..., 0] = 3, -3  # everything moved 3 px right
    mask = occlusion_mask(forward, backward)
    assert (mask[:, :3] == 0).all() and (mask[:, 3:] == 1).all()  # the uncovered left edge only
    forward[4:7, 0:9, 0] = 0  # where the flows disagree, what t shows was hidden in t-1
    mask = occlusion_mask(forward, backward)
    assert (mask[4:7, 3:12] == 0).all() and (mask[:3, 3:] == 1).all() and (mask[8:, 3:] == 1).all()
    still = np.zeros((h, w, 2), np.float32)
    edge = still.copy()
    edge[:, 6:, 0] = -4  # the right half moves: its border with the still half is a motion boundary
    mask = occlusion_mask(-edge, edge)
    assert (mask[:, 5:7] == 0).all() and (mask[:, :4] == 1).all()


def test_occlusion_mask_from_real_flow_marks_the_uncovered_border():
    a, b = photo(64, 48), photo(64, 48, dx=4)
    mask = occlusion_mask(optical_flow(a, b), optical_flow(b, a))
    assert mask[:, :4].mean() < 0.1  # what came into view on the left
    assert mask[8:-8, 10:-8].mean() > 0.9


def test_temporal_loss_by_hand_and_it_pulls_toward_the_previous_frame():
    previous = torch.zeros(1, 3, 2, 2)
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).reshape(1, 1, 2, 2)
    loss = temporal_loss(previous, mask, weight=10.0)
    assert torch.isclose(loss(torch.full((1, 3, 2, 2), 0.5)), torch.tensor(10 * 0.25 * 3 / 4))
    x = torch.rand(1, 3, 2, 2, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    kept = x.detach()[..., 0, 1].clone()
    opt = torch.optim.SGD([x], lr=0.05)
    for _ in range(50):
        opt.zero_grad()
        loss(x).backward()
        opt.step()
    assert x.detach()[..., mask[0, 0] == 1].abs().max() < 0.05  # pulled onto the previous frame
    assert torch.equal(x.detach()[..., 0, 1], kept)  # where the mask is 0, untouched


def test_stylize_starts_from_start_and_reports_extra_losses(inputs):
    start = Image.fromarray(np.full((24, 32, 3), 90, np.uint8))
    seen = []
    out = stylize(inputs / "folder" / "shot0.png", inputs / "style.jpg", size=32, steps=1, scales=1, lr=1e-4, start=start,
                  extra_losses={"extra": lambda x: 0.5 * x.mean()}, callback=seen.append)
    assert np.abs(np.asarray(out, np.int16) - 90).max() <= 1  # one tiny step away from the start
    assert seen[0].losses["extra"] == pytest.approx(0.5 * 90 / 255, rel=1e-4)
    assert seen[0].losses["total"] == pytest.approx(sum(v for k, v in seen[0].losses.items() if k != "total"), rel=1e-5)


# ---- the video


@pytest.mark.parametrize("source,output", [("clip.mp4", "out.mp4"), ("folder", "styled"), ("clip.gif", "out.gif")])
def test_a_video_round_trips_with_its_frames_size_and_rate(inputs, tmp_path, source, output):
    assert is_video_source(inputs / source)
    seen = []

    def progress(p):
        seen.append(p)
        assert np.array_equal(np.asarray(p.image()), np.asarray(Image.open(p.path)))  # written as it is made

    video = stylize_video(inputs / source, inputs / "style.jpg", tmp_path / output, callback=progress, **FAST)
    assert (video.frames, video.width, video.height, video.fps) == (4, 32, 24, FOLDER_FPS if source == "folder" else FPS)
    assert [p.index for p in seen] == [0, 1, 2, 3] and {p.total for p in seen} == {4}
    assert "temporal" not in seen[0].losses and all("temporal" in p.losses for p in seen[1:])
    out = tmp_path / output
    if video.kind == "frames":
        assert frames_of(out).shape == (4, 24, 32, 3)
    else:
        assert iio.imread(out, index=None).shape[:3] == (4, 24, 32)
        meta = iio.immeta(out, plugin="FFMPEG") if video.kind == "mp4" else iio.immeta(out, index=0)
        assert meta["fps"] == FPS if video.kind == "mp4" else meta["duration"] == 1000 / FPS
        assert not frames_folder(out).exists()  # the working frames are gone once the video is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [output]


def test_a_folder_is_read_in_the_natural_order_of_its_names(inputs):
    from ganforge.stylevideo import open_frames

    source = open_frames(inputs / "folder")  # shot0, shot2, shot10, shot11: not shot0, shot10, shot11, shot2
    assert source.total == 4 and source.fps is None
    for i, frame in enumerate(source.frames()):
        assert np.array_equal(np.asarray(frame), photo(32, 24, dx=2 * i))


def test_the_temporal_loss_keeps_frames_on_the_moved_previous_result(inputs, tmp_path):
    def change(weight):
        out = tmp_path / f"w{weight:g}"
        stylize_video(inputs / "clip.mp4", inputs / "style.jpg", out, **(FAST | dict(frame_steps=8, lr=0.05, temporal_weight=weight)))
        frames = frames_of(out).astype(np.float32) / 255
        source = [np.asarray(f) for f in iio.imiter(inputs / "clip.mp4", plugin="FFMPEG")]
        errors = []
        for t in range(1, 4):
            backward = optical_flow(source[t], source[t - 1])
            mask = occlusion_mask(optical_flow(source[t - 1], source[t]), backward)[..., None]
            errors.append((mask * np.abs(frames[t] - warp(frames[t - 1], backward))).sum() / (3 * mask.sum()))
        return np.mean(errors)

    free, held = change(0), change(1e5)
    assert held < 0.5 * free, (held, free)


class Stop(Exception):
    pass


def stop_after(index):
    def callback(p):
        if p.index == index:
            raise Stop

    return callback


@pytest.mark.parametrize("output", ["styled", "out.mp4"])
def test_resume_after_an_interruption_gives_the_same_frames(inputs, tmp_path, output):
    whole = stylize_video(inputs / "clip.mp4", inputs / "style.jpg", tmp_path / "whole" / output, **FAST)
    out = tmp_path / "parts" / output
    with pytest.raises(Stop):
        stylize_video(inputs / "clip.mp4", inputs / "style.jpg", out, callback=stop_after(1), **FAST)
    kept = frames_folder(out)
    assert len(list(kept.glob("frame-*.png"))) == 2 and not (out.is_file())

    with pytest.raises(GanforgeError, match="pass --resume to continue it, or delete") as err:
        stylize_video(inputs / "clip.mp4", inputs / "style.jpg", out, **FAST)
    assert "\n" not in str(err.value) and len(list(kept.glob("frame-*.png"))) == 2  # refused, nothing touched
    with pytest.raises(GanforgeError, match="resume with the --size of the earlier run"):
        stylize_video(inputs / "clip.mp4", inputs / "style.jpg", out, resume=True, **(FAST | dict(size=40)))

    seen = []
    resumed = stylize_video(inputs / "clip.mp4", inputs / "style.jpg", out, resume=True, callback=seen.append, **FAST)
    assert [p.index for p in seen] == [2, 3] and resumed.resumed_from == 2 and resumed.frames == whole.frames == 4
    if output == "styled":
        assert np.array_equal(frames_of(out), frames_of(tmp_path / "whole" / output))
    else:
        assert np.array_equal(iio.imread(out, index=None), iio.imread(whole.path, index=None))
        assert not kept.exists()


def test_the_sound_of_an_mp4_is_copied(inputs, tmp_path):
    voiced = tmp_path / "voiced.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(inputs / "clip.mp4"), "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-c:v", "copy", "-c:a", "aac", "-shortest", str(voiced)], check=True)
    video = stylize_video(voiced, inputs / "style.jpg", tmp_path / "out.mp4", **FAST)
    assert video.audio and iio.immeta(video.path, plugin="FFMPEG").get("audio_codec") == "aac"
    said = []
    faster = stylize_video(voiced, inputs / "style.jpg", tmp_path / "fast.mp4", fps=20, log=said.append, **FAST)
    assert not faster.audio and "audio_codec" not in iio.immeta(faster.path, plugin="FFMPEG")
    assert any("sound" in s for s in said)


def test_python_mistakes(inputs, tmp_path):
    with pytest.raises(TypeError, match="stepz"):
        stylize_video(inputs / "clip.mp4", inputs / "style.jpg", tmp_path / "o.mp4", stepz=3)
    with pytest.raises(GanforgeError, match="--save-every is for a single picture"):
        stylize_video(inputs / "clip.mp4", inputs / "style.jpg", tmp_path / "o.mp4", save_every=1)
    with pytest.raises(GanforgeError, match="--frame-steps must be at least 1"):
        stylize_video(inputs / "clip.mp4", inputs / "style.jpg", tmp_path / "o.mp4", frame_steps=0)
    assert ganforge.stylize_video is stylize_video
    assert list(tmp_path.iterdir()) == []


# ---- the command line


def test_cli_makes_the_apis_frames_and_a_video(inputs, tmp_path):
    args = ["stylize", inputs / "clip.mp4", inputs / "style.jpg", "--size", 32, "--steps", 2, "--scales", 1, "--frame-steps", 2]
    result = run(*args, "-o", tmp_path / "cli")
    assert result.exit_code == 0, result.output
    assert "wrote 4 frames (32x24 at 10 fps) as numbered PNG frames in" in result.output
    stylize_video(inputs / "clip.mp4", inputs / "style.jpg", tmp_path / "api", **FAST)
    assert np.array_equal(frames_of(tmp_path / "cli"), frames_of(tmp_path / "api"))
    result = run(*args, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0 and "as an MP4" in result.output and iio.imread(tmp_path / "out.mp4", index=None).shape[0] == 4


def test_cli_interrupted_then_resumed(inputs, tmp_path, monkeypatch):
    from ganforge import stylevideo

    real = stylevideo.save_image_atomic
    calls = []

    def ctrl_c_at_the_third_frame(image, path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(image, path)

    monkeypatch.setattr(stylevideo, "save_image_atomic", ctrl_c_at_the_third_frame)
    args = ["stylize", inputs / "clip.mp4", inputs / "style.jpg", "--size", 32, "--steps", 2, "--scales", 1, "--frame-steps", 2,
            "-o", tmp_path / "out.mp4"]
    result = run(*args)
    assert result.exit_code == 130 and "2 frames are in" in result.output and "--resume" in result.output
    monkeypatch.setattr(stylevideo, "save_image_atomic", real)
    one_line_error(run(*args), "pass --resume")
    result = run(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert iio.imread(tmp_path / "out.mp4", index=None).shape[0] == 4


@pytest.mark.parametrize("case", ["missing", "corrupt", "empty_folder", "odd_sizes", "bad_suffix", "picture_out", "onto_itself",
                                  "video_option_for_a_photo"])
def test_cli_bad_input_is_one_sentence(inputs, tmp_path, case):
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"this is not really a video" * 20)
    (tmp_path / "empty").mkdir()
    (tmp_path / "odd").mkdir()
    Image.fromarray(photo(32, 24)).save(tmp_path / "odd" / "a.png")
    Image.fromarray(photo(30, 24)).save(tmp_path / "odd" / "b.png")
    style, out = inputs / "style.jpg", tmp_path / "out.mp4"
    args, fragment = {
        "missing": ([tmp_path / "nope.mp4", style, "-o", out], "nope.mp4: no such file or folder."),
        "corrupt": ([corrupt, style, "-o", out], "broken.mp4 is not a readable video (invalid data found when processing input)."),
        "empty_folder": ([tmp_path / "empty", style, "-o", out], "holds no pictures to use as frames"),
        "odd_sizes": ([tmp_path / "odd", style, "-o", out], "must all have one size: a.png is 32x24 but b.png is 30x24."),
        "bad_suffix": ([inputs / "clip.mp4", style, "-o", tmp_path / "out.xyz"], "unknown video suffix '.xyz'"),
        "picture_out": ([inputs / "clip.mp4", style, "-o", tmp_path / "out.png"], "is a video: write an .mp4, a .gif, or a folder"),
        "onto_itself": ([inputs / "clip.mp4", style, "-o", inputs / "clip.mp4"], "is the video the frames come from"),
        "video_option_for_a_photo": ([inputs / "folder" / "shot0.png", style, "--frame-steps", 3, "-o", tmp_path / "o.png"],
                                     "--frame-steps is for a video or a folder of frames"),
    }[case]
    one_line_error(run("stylize", *args), fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4", "empty", "odd"]  # nothing written
