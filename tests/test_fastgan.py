"""The fastgan family: skip-layer excitation, the discriminator's reconstruction of real pictures,
and `--arch fastgan` through training, resume, sampling and export."""

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import cli
from ganforge.errors import GanforgeError
from ganforge.gan.config import TrainConfig, apply_preset
from ganforge.gan.families.base import ModelConfig
from ganforge.gan.families.fastgan import Excite, FastGANDiscriminator, Noise
from ganforge.gan.loop import TrainingInterrupted, resume_training, train
from ganforge.gan.networks import build_discriminator, build_generator, recalibrate_batchnorm
from ganforge.gan.rundir import RunFolder
from ganforge.gan.trainer import GANTrainer

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(size=64, channels=3, **kw) -> ModelConfig:
    return ModelConfig(**{"arch": "fastgan", "size": size, "channels": channels, "latent_dim": 8, "g_width": 2, "d_width": 2,
                          "upsample": "nearest", **kw})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """24 pictures of one kind: a bright disc on a dark ground, at random places."""
    root = tmp_path_factory.mktemp("discs")
    rng = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(80), torch.arange(80), indexing="ij")
    for i in range(24):
        cy, cx = (torch.rand(2, generator=rng) * 40 + 20).tolist()
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < 15**2).float()
        rgb = torch.stack([disc * 220, disc * 120 + 20, 60 - disc * 40], -1).byte().numpy()
        Image.fromarray(rgb).save(root / f"{i:02d}.png")
    return root


@pytest.mark.parametrize("size,channels", [(64, 3), (128, 1), (512, 4)])
def test_shapes_at_each_size(size, channels):
    cfg = tiny(size, channels, g_width=1 if size == 512 else 2, d_width=1 if size == 512 else 2)
    G, D = build_generator(cfg), build_discriminator(cfg)
    x = G(torch.randn(2, 8))
    assert x.shape == (2, channels, size, size) and x.abs().max() <= 1
    logits, loss = D(x, reconstruct=True)
    assert logits.shape == (2,) and loss.ndim == 0 and loss > 0
    assert D.rebuild == min(size // 2, 128)
    # every resolution from 64 up is gated by the one 16 times smaller
    assert sorted(int(r) for r in G.excite) == [r for r in (64, 128, 256, 512) if r <= size]


def test_excitation_gates_channels_by_the_low_resolution_features():
    torch.manual_seed(0)
    excite = Excite(4, 6)
    high = torch.randn(2, 6, 16, 16)
    # With no signal from below, both bias-free convolutions give 0 and every gate is sigmoid(0) = 1/2.
    assert torch.allclose(excite(high, torch.zeros(2, 4, 4, 4)), high / 2)
    gated = excite(high, torch.randn(2, 4, 4, 4))
    ratio = gated / high  # one gate per sample and channel, the same at every pixel, in (0, 1)
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), atol=1e-5)
    assert ratio.min() > 0 and ratio.max() < 1 and not torch.allclose(ratio, torch.full_like(ratio, 0.5))


class Black(torch.nn.Module):
    """A decoder that draws black 64 px pictures."""

    def forward(self, f):
        return torch.zeros(f.shape[0], 3, 64, 64)


@pytest.mark.parametrize("quadrant", range(4))
def test_reconstruction_targets_the_picture_and_the_quadrant_of_its_crop(quadrant):
    D = FastGANDiscriminator(tiny(128))
    D.quadrant = quadrant
    x = torch.zeros(1, 3, 128, 128)
    for q, value in enumerate((0.1, 0.2, 0.3, 0.4)):  # each quarter of the picture its own value
        qy, qx = divmod(q, 2)
        x[..., qy * 64:(qy + 1) * 64, qx * 64:(qx + 1) * 64] = value
    D.rebuild_all = D.rebuild_part = Black()
    loss = D.reconstruction_loss(x, torch.zeros(1, 8, 8, 8), torch.zeros(1, 16, 16, 16))
    assert loss.item() == pytest.approx(0.25 + (quadrant + 1) / 10)  # mean of the whole picture + the quadrant's value


def test_discriminator_learns_to_rebuild_a_batch():
    torch.manual_seed(0)
    D = build_discriminator(tiny(64, g_width=4, d_width=4))
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    x = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, 8), scale_factor=8)  # blocks the decoders can draw
    opt = torch.optim.Adam(D.parameters(), lr=2e-3)
    losses = []
    for step in range(60):
        D.quadrant = step % 4
        _, loss = D(x, reconstruct=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_only_the_discriminator_step_trains_the_decoders():
    cfg = apply_preset(TrainConfig(data="x", arch="fastgan", size=64, batch_size=4, latent_dim=8, collapse_check=False))
    t = GANTrainer(cfg, tiny(64), torch.device("cpu"))
    before = [p.clone() for p in t.D.rebuild_part.parameters()]
    t.step(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8), 0)
    assert any(not torch.equal(a, b) for a, b in zip(before, t.D.rebuild_part.parameters()))
    assert all(p.requires_grad for p in t.D.parameters())


def test_noise_injection_starts_silent_learns_its_weight_and_is_fixed_when_sampling():
    torch.manual_seed(0)
    plain = build_generator(tiny(64))
    torch.manual_seed(0)
    noisy = build_generator(tiny(64, g_noise=True))
    z = torch.randn(4, 8)
    # the noise layers take nothing from the global RNG when built, and their weights start at 0
    assert torch.equal(plain(z), noisy(z))
    noises = [m for m in noisy.modules() if isinstance(m, Noise)]
    assert len(noises) == 4  # both convolutions of the 8 and 32 px blocks, the two-convolution ones below 64 px
    cfg = apply_preset(TrainConfig(data="x", arch="fastgan", size=64, batch_size=4, latent_dim=8, g_noise=True, collapse_check=False))
    t = GANTrainer(cfg, tiny(64, g_noise=True), torch.device("cpu"))
    for step in range(2):
        t.step(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8), step)
    weights = [m.weight.item() for m in t.G.modules() if isinstance(m, Noise)]
    assert all(w != 0 for w in weights), weights
    t.G.train()
    assert not torch.equal(t.G(z), t.G(z))  # fresh noise in training
    t.G.eval()
    assert torch.equal(t.G(z), t.G(z))  # one fixed draw when sampling
    assert not torch.equal(recalibrate_batchnorm(t.G, 8)(z), plain.eval()(z))


def test_arch_defaults_and_explicit_options():
    cfg = apply_preset(TrainConfig(data="x", arch="fastgan"))
    assert (cfg.loss, cfg.augment, cfg.ema, cfg.spectral_norm, cfg.lr_d, cfg.batch_size) == ("hinge", True, True, False, 4e-4, 16)
    assert apply_preset(TrainConfig(data="x", arch="fastgan", loss="bce"), explicit={"loss"}).loss == "bce"
    assert apply_preset(TrainConfig(data="x")).loss == "bce"  # other families keep the plain defaults


@pytest.mark.parametrize("kw,message", [
    (dict(arch="fastgan", size=32), "--arch fastgan trains at 64 to 512 px"),
    (dict(size=512), "--size 512 needs --arch fastgan"),
    (dict(arch="fastgan", grow=True), "--grow builds its own convolutional networks"),
    (dict(g_noise=True), "--g-noise is part of the fastgan family"),
])
def test_refusals(kw, message):
    with pytest.raises(GanforgeError, match=message):
        TrainConfig(data="x", **kw).validate()


def _weights(run):
    state = torch.load(RunFolder(run).checkpoint_files()[-1][1], weights_only=True)
    return {f"{net}.{k}": v for net in ("generator", "discriminator", "generator_ema") for k, v in state[net].items()}


@pytest.mark.parametrize("noise", [False, True], ids=["plain", "g-noise"])
def test_train_resume_sample_and_evaluate_from_the_cli(folder, tmp_path, noise):
    common = ["train", str(folder), "--arch", "fastgan", "--g-width", "2", "--d-width", "2", "--batch-size", "8", "--latent-dim", "8",
              "--steps", "6", "--checkpoint-every", "3", "--sample-every", "3", "--no-collapse-check", *(["--g-noise"] if noise else [])]
    full = tmp_path / "full"
    r = CliRunner().invoke(cli, [*common, "--run-dir", str(full)])
    assert r.exit_code == 0, r.output
    config = json.loads((full / "config.json").read_text())
    assert config["model"]["arch"] == "fastgan" and config["model"]["size"] == 64 and config["train"]["loss"] == "hinge"

    cfg = TrainConfig(data=str(folder), arch="fastgan", g_width=2, d_width=2, batch_size=8, latent_dim=8, steps=6, checkpoint_every=3,
                      sample_every=3, collapse_check=False, g_noise=noise)
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "cut", sinks=[], stop_when=lambda step: step == 4)
    resumed = resume_training(tmp_path / "cut", sinks=[])
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"

    out = tmp_path / "samples"
    r = CliRunner().invoke(cli, ["sample", str(full), "-n", "3", "--out-dir", str(out)])
    assert r.exit_code == 0, r.output
    assert [Image.open(p).size for p in sorted(out.glob("*.png"))] == [(64, 64)] * 3
    again = tmp_path / "again"
    assert CliRunner().invoke(cli, ["sample", str(full), "-n", "3", "--out-dir", str(again)]).exit_code == 0
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(sorted(out.glob("*.png")), sorted(again.glob("*.png"))))
    r = CliRunner().invoke(cli, ["evaluate", str(full), "--data", str(folder), "-n", "12", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["kid"] is not None


def test_conditional_fastgan_draws_the_class_it_is_asked_for():
    torch.manual_seed(0)
    cfg = tiny(64, classes=("a", "b"))
    G, D = build_generator(cfg), build_discriminator(cfg)
    with torch.no_grad():
        for m in G.modules():  # class scales far apart, so that the classes draw visibly different pictures
            if hasattr(m, "scale"):
                m.scale.weight.normal_(1, 0.5)
    z = torch.randn(2, 8)
    a, b = G(z, torch.tensor([0, 0])), G(z, torch.tensor([1, 1]))
    assert not torch.allclose(a, b, atol=1e-3)
    assert not torch.allclose(D(a, torch.tensor([0, 0])), D(a, torch.tensor([1, 1])))
