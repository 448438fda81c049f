"""Neural style transfer: losses against hand computations, options, bad input, API == CLI.

Tiny images (48-64 px) and a few steps keep the file fast on a 2-core CPU; nothing downloads
(VGG-19 is exercised with randomly initialised weights saved to a local file).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

import ganforge
from ganforge.backbones import build_lite0, layer_names, lite0_pooled_features
from ganforge.cli.main import cli
from ganforge.errors import GanforgeError
from ganforge.style import gram_matrix, match_color, stylize, swag, total_variation

FAST = dict(size=48, steps=3, scales=1)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    Image.fromarray(skdata.astronaut()).resize((96, 96)).save(d / "content.png")
    Image.fromarray(skdata.chelsea()).resize((90, 60)).save(d / "style.jpg")
    Image.fromarray(skdata.coffee()).resize((80, 60)).save(d / "style2.png")
    return d


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


# ---- numbers


def test_gram_matrix_matches_hand_computation():
    # Two channels over four positions: a = [1, 2, 3, 4], b = [0, 1, 0, -1].
    f = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, -1.0]]).reshape(1, 2, 2, 2)
    # a.a = 30, a.b = 2 - 4 = -2, b.b = 2; divided by the 4 positions.
    expected = torch.tensor([[[30.0, -2.0], [-2.0, 2.0]]]) / 4
    assert torch.allclose(gram_matrix(f), expected)


def test_swag_is_a_spatial_softmax_scaled_to_mean_one():
    f = torch.randn(2, 3, 4, 5)
    s = swag(f, temperature=1.0)
    assert torch.allclose(s.mean(dim=(2, 3)), torch.ones(2, 3))
    manual = torch.softmax(f[1, 2].flatten(), 0) * 20
    assert torch.allclose(s[1, 2].flatten(), manual)


def test_total_variation_by_hand():
    x = torch.tensor([[0.0, 1.0], [0.0, 3.0]]).reshape(1, 1, 2, 2)
    # horizontal diffs: 1, 3 -> mean sq 5; vertical diffs: 0, 2 -> mean sq 2
    assert torch.isclose(total_variation(x), torch.tensor(7.0))


def test_match_color_moves_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    src = torch.rand(1, 3, 32, 32, generator=g) * 0.3
    tgt = torch.rand(1, 3, 32, 32, generator=g) * 0.5 + 0.4
    out = match_color(src, tgt)
    assert torch.allclose(out.mean(dim=(2, 3)), tgt.mean(dim=(2, 3)), atol=0.01)
    assert torch.allclose(torch.cov(out.reshape(3, -1)), torch.cov(tgt.reshape(3, -1)), atol=2e-3)


@pytest.mark.parametrize("term", ["content", "style", "tv"])
def test_each_loss_falls(images, term):
    weights = dict(content_weight=0.0, style_weight=0.0, tv_weight=0.0)
    weights[f"{term}_weight"] = 1.0
    seen = []
    stylize(images / "content.png", images / "style.jpg", size=64, steps=8, scales=1, init="random",
            lr=0.05, callback=lambda p: seen.append(p.losses[term]), **weights)
    assert len(seen) == 8 and seen[-1] < 0.8 * seen[0]


def test_progress_reports_steps_and_image(images):
    seen = []
    out = stylize(images / "content.png", images / "style.jpg", size=48, steps=2, scales=2, callback=seen.append)
    assert [p.step for p in seen] == [1, 2, 3, 4] and seen[-1].total == 4
    assert [p.scale for p in seen] == [1, 1, 2, 2] and seen[0].size == (24, 24)
    assert set(seen[-1].losses) == {"content", "style", "tv", "total"}
    assert np.array_equal(_arr(seen[-1].image()), _arr(out))


def test_lite0_weights_classify_a_cat():
    model = build_lite0()
    x = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        top5 = model(x).topk(5).indices[0].tolist()
    assert set(top5) & {281, 282, 283, 285, 287}  # tabby, tiger cat, Persian, Egyptian cat, lynx


def test_lite0_pooled_features():
    feats = lite0_pooled_features(torch.rand(2, 3, 64, 80))
    assert feats.shape == (2, 1280) and not feats.requires_grad and torch.isfinite(feats).all()


# ---- every option changes the output


@pytest.fixture(scope="module")
def baseline(images):
    return _arr(stylize(images / "content.png", images / "style.jpg", **FAST))


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory):
    from torchvision.models import vgg19

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "vgg19-random.pth"
    torch.save(vgg19(weights=None).features.state_dict(), path)
    return path


@pytest.mark.parametrize("option", [
    dict(content_weight=200.0), dict(style_weight=10.0), dict(tv_weight=1e4),
    dict(style_layers="stem,blocks.1.expand"),
    dict(init="random"), dict(optimizer="lbfgs", lr=0.5), dict(steps=6), dict(lr=0.05),
    dict(scales=2), dict(style_scale=0.5), dict(preserve_color="luminance"), dict(preserve_color="histogram"),
])
def test_each_option_changes_the_output(images, baseline, option):
    out = _arr(stylize(images / "content.png", images / "style.jpg", **(FAST | option)))
    assert out.shape == baseline.shape and np.abs(out - baseline).mean() > 0.5


def test_content_layers_change_the_output(images):
    # The content term is small after 3 steps from the photo, so weigh it up to see the layer matter.
    base = FAST | dict(content_weight=1e4, init="random")
    a = _arr(stylize(images / "content.png", images / "style.jpg", **base))
    b = _arr(stylize(images / "content.png", images / "style.jpg", content_layers="blocks.3.expand", **base))
    assert np.abs(a - b).mean() > 0.5


def test_size_sets_long_edge_and_keeps_aspect(images):
    out = stylize(images / "style.jpg", images / "content.png", size=60, steps=1, scales=1)
    assert out.size == (60, 40)


def test_seed_changes_random_init_and_repeats(images):
    a = stylize(images / "content.png", images / "style.jpg", init="random", seed=1, **FAST)
    b = stylize(images / "content.png", images / "style.jpg", init="random", seed=1, **FAST)
    c = stylize(images / "content.png", images / "style.jpg", init="random", seed=2, **FAST)
    assert np.array_equal(_arr(a), _arr(b)) and np.abs(_arr(a) - _arr(c)).mean() > 0.5


def test_style_weights_blend_two_styles(images):
    two = [images / "style.jpg", images / "style2.png"]
    a = _arr(stylize(images / "content.png", two, style_weights="0.9,0.1", **FAST))
    b = _arr(stylize(images / "content.png", two, style_weights=[0.1, 0.9], **FAST))
    assert np.abs(a - b).mean() > 0.5


def test_vgg19_with_random_weights_from_a_file(images, vgg_weights):
    out = stylize(images / "content.png", images / "style.jpg", backbone="vgg19", weights=vgg_weights,
                  size=40, steps=2, scales=1)
    assert out.size == (40, 40)
    assert "relu4_2" in layer_names("vgg19")


def test_save_every_and_max_size(images, tmp_path):
    messages = []
    stylize(images / "content.png", images / "style.jpg", size=48, steps=4, scales=1, save_every=2,
            save_path=tmp_path / "out.png", max_size=64, log=messages.append)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-0002.png", "out-0004.png"]
    assert any("reduced to 64x64" in m for m in messages)


def test_pil_images_and_package_level_function(images):
    out = ganforge.stylize(Image.open(images / "content.png"), Image.open(images / "style.jpg"), **FAST)
    assert np.array_equal(_arr(out), _arr(stylize(images / "content.png", images / "style.jpg", **FAST)))


@pytest.mark.parametrize("kwargs", [
    dict(init="noise"), dict(optimizer="sgd"), dict(backbone="resnet"), dict(preserve_color="all"),
    dict(content_layers="nope"), dict(style_weights="1,2"), dict(steps=0), dict(lr=-1.0),
])
def test_api_rejects_bad_values_with_one_sentence(images, kwargs):
    with pytest.raises(GanforgeError) as err:
        stylize(images / "content.png", images / "style.jpg", **(FAST | kwargs))
    assert "\n" not in str(err.value)


# ---- the command line


def test_cli_gives_the_same_image_as_the_api(images, tmp_path):
    out = tmp_path / "new" / "folder" / "out.png"  # the folder is created
    args = ["stylize", str(images / "content.png"), str(images / "style.jpg"), "-o", str(out),
            "--size", "48", "--steps", "3", "--scales", "1", "--init", "random", "--seed", "7"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    api = stylize(images / "content.png", images / "style.jpg", init="random", seed=7, **FAST)
    assert np.array_equal(_arr(Image.open(out)), _arr(api))


def test_cli_list_layers():
    result = CliRunner().invoke(cli, ["stylize", "--list-layers"])
    assert result.exit_code == 0 and "blocks.5.expand  (default content, style)" in result.output
    result = CliRunner().invoke(cli, ["stylize", "--list-layers", "--backbone", "vgg19"])
    assert "relu4_2  (default content)" in result.output


@pytest.mark.parametrize("case", ["missing", "corrupt", "bad_choice", "bad_number", "no_output", "bad_extension"])
def test_cli_bad_input_is_one_line_and_exit_2(images, tmp_path, case):
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    content, style, extra = str(images / "content.png"), str(images / "style.jpg"), ["-o", str(tmp_path / "o.png")]
    args = {
        "missing": [str(tmp_path / "nope.jpg"), style] + extra,
        "corrupt": [content, str(corrupt)] + extra,
        "bad_choice": [content, style, "--init", "zeros"] + extra,
        "bad_number": [content, style, "--steps", "many"] + extra,
        "no_output": [content, style],
        "bad_extension": [content, style, "-o", str(tmp_path / "o.xyz")],
    }[case]
    result = CliRunner().invoke(cli, ["stylize", *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output
    assert not (tmp_path / "o.png").exists()


def _odd_inputs(d):
    rgb = skdata.astronaut()[::8, ::8]  # (64, 64, 3)
    made = {}
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(d / "alpha.png")
    Image.fromarray(rgb).convert("L").save(d / "gray.png")
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(d / "sixteen.png")
    # A 64x32 landscape stored with EXIF orientation 6 (rotate 90 degrees): upright it is 32x64.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb[:32]).save(d / "rotated.jpg", exif=exif.tobytes())
    for name in ("alpha.png", "gray.png", "cmyk.jpg", "sixteen.png", "rotated.jpg"):
        made[name] = d / name
    return made


def test_odd_inputs_work(images, tmp_path):
    odd = _odd_inputs(tmp_path)
    for name, path in odd.items():
        out = stylize(path, images / "style.jpg", size=32, steps=1, scales=1)
        assert out.mode == "RGB"
        assert out.size == ((16, 32) if name == "rotated.jpg" else (32, 32)), name
        # and as a style image
        stylize(images / "content.png", path, size=32, steps=1, scales=1)


def test_output_is_written_atomically(images, tmp_path):
    out = tmp_path / "out.jpg"
    result = CliRunner().invoke(cli, ["stylize", str(images / "content.png"), str(images / "style.jpg"),
                                      "-o", str(out), "--size", "32", "--steps", "1", "--scales", "1"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["out.jpg"]
    Image.open(io.BytesIO(out.read_bytes())).verify()


def test_folding_batchnorm_keeps_lite0_features():
    x = torch.rand(1, 3, 70, 90)  # odd sizes exercise the asymmetric "same" padding
    plain, fused = build_lite0(), build_lite0().fuse_batchnorm()
    with torch.no_grad():
        a, b = plain.features(x, ["blocks.5.expand", "head"]), fused.features(x, ["blocks.5.expand", "head"])
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backbone", ["lite0", "vgg19"])
def test_wrong_weights_file_is_one_sentence(images, backbone):
    with pytest.raises(GanforgeError, match="weights"):
        stylize(images / "content.png", images / "style.jpg", backbone=backbone, weights=images / "content.png", **FAST)


# ---- memory


def test_a_size_that_cannot_fit_is_refused_before_work_with_the_largest_that_fits(images, monkeypatch):
    from ganforge import style

    monkeypatch.setattr(style, "available_memory", lambda device: 2e9)
    monkeypatch.setattr(style, "_linux_number", lambda *a, **k: None)  # nothing resident yet, for the sums below
    monkeypatch.setattr(style, "build_backbone", lambda *a, **k: pytest.fail("refused too late"))
    with pytest.raises(GanforgeError) as err:
        stylize(images / "content.png", images / "style.jpg", size=4096, steps=1, scales=1, device="cpu")
    message = str(err.value)
    assert message.startswith("--size 4096 would need about ") and "GB more, but 2.0 GB of memory are free; the largest --size that fits is about" in message
    largest = int(message.rsplit(" ", 1)[-1].rstrip("."))
    assert 16 <= largest < 4096
    assert style.estimate_memory("lite0", (96, 96), [(90, 60)], largest, 1.0, 4096) <= 0.9 * 2e9
    assert style.estimate_memory("lite0", (96, 96), [(90, 60)], largest + 16, 1.0, 4096) > 0.9 * 2e9


def test_the_style_scale_is_bounded(images):
    said = []
    out = stylize(images / "content.png", images / "style.jpg", size=32, steps=1, scales=1, style_scale=100, log=said.append)
    assert out.size == (32, 32) and any("--style-scale 100 is more than 4" in s for s in said)
    from ganforge.style import style_size

    assert style_size((90, 60), 64, 100.0, 4096) == style_size((90, 60), 64, 4.0, 4096) == (256, 171)  # 4 at most
    assert style_size((90, 60), 2048, 4.0, 4096) == (4096, 2731)  # and never beyond --max-size


def test_the_memory_estimate_covers_a_real_run(images, tmp_path):
    """In a fresh process, the peak resident memory of a run stays under its estimate."""
    import json
    import subprocess
    import sys

    from ganforge.style import estimate_memory

    child = ("import json, resource, sys; from ganforge.style import stylize; "
             "stylize(sys.argv[1], sys.argv[2], size=384, steps=2, scales=1, style_scale=4.0, device='cpu'); "
             "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))")
    out = subprocess.run([sys.executable, "-c", child, str(images / "content.png"), str(images / "style.jpg")], capture_output=True, text=True, check=True)
    peak = json.loads(out.stdout.strip().splitlines()[-1])
    estimate = estimate_memory("lite0", (96, 96), [(90, 60)], 384, 4.0, 4096)
    assert peak <= estimate, (peak, estimate)


def test_vgg19_needs_pictures_of_16_px(images, vgg_weights):
    with pytest.raises(GanforgeError, match="too small for vgg19"):
        stylize(images / "content.png", images / "style.jpg", size=32, steps=1, scales=2, backbone="vgg19", weights=vgg_weights)
