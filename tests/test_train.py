import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from ganforge.gan.checkpoint import load_generator
from ganforge.gan.config import TrainConfig
from ganforge.gan.families.base import ModelConfig
from ganforge.gan.loop import TrainingInterrupted, resume_training, train
from ganforge.gan.networks import build_discriminator, build_generator
from ganforge.gan.rundir import RunFolder
from ganforge.gan.trainer import GANTrainer


def list_checkpoints(run):
    return RunFolder(run).checkpoint_files()

TINY = dict(data="digits", size=16, g_width=8, d_width=8, batch_size=16, latent_dim=16, collapse_check=False)


def tiny(**kw) -> TrainConfig:
    return TrainConfig(**{**TINY, **kw})


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
@pytest.mark.parametrize("size", [16, 32, 64, 128, 256])
def test_model_shapes(arch, size):
    cfg = ModelConfig(arch=arch, size=size, channels=3, latent_dim=8, g_width=4, d_width=4)
    x = build_generator(cfg)(torch.randn(2, 8))
    assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
    assert build_discriminator(cfg)(x).shape == (2,)


def test_dcgan_widths_follow_the_paper():
    # 64 px with ngf = ndf = 64: G 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3
    cfg = ModelConfig(size=64, channels=3, g_width=64, d_width=64)
    g_convs = [m.out_channels for m in build_generator(cfg).modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    d_convs = [m.out_channels for m in build_discriminator(cfg).modules() if isinstance(m, torch.nn.Conv2d)]
    assert g_convs == [256, 128, 64, 3]
    assert d_convs == [64, 128, 256, 512, 1]


def test_generator_step_leaves_discriminator_alone_and_skips_are_counted():
    cfg = tiny(d_skip_below=1e9)  # D's loss is always "too low": every D update is skipped
    model = ModelConfig(size=16, channels=1, latent_dim=16, g_width=8, d_width=8)
    t = GANTrainer(cfg, model, torch.device("cpu"))
    d_before = {k: v.clone() for k, v in t.D.state_dict().items() if "running" not in k and "num_batches" not in k}
    g_before = [p.clone() for p in t.G.parameters()]
    t.step(torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8), 0)
    assert all(torch.equal(v, t.D.state_dict()[k]) for k, v in d_before.items())
    assert any(not torch.equal(a, b) for a, b in zip(g_before, t.G.parameters()))
    assert t.runtime.d_skipped == 1
    assert all(p.requires_grad for p in t.D.parameters())


def test_discriminator_learns_real_from_fake():
    cfg = tiny(lr_g=1e-12, lr_d=2e-3)  # G frozen in practice: D alone should pull ahead
    model = ModelConfig(size=16, channels=1, latent_dim=16, g_width=8, d_width=8)
    t = GANTrainer(cfg, model, torch.device("cpu"))
    real = torch.full((16, 1, 16, 16), 255, dtype=torch.uint8)
    losses = [t.step(real, s).loss_d for s in range(20)]
    assert losses[-1] < losses[0] * 0.5


def test_run_folder(tmp_path):
    run = train(tiny(steps=6, log_every=2, sample_every=3, checkpoint_every=2, keep=2, seed=3), tmp_path / "run", sinks=[])
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["seed"] == 3 and config["train"]["g_width"] == 8 and config["model"]["size"] == 16
    assert {"torch", "torchvision", "python"} <= set(config["versions"])
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert {"step", "loss_d", "loss_g", "d_real", "d_fake", "d_skipped", "images_per_sec", "elapsed_s"} <= set(rows[0])
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-000003.png", "step-000006.png"]
    assert (run / "losses.png").stat().st_size > 1000
    assert [s for s, _ in list_checkpoints(run)] == [4, 6]
    with safe_open(str(run / "generator.safetensors"), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["model_config"])["latent_dim"] == 16 and meta["step"] == "6"
    g, cfg, step = load_generator(run / "generator.safetensors")
    assert step == 6 and cfg.size == 16


def _weights(run: Path) -> dict:
    state = torch.load(list_checkpoints(run)[-1][1], weights_only=True)
    out = {f"{net}.{k}": v for net in ("generator", "discriminator", "generator_ema") for k, v in state.get(net, {}).items()}
    if "ada" in state:
        out["ada.p"] = torch.tensor(state["ada"]["p"])
    return out


@pytest.mark.parametrize("extra", [
    dict(flip=True, label_smoothing=0.1),
    dict(augment=True, augment_p="auto", ema=True, ema_decay=0.9, r1=1.0, spectral_norm=True, loss="hinge"),
    dict(arch="msg", augment=True, r1=1.0, d_blur=True),
    dict(grow=True, ema=True, ema_decay=0.9, size=32, g_norm="pixel"),
    dict(conditional=True, grow=True, size=32, augment=True, ema=True, ema_decay=0.9, r1=1.0),
], ids=["plain", "stabilised", "msg", "grow", "conditional"])
def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path, extra):
    cfg = tiny(steps=9, checkpoint_every=4, log_every=3, **extra)
    full = train(cfg, tmp_path / "full", sinks=[])
    with pytest.raises(TrainingInterrupted) as stopped:
        train(cfg, tmp_path / "cut", sinks=[], stop_when=lambda step: step == 5)
    assert stopped.value.step == 5 and [s for s, _ in list_checkpoints(tmp_path / "cut")] == [0, 4, 5]
    resumed = resume_training(tmp_path / "cut", sinks=[])
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert [json.loads(l)["step"] for l in (resumed / "metrics.jsonl").read_text().splitlines()] == [3, 6, 9]


def test_steps_can_be_raised_on_resume(tmp_path):
    run = train(tiny(steps=3), tmp_path / "r", sinks=[])
    resume_training(run, steps=5, sinks=[])
    assert list_checkpoints(run)[-1][0] == 5
    assert load_generator(run)[2] == 5


def test_sigterm_checkpoints_then_exits(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ganforge", "train", "--size", "16", "--g-width", "8", "--d-width", "8", "--batch-size", "16",
           "--steps", "100000", "--log-every", "1", "--checkpoint-every", "100000", "--run-dir", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ((run / "metrics.jsonl").exists() and len((run / "metrics.jsonl").read_text().splitlines()) >= 3):
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert out.strip().splitlines()[-1] == str(run)
    assert "--resume" in err
    ckpts = list_checkpoints(run)
    assert [s for s, _ in ckpts][0] == 0 and ckpts[-1][0] >= 3
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_leftover_temp_files_and_damaged_checkpoints_are_never_latest(tmp_path):
    from ganforge.gan.checkpoint import latest_checkpoint

    run = train(tiny(steps=4, checkpoint_every=2), tmp_path / "r", sinks=[])
    folder = run / "checkpoints"
    (folder / ".step-000008.pt.abc123.tmp").write_bytes(b"half a checkpoint from a killed process")
    good = (folder / "step-000004.pt").read_bytes()
    (folder / "step-000006.pt").write_bytes(good[: len(good) // 2])  # damaged after the fact
    warnings = []
    state = latest_checkpoint(RunFolder(run), warn=warnings.append)
    assert state["step"] == 4 and len(warnings) == 1 and "step-000006.pt" in warnings[0]


def test_stabilisers_change_training(tmp_path):
    """Each stabiliser option changes what training produces, and the EMA generator is what gets saved."""
    base = tiny(steps=3, seed=1)
    ref = _weights(train(base, tmp_path / "base", sinks=[]))
    for i, extra in enumerate([dict(loss="hinge"), dict(spectral_norm=True), dict(r1=10.0), dict(augment=True), dict(augment=True, augment_p="0.5")]):
        w = _weights(train(tiny(steps=3, seed=1, **extra), tmp_path / f"v{i}", sinks=[]))
        assert not torch.equal(w["generator.project.0.weight"], ref["generator.project.0.weight"]), extra
    run = train(tiny(steps=3, seed=1, ema=True, ema_decay=0.5), tmp_path / "ema", sinks=[])
    w = _weights(run)
    g, _, _ = load_generator(run / "generator.safetensors")
    assert torch.equal(g.state_dict()["project.0.weight"], w["generator_ema.project.0.weight"])
    assert not torch.equal(w["generator_ema.project.0.weight"], w["generator.project.0.weight"])


def test_bad_augment_settings(tmp_path):
    from ganforge.errors import GanforgeError

    with pytest.raises(GanforgeError, match="--augment-policy: unknown augmentation blur"):
        train(tiny(augment=True, augment_policy="color,blur"), tmp_path / "a", sinks=[])
    with pytest.raises(GanforgeError, match="--augment-p"):
        train(tiny(augment=True, augment_p="often"), tmp_path / "b", sinks=[])


def _diverge_on(monkeypatch, calls_that_fail):
    """Make GANTrainer's steps blow up (NaN weights and loss) on the given call numbers."""
    real_step, calls = GANTrainer.step_async, {"n": 0}

    def flaky(self, batch, step, labels=None):
        values, skip = real_step(self, batch, step, labels)
        calls["n"] += 1
        if calls["n"] in calls_that_fail:
            with torch.no_grad():
                for p in self.G.parameters():
                    p.fill_(float("nan"))
            values = values.clone()
            values[1] = float("nan")  # loss_g
        return values, skip

    monkeypatch.setattr(GANTrainer, "step_async", flaky)


def test_divergence_rolls_back_with_lower_learning_rates(tmp_path, monkeypatch):
    _diverge_on(monkeypatch, {6})
    run = train(tiny(steps=8, checkpoint_every=4), tmp_path / "r", sinks=[])
    state = torch.load(list_checkpoints(run)[-1][1], weights_only=True)
    assert state["step"] == 8 and state["rollbacks"] == 1 and state["lr_scale"] == 0.5
    assert [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss_d" in r] == [8]  # rows past step 4 were redone
    assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.5)
    assert state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 0.5)
    assert "rolled back to step 4" in (run / "log.txt").read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert [e["kind"] for e in summary["health_events"]] == ["divergence"] and summary["rollbacks"] == 1


def test_divergence_that_keeps_coming_back_stops_cleanly(tmp_path, monkeypatch):
    from ganforge.errors import GanforgeError

    _diverge_on(monkeypatch, set(range(3, 100)))
    with pytest.raises(GanforgeError, match="diverged"):
        train(tiny(steps=8, checkpoint_every=2), tmp_path / "r", sinks=[])
    assert [s for s, _ in list_checkpoints(tmp_path / "r")] == [0, 2]  # nothing saved was lost
    assert "rollback 3 of 3" in (tmp_path / "r" / "log.txt").read_text()


def test_quality_tracking_and_health_checks(tmp_path):
    run = train(tiny(steps=6, eval_every=3, sample_every=3, collapse_check=True), tmp_path / "r", sinks=[])
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    kid_rows = [r for r in rows if "kid" in r]
    assert [r["step"] for r in kid_rows] == [3, 6] and all(r["kid_std"] >= 0 for r in kid_rows)
    assert [r["step"] for r in rows if "diversity_ratio" in r] == [3, 6]
    best_g, _, best_step = load_generator(run / "best.safetensors")
    assert best_step == min(kid_rows, key=lambda r: r["kid"])["step"]
    assert json.loads((run / "summary.json").read_text())["best_kid"] == min(r["kid"] for r in kid_rows)


def test_auto_balance_acts_through_the_trainer_and_leaves_the_config_alone(tmp_path, monkeypatch):
    """The D monitor decides; the loop has the trainer apply its actions. The skip threshold and the
    cut learning rate live in the trainer's runtime state and checkpoints, and config.json and
    the generator's metadata still hold what the user asked for."""
    from ganforge.gan import health

    monitor = health.DiscriminatorMonitor  # made quick to fire: every 2 steps, whatever the losses
    monkeypatch.setattr(health, "DiscriminatorMonitor", lambda auto_balance: monitor(window=2, loss_d_below=10.0, d_fake_below=1.0, auto_balance=auto_balance))
    run = train(tiny(steps=4, auto_balance=True, lr_d=2e-4), tmp_path / "r", sinks=[])
    state = torch.load(list_checkpoints(run)[-1][1], weights_only=True)
    assert state["d_skip_below"] == 0.3 and state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(5e-5)
    assert json.loads((run / "config.json").read_text())["train"]["d_skip_below"] == 0.0
    with safe_open(str(run / "generator.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["train_config"]) == json.loads((run / "config.json").read_text())["train"]
    kinds = [r["health"]["kind"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "health" in r]
    assert kinds == ["d_winning", "d_winning"] and "discriminator is winning" in (run / "log.txt").read_text()
    t2 = GANTrainer(tiny(), ModelConfig(size=16, channels=1, latent_dim=16, g_width=8, d_width=8), torch.device("cpu"))
    t2.load_state_dict(state)
    assert t2.runtime.d_skip_below == 0.3 and t2.cfg.d_skip_below == 0.0 and t2.opt_d.param_groups[0]["lr"] == pytest.approx(5e-5)


def test_recalibrated_batchnorm_matches_the_weights():
    from ganforge.gan.networks import recalibrate_batchnorm

    cfg = ModelConfig(size=16, channels=1, latent_dim=16, g_width=8, d_width=8)
    g = build_generator(cfg)
    bn = g.project[2]
    bn.running_mean.fill_(5.0)  # statistics that belong to some other weights, as EMA averaging leaves them
    fixed = recalibrate_batchnorm(g, 16, batches=8, batch_size=256)
    assert torch.equal(bn.running_mean, torch.full_like(bn.running_mean, 5.0))  # the original is untouched
    z = torch.randn(512, 16)
    g.train()
    with torch.no_grad():
        batch_stats_output = g(z)
    assert (fixed(z) - batch_stats_output).abs().mean() < 0.05


def test_growing_schedule():
    from ganforge.gan.families.progressive import grow_stage

    # 64 px: stages at 8, 16, 32, 64 px, 100 steps each; each new one fades in over 50 steps
    assert grow_stage(0, 64, 100) == (8, 1.0)
    assert grow_stage(100, 64, 100) == (16, 0.0)
    assert grow_stage(125, 64, 100) == (16, 0.5)
    assert grow_stage(160, 64, 100) == (16, 1.0)
    assert grow_stage(399, 64, 100)[0] == 64 and grow_stage(10_000, 64, 100) == (64, 1.0)


@pytest.mark.parametrize("extra", [dict(arch="msg"), dict(grow=True)], ids=["msg", "grow"])
def test_high_resolution_architectures_train_and_sample(tmp_path, extra):
    run = train(tiny(size=32, steps=6, sample_every=3, **extra), tmp_path / "r", sinks=[])
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["arch"] == {"arch": "msg", "grow": "progressive"}[next(iter(extra))]
    assert config["model"]["upsample"] == config["train"]["upsample"] == "nearest"  # as in both papers; transposed convs left a checkerboard
    g, cfg, _ = load_generator(run / "generator.safetensors")
    with torch.no_grad():
        assert g(torch.randn(2, cfg.latent_dim)).shape == (2, 1, 32, 32)
    from PIL import Image

    assert Image.open(run / "samples" / "step-000003.png").size == Image.open(run / "samples" / "step-000006.png").size


def test_ema_restarts_short_at_every_growing_stage():
    model = ModelConfig(arch="progressive", size=16, channels=1, latent_dim=16, g_width=8, d_width=8)
    t = GANTrainer(tiny(grow=True, ema=True, ema_decay=0.99, grow_stage_steps=100), model, torch.device("cpu"))
    decay_at = lambda trainer, step: trainer.family.ema_decay(step, 0.99)  # noqa: E731
    assert decay_at(t, 0) == pytest.approx(0.1) and decay_at(t, 99) == pytest.approx(100 / 109)
    assert decay_at(t, 100) == pytest.approx(0.1)  # 16 px joins: the average starts over
    assert decay_at(t, 10_000) == 0.99  # the last stage runs on, up to --ema-decay
    flat = GANTrainer(tiny(ema=True, ema_decay=0.99), ModelConfig(size=16, channels=1, latent_dim=16, g_width=8, d_width=8), torch.device("cpu"))
    assert decay_at(flat, 0) == 0.99
    real = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8)
    t.step(real, 0)
    before = [p.detach().clone() for p in t.ema.module.parameters()]
    t.step(real, 1)  # the average moves towards G by 1 - the decay of that step
    for avg, old, new in zip(t.ema.module.parameters(), before, t.G.parameters()):
        torch.testing.assert_close(avg, torch.lerp(old, new.detach(), 1 - decay_at(t, 1)))


def test_upsampling_defaults_by_architecture():
    from ganforge.data import load_data
    from ganforge.gan.run import resolve

    data = load_data("digits", size=16)
    assert resolve(tiny(), data)[1].upsample == "transpose"
    assert resolve(tiny(arch="msg"), data)[1].upsample == "nearest"
    assert resolve(tiny(grow=True, upsample="transpose"), data)[1].upsample == "transpose"  # a choice given wins


def test_blur_is_the_binomial_filter_and_cancels_the_finest_checkerboard():
    from ganforge.gan.families.layers import Blur

    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 1
    k = torch.tensor([1.0, 2.0, 1.0])
    torch.testing.assert_close(Blur()(impulse)[0, 0], torch.nn.functional.pad(torch.outer(k, k) / 16, (1, 1, 1, 1)))
    checker = (torch.arange(8)[:, None] + torch.arange(8)).remainder(2).float().mul(2).sub(1).expand(2, 3, 8, 8)  # +-1, period 2
    torch.testing.assert_close(Blur()(checker), torch.zeros(2, 3, 8, 8))  # what a stride-2 grid would alias


def test_discriminator_blur_is_asked_for_and_adds_no_weights():
    from ganforge.data import load_data
    from ganforge.gan.families.layers import Blur
    from ganforge.gan.run import resolve

    data = load_data("digits", size=16)
    assert not any(resolve(tiny(**kw), data)[1].d_blur for kw in (dict(), dict(arch="msg"), dict(grow=True)))
    assert resolve(tiny(grow=True, d_blur=True), data)[1].d_blur
    for arch in ("dcgan", "msg", "progressive"):
        plain, blurred = (build_discriminator(ModelConfig(arch=arch, size=32, channels=3, d_width=4, d_blur=b)) for b in (False, True))
        strided = [m for m in plain.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
        assert sum(isinstance(m, Blur) for m in blurred.modules()) == len(strided) > 0  # one before each strided conv
        assert sum(p.numel() for p in blurred.parameters()) == sum(p.numel() for p in plain.parameters())


def test_a_run_from_before_the_blur_resumes_without_it(tmp_path):
    run = train(tiny(arch="msg", d_blur=False, steps=2), tmp_path / "r", sinks=[])
    config = json.loads((run / "config.json").read_text())
    del config["train"]["d_blur"], config["model"]["d_blur"]  # as written before the option existed: no blur
    (run / "config.json").write_text(json.dumps(config))
    resume_training(run, steps=3, sinks=[])
    assert list_checkpoints(run)[-1][0] == 3


def test_pixel_norm_gives_every_pixel_unit_rms_and_no_batchnorm():
    from ganforge.gan.families.layers import PixelNorm

    x = torch.randn(3, 8, 5, 5) * torch.rand(3, 1, 5, 5) * 10
    torch.testing.assert_close(PixelNorm()(x).pow(2).mean(1), torch.ones(3, 5, 5))
    for arch in ("dcgan", "msg", "progressive"):
        g = build_generator(ModelConfig(arch=arch, size=32, channels=3, latent_dim=8, g_width=4, g_norm="pixel"))
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())
        z = torch.randn(4, 8)
        torch.testing.assert_close(g.train()(z[:1]), g(z)[:1])  # even in training, a sample does not depend on its batch


def test_grow_needs_the_convolutional_family(tmp_path):
    from ganforge.errors import GanforgeError

    with pytest.raises(GanforgeError, match="--grow"):
        train(tiny(grow=True, arch="mlp"), tmp_path / "r", sinks=[])


def test_preset_small_fills_defaults_but_not_explicit_choices():
    from ganforge.gan.config import apply_preset

    cfg = apply_preset(TrainConfig(preset="small"))
    assert cfg.augment and cfg.ema and cfg.augment_p == "1" and cfg.g_width == cfg.d_width == 32 and cfg.batch_size == 16 and cfg.ema_decay == 0.9975
    assert cfg.lr_d == cfg.lr_g == 2e-4 and cfg.augment_policy == "color,translation"
    assert apply_preset(TrainConfig(preset="small", augment_p="auto")).augment_p == "auto"
    assert apply_preset(TrainConfig(preset="small"), explicit={"g_width"}).g_width is None  # `--g-width` given on the command line


def test_preset_from_the_cli(tmp_path):
    from click.testing import CliRunner

    from ganforge.cli.main import cli

    common = ["--size", "16", "--g-width", "4", "--d-width", "4", "--batch-size", "16", "--steps", "1", "--no-collapse-check"]
    r = CliRunner().invoke(cli, ["train", *common, "--preset", "small", "--run-dir", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "r" / "config.json").read_text())["train"]
    assert saved["preset"] == "small" and saved["augment"] and saved["ema"] and saved["g_width"] == 4  # the given width wins
    r = CliRunner().invoke(cli, ["train", *common, "--arch", "msg", "--g-norm", "pixel", "--d-blur", "--run-dir", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    model = json.loads((tmp_path / "p" / "config.json").read_text())["model"]
    assert model["g_norm"] == "pixel" and model["d_blur"] is True
    r = CliRunner().invoke(cli, ["train", *common, "--grow", "--grow-stage-steps", "1", "--steps", "3", "--log-every", "1", "--run-dir", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "g" / "config.json").read_text())["train"]["grow_stage_steps"] == 1
    assert [json.loads(line)["resolution"] for line in (tmp_path / "g" / "metrics.jsonl").read_text().splitlines()] == [8, 16, 16]  # 16 px runs on
    for bad, message in ((["--grow", "--grow-stage-steps", "0"], "must be at least 1, not 0"), (["--grow-stage-steps", "5"], "needs --grow")):
        r = CliRunner().invoke(cli, ["train", *common, *bad, "--run-dir", str(tmp_path / "bad")])
        assert r.exit_code == 2 and f"--grow-stage-steps {message}" in r.output and not (tmp_path / "bad").exists()
    r = CliRunner().invoke(cli, ["train", *common, "--g-norm", "layer", "--run-dir", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "'layer' is not one of 'batch', 'pixel'" in r.output and not (tmp_path / "bad").exists()


def test_tensorboard_events_hold_the_losses_and_the_sample_grid(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(tiny(steps=4, log_every=1, sample_every=2, tensorboard=True), tmp_path / "run", sinks=[])
    assert resume_training(run, steps=6, sinks=[]) == run  # a second events file, from step 4 on
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert {"loss/D", "loss/G", "D_output/real", "D_output/generated", "speed/images_per_sec"} <= set(events.Tags()["scalars"])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "loss_d" in line]
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("loss/D")] == [(r["step"], round(r["loss_d"], 4)) for r in rows]
    grids = events.Images("samples")
    assert [g.step for g in grids] == [2, 4, 6] and grids[0].width > 0 and grids[0].height > 0
    assert len(RunFolder(run).tensorboard_files()) == 2


def test_reading_the_statistics_only_at_logging_steps_trains_the_same_weights(tmp_path, monkeypatch):
    """On a GPU the loop reads a step's statistics only at steps that log, sample or checkpoint (so
    the GPU never waits for Python); forced here on the CPU, the run ends with the same weights and
    the same metrics as one that reads them every step."""
    from ganforge.gan.loop import TrainingLoop

    cfg = tiny(steps=7, log_every=3, sample_every=5, checkpoint_every=4)
    every = train(cfg, tmp_path / "every", sinks=[])
    set_up = TrainingLoop._set_up
    read_steps = []

    def deferred(self):
        set_up(self)
        self.settle_every_step = False
        settle = self._settle
        self._settle = lambda: read_steps.append(self.step) or settle()

    monkeypatch.setattr(TrainingLoop, "_set_up", deferred)
    steps_done = []
    late = train(cfg, tmp_path / "late", sinks=[lambda e: steps_done.append(e.step) if type(e).__name__ == "StepDone" else None])
    assert read_steps == [3, 4, 5, 6, 7] and steps_done == [1, 2, 3, 4, 5, 6, 7]
    a, b = (torch.load(RunFolder(r).checkpoint(7), weights_only=True) for r in (every, late))
    assert all(torch.equal(a["generator"][k], b["generator"][k]) for k in a["generator"])
    rows = [[{k: v for k, v in r.items() if k not in ("images_per_sec", "elapsed_s")} for r in RunFolder(run).read_metrics()] for run in (every, late)]
    assert rows[0] == rows[1]
