import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import BatchSampler, load_data, load_folder
from ganforge.errors import GanforgeError
from ganforge.images import load_image

from conftest import make_photo


def test_folder_mixed_formats_and_corrupt_files(photo_folder):
    rng = np.random.default_rng(1)
    # the awkward ones a real folder holds
    make_photo(rng, 40, 30).convert("CMYK").save(photo_folder / "cmyk.jpg")
    make_photo(rng, 30, 30).convert("P").save(photo_folder / "palette.gif")
    rgba = make_photo(rng, 30, 30).convert("RGBA")
    rgba.putalpha(0)
    rgba.save(photo_folder / "transparent.png")
    Image.fromarray((rng.random((30, 30)) * 65535).astype(np.uint16)).save(photo_folder / "deep16.png")
    (photo_folder / "empty.jpg").write_bytes(b"")
    (photo_folder / "notes.png").write_text("not a picture")
    good = (photo_folder / "img5.jpg").read_bytes()
    (photo_folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (photo_folder / "readme.txt").write_text("ignored: not an image extension")

    data = load_folder(photo_folder, size=16)
    assert data.images.dtype == torch.uint8 and data.images.shape[1:] == (3, 16, 16)
    skipped = sorted(p.split("/")[-1] for p, _ in data.skipped)
    assert skipped == ["empty.jpg", "notes.png", "truncated.jpg"]
    assert len(data) == 24  # 20 plain + CMYK, palette, alpha, 16-bit; readme.txt is not an image
    assert "Skipped" in data.skip_summary()
    # transparency is composited on white
    white = load_image(photo_folder / "transparent.png")
    assert np.asarray(white).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = np.asarray(load_image(tmp_path / "rot.jpg"))
    assert out.shape[:2] == (40, 20)  # portrait once upright
    assert out[5, 10, 0] > 200 and out[35, 10, 2] > 200  # red on top, blue below


def test_gray_detection_and_forced_channels(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(16):
        Image.fromarray((rng.random((24, 24)) * 255).astype(np.uint8), "L").save(tmp_path / f"g{i}.png")
    assert load_data(str(tmp_path), 16).channels == 1
    assert load_data(str(tmp_path), 16, channels=3).channels == 3


def test_too_few_and_no_usable_images(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(3):
        make_photo(rng, 20, 20).save(tmp_path / f"a{i}.png")
    with pytest.raises(GanforgeError, match="only 3"):
        load_folder(tmp_path, 16)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.jpg").write_bytes(b"junk")
    with pytest.raises(GanforgeError, match="could be decoded"):
        load_folder(broken, 16)


def test_decompression_bomb_is_skipped(photo_folder, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # every 20..60 px image is now "huge"
    with pytest.raises(GanforgeError, match="could be decoded"):
        load_folder(photo_folder, 16)


def test_resize_short_side_then_centre_crop(tmp_path):
    img = Image.new("RGB", (64, 32), (0, 0, 0))
    img.paste((255, 255, 255), (16, 0, 48, 32))  # the centre square is white
    for i in range(16):
        img.save(tmp_path / f"w{i}.png")
    data = load_folder(tmp_path, 16, channels=3)
    assert data.images.float().mean() > 250  # the black sides were cropped away


def test_digits_builtin():
    data = load_data("digits", 32)
    assert data.images.shape == (1797, 1, 32, 32) and data.labels is not None


def test_bad_size():
    with pytest.raises(GanforgeError, match="power of two"):
        load_data("digits", 48)


def test_batches_depend_only_on_seed_and_step():
    data = load_data("digits", 16)
    a, b = BatchSampler(data, 32, seed=5, flip=True), BatchSampler(data, 32, seed=5, flip=True)
    for step in (0, 7, 56, 57, 300):  # across epoch boundaries (56 batches per epoch)
        assert torch.equal(a.batch(step), b.batch(step))
    assert not torch.equal(a.batch(0), a.batch(1))
    # one epoch visits each image at most once
    seen = torch.cat([a.batch(s).flatten(1) for s in range(a.per_epoch)])
    assert len(seen) == a.per_epoch * 32
