"""`ganforge export`: the exported file draws what PyTorch draws, at any batch size, and says what it holds."""

import json
import re
import sys

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from conftest import one_line_error, run
from ganforge.errors import GanforgeError
from ganforge.gan import export as export_module
from ganforge.gan.checkpoint import save_generator
from ganforge.gan.export import export_generator
from ganforge.gan.families.base import ModelConfig
from ganforge.gan.networks import build_generator
from ganforge.version import __version__

ort = pytest.importorskip("onnxruntime")  # a dev dependency; without it only onnx.checker would check

CLASSES = ("zero", "one", "two")


def lively_generator(cfg: ModelConfig, tmp_path, name="g.safetensors"):
    """A generator whose pictures span [-1, 1] and whose BatchNorm layers hold statistics of their
    own, saved as a .safetensors; freshly initialised ones draw nearly flat grey (|x| ~ 1e-9), which
    any exporter would match."""
    torch.manual_seed(0)
    g = build_generator(cfg)
    for m in g.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)):
            m.reset_parameters()  # PyTorch's default scale, not DCGAN's N(0, 0.02)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    g.eval()
    path = save_generator(g, cfg, tmp_path / name, step=123)
    return g, path


def pytorch_images(g, z, labels=None):
    with torch.no_grad():
        return (g(z) if labels is None else g(z, labels)).numpy()


def tiny(arch, **kw):
    return ModelConfig(**{"arch": arch, "size": 16, "channels": 3, "latent_dim": 8, "g_width": 4, **kw})


@pytest.mark.parametrize("cfg", [
    tiny("dcgan"),
    tiny("mlp", size=32, channels=1),
    tiny("msg", upsample="nearest", g_norm="pixel"),
    tiny("progressive", size=32, upsample="nearest"),
    tiny("fastgan", size=64, g_width=2, upsample="nearest"),
], ids=["dcgan", "mlp", "msg-pixelnorm", "progressive", "fastgan"])
def test_onnx_draws_what_pytorch_draws_at_any_batch_size(cfg, tmp_path):
    g, source = lively_generator(cfg, tmp_path)
    done = export_generator(source, tmp_path / "g.onnx")
    assert done.checked_with == "onnxruntime" and done.max_difference < 1e-4 and done.format == "onnx"

    session = ort.InferenceSession(str(done.path), providers=["CPUExecutionProvider"])
    (z_in,), (out,) = session.get_inputs(), session.get_outputs()
    assert (z_in.name, z_in.type, z_in.shape) == ("z", "tensor(float)", ["batch", cfg.latent_dim])
    assert (out.name, out.shape) == ("images", ["batch", cfg.channels, cfg.size, cfg.size])
    z7 = torch.randn(7, cfg.latent_dim, generator=torch.Generator().manual_seed(5))
    for z in (z7[:1], z7):  # batch sizes 1 and 7 from the same file
        got, want = session.run(None, {"z": z.numpy()})[0], pytorch_images(g, z)
        assert got.shape == (len(z), cfg.channels, cfg.size, cfg.size) and got.dtype == np.float32
        assert np.abs(got - want).max() < 1e-4
        assert want.std() > 0.05 and np.abs(want).max() <= 1  # pictures, not flat grey
    # Eval mode: each picture depends on its own latent only, as with BatchNorm's running statistics.
    assert np.abs(session.run(None, {"z": z7[:1].numpy()})[0] - session.run(None, {"z": z7.numpy()})[0][:1]).max() < 1e-5

    model = onnx.load(str(done.path))
    assert model.ir_version == onnx.helper.find_min_ir_version_for(list(model.opset_import))
    meta = {p.key: p.value for p in model.metadata_props}
    assert (meta["arch"], int(meta["latent_dim"]), int(meta["image_size"]), int(meta["channels"])) == (cfg.arch, cfg.latent_dim, cfg.size, cfg.channels)
    assert meta["ganforge_version"] == __version__ and json.loads(meta["classes"]) == [] and meta["output_range"] == "[-1, 1]"
    assert int(meta["step"]) == 123 and ModelConfig.from_dict(json.loads(meta["model_config"])) == cfg


def test_conditional_generator_takes_labels(tmp_path):
    cfg = tiny("dcgan", classes=CLASSES)
    g, source = lively_generator(cfg, tmp_path)
    assert g.num_classes == 3
    done = export_generator(source, tmp_path / "c.onnx")
    session = ort.InferenceSession(str(done.path), providers=["CPUExecutionProvider"])
    inputs = {i.name: (i.type, i.shape) for i in session.get_inputs()}
    assert inputs == {"z": ("tensor(float)", ["batch", 8]), "labels": ("tensor(int64)", ["batch"])}
    z = torch.randn(7, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    for n in (1, 7):
        got = session.run(None, {"z": z[:n].numpy(), "labels": labels[:n].numpy()})[0]
        assert np.abs(got - pytorch_images(g, z[:n], labels[:n])).max() < 1e-4
    # The label is obeyed: one latent drawn as each class gives three different pictures.
    same_z = z[:1].repeat(3, 1).numpy()
    per_class = session.run(None, {"z": same_z, "labels": np.arange(3, dtype=np.int64)})[0]
    assert np.abs(per_class[0] - per_class[1]).max() > 0.05 and np.abs(per_class[1] - per_class[2]).max() > 0.05
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == list(CLASSES) and "labels: int64" in meta["inputs"]


def test_pt2_round_trip(tmp_path):
    cfg = tiny("msg", upsample="nearest", classes=CLASSES)
    g, source = lively_generator(cfg, tmp_path)
    done = export_generator(source, tmp_path / "g.pt2")
    assert done.format == "pt2" and done.max_difference < 1e-6 and done.opset is None
    extra = {"ganforge.json": ""}
    loaded = torch.export.load(str(done.path), extra_files=extra).module()
    z, labels = torch.randn(7, 8), torch.tensor([2, 1, 0, 0, 1, 2, 1])
    for n in (1, 7):
        with torch.no_grad():
            assert (loaded(z[:n], labels[:n]) - torch.as_tensor(pytorch_images(g, z[:n], labels[:n]))).abs().max() < 1e-6
    meta = json.loads(extra["ganforge.json"])
    assert meta["arch"] == "msg" and json.loads(meta["classes"]) == list(CLASSES) and meta["latent_dim"] == "8"


def test_cli_from_a_run_folder_reports_the_difference(tmp_path):
    cfg = tiny("dcgan")
    run_dir = tmp_path / "runs" / "00000-digits"
    g, _ = lively_generator(cfg, run_dir, name="generator.safetensors")
    out = tmp_path / "models" / "digits"  # no suffix: the format's is added; the folder is made
    result = run("export", run_dir, "-o", out, "--opset", 18)
    assert result.exit_code == 0, result.output
    line, = result.output.strip().splitlines()
    difference = float(re.search(r"within ([0-9.e+-]+)", line).group(1))
    assert "onnxruntime" in line and "opset 18" in line and "step 123" in line and difference < 1e-4
    model = onnx.load(str(out) + ".onnx")
    assert [o.version for o in model.opset_import if o.domain == ""] == [18]
    assert model.ir_version == 8  # the oldest IR for opset 18, so that older runtimes load it, not the exporter's newest
    z = torch.randn(3, 8)
    session = ort.InferenceSession(str(out) + ".onnx", providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"z": z.numpy()})[0] - pytorch_images(g, z)).max() < 1e-4


@pytest.mark.parametrize("args, fragments", [
    (["-o", "g.pt"], ["g.pt", ".onnx", ".pt2"]),
    (["-o", "g.png"], ["g.png", ".onnx"]),
    (["-o", "g.onnx", "--format", "pt2"], ["g.onnx", "--format", "pt2"]),
    (["-o", "g.pt2", "--opset", "18"], ["--opset", "ONNX"]),
    (["--opset", "17"], ["--opset", "18"]),
    (["--format", "torchscript"], ["--format", "onnx", "pt2"]),
    (["-o", "taken.onnx"], ["taken.onnx", "folder"]),
])
def test_bad_options_are_one_line_before_any_work(args, fragments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken.onnx").mkdir()
    monkeypatch.setattr(export_module, "_onnx_bytes", lambda *a: pytest.fail("exported despite a bad option"))
    cfg = tiny("dcgan")
    _, source = lively_generator(cfg, tmp_path)
    one_line_error(run("export", source, *args), *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors", "taken.onnx"]


def test_bad_sources_are_one_line_and_leave_the_old_file(tmp_path):
    old = tmp_path / "g.onnx"
    old.write_bytes(b"the previous export")
    one_line_error(run("export", tmp_path / "missing", "-o", old), "missing", "no such")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00not a safetensors file")
    one_line_error(run("export", tmp_path / "bad.safetensors", "-o", old), "bad.safetensors")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    one_line_error(run("export", tmp_path / "bad.pt", "-o", old), "bad.pt", "checkpoint")
    assert old.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "bad.safetensors", "g.onnx"]


def test_unwritable_output_is_one_line(tmp_path):
    _, source = lively_generator(tiny("dcgan"), tmp_path)
    (tmp_path / "afile").write_text("a file, not a folder")
    one_line_error(run("export", source, "-o", tmp_path / "afile" / "g.onnx"), "afile")


def test_without_onnx_one_sentence_and_pt2_still_works(tmp_path, monkeypatch):
    _, source = lively_generator(tiny("dcgan"), tmp_path)
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails as if it were not installed
    result = run("export", source, "-o", tmp_path / "g.onnx")
    assert result.exit_code == 2
    assert result.output.strip() == 'Error: ganforge export needs onnx: pip install "ganforge[export]".'
    assert not (tmp_path / "g.onnx").exists()
    assert export_generator(source, tmp_path / "g.pt2").max_difference < 1e-6


def test_without_onnxruntime_onnx_checker_checks(tmp_path, monkeypatch):
    _, source = lively_generator(tiny("mlp"), tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    result = run("export", source, "-o", tmp_path / "g.onnx")
    assert result.exit_code == 0, result.output
    assert "checked with onnx.checker" in result.output and "install onnxruntime" in result.output
    onnx.checker.check_model(onnx.load(str(tmp_path / "g.onnx")), full_check=True)


def test_a_file_that_draws_differently_is_not_written(tmp_path, monkeypatch):
    _, source = lively_generator(tiny("dcgan"), tmp_path)
    monkeypatch.setattr(export_module, "_max_difference", lambda *a: 0.5)
    with pytest.raises(GanforgeError, match="differ from PyTorch's by up to 0.5"):
        export_generator(source, tmp_path / "g.pt2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors"]
