"""Evaluation metrics, health checks and the evaluate / neighbors / report commands.

Feature extraction dominates the cost, so the statistics tests share one small set of digit
features (lite0 at 64 px rather than the CLI's 128) computed once per module.
"""

import json
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganforge.data import load_data
from ganforge.errors import GanforgeError
from ganforge.gan import health
from ganforge.gan.config import TrainConfig
from ganforge.gan.families.base import ModelConfig
from ganforge.gan.loop import train
from ganforge.gan.networks import build_generator
from ganforge.gan.sampling import generate
from ganforge.gan.trainer import GANTrainer
from ganforge.images import to_float
from ganforge.metrics import classes, features, stats

from conftest import make_photo, one_line_error, run




@pytest.fixture(autouse=True)
def no_home_cache(tmp_path, monkeypatch):
    """Class-coverage classifiers are cached under the data root: keep them out of ~/.cache."""
    monkeypatch.setattr("ganforge.data.DEFAULT_DATA_ROOT", tmp_path / "cache")


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", 16)


@pytest.fixture(scope="module")
def extractor():
    return features.build_extractor("lite0", device="cpu", lite0_size=64)


@pytest.fixture(scope="module")
def feats(digits, extractor):
    """Features of two disjoint random halves of the digits, of noise, and of one digit repeated."""
    perm = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    a, b = digits.images[perm[:200]], digits.images[perm[200:400]]
    noise = torch.randint(0, 256, (200, 1, 16, 16), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    return {"a": extractor(a), "b": extractor(b), "noise": extractor(noise), "repeat": extractor(a[:1].repeat(200, 1, 1, 1))}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    return train(TrainConfig(size=16, g_width=8, d_width=8, batch_size=16, latent_dim=16, steps=4), run_dir, sinks=[])


class Collapsed(nn.Module):
    """A generator forced to collapse: every latent vector gives the first one's image."""

    def __init__(self, g):
        super().__init__()
        self.g = g

    def forward(self, z):
        return self.g(z[:1].expand(len(z), -1))


# ---- statistics ---------------------------------------------------------------------------------


def test_kid_of_two_halves_is_zero_within_noise_and_far_from_noise_or_one_image(feats):
    same, same_std = stats.kid(feats["a"], feats["b"], subsets=50)
    assert abs(same) < 3 * same_std + 1e-3
    for other in ("noise", "repeat"):
        far, far_std = stats.kid(feats[other], feats["a"], subsets=50)
        assert far - 3 * far_std > 20 * (abs(same) + 3 * same_std), other
        assert stats.fid(feats[other], feats["a"]) > 5 * stats.fid(feats["b"], feats["a"])
    p, r = stats.precision_recall(feats["b"], feats["a"])
    assert p > 0.6 and r > 0.6
    assert stats.precision_recall(feats["noise"], feats["a"]) == (0.0, 0.0)
    # one image repeated is realistic (precision) but covers nothing (recall, coverage)
    p, r = stats.precision_recall(feats["repeat"], feats["a"])
    d, c = stats.density_coverage(feats["repeat"], feats["a"])
    assert p == 1.0 and r < 0.05 and c < 0.05
    d, c = stats.density_coverage(feats["b"], feats["a"])
    assert 0.6 < d < 1.5 and c > 0.7


def test_statistics_match_hand_computation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 4, generator=g, dtype=torch.float64)
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    # same covariance, means apart by `shift`: FID is |shift|^2
    assert stats.fid(x + shift, x) == pytest.approx(float(shift @ shift), rel=1e-6)
    assert stats.fid(x, x) == pytest.approx(0.0, abs=1e-6)
    # density and coverage on a line: real at 0..4 (k=1 radius 1), fake at 0.5 and 10
    real = torch.arange(5.0)[:, None]
    fake = torch.tensor([[0.5], [10.0]])
    d, c = stats.density_coverage(fake, real, k=1)
    assert d == pytest.approx(2 / 2)  # 0.5 lies inside the balls of 0 and 1: 2 hits over k*M = 2
    assert c == pytest.approx(2 / 5)


def test_bad_feature_network_and_too_few_images(feats):
    with pytest.raises(GanforgeError, match="unknown feature network"):
        features.build_extractor("resnet")
    with pytest.raises(GanforgeError, match="at least"):
        stats.precision_recall(feats["a"][:3], feats["b"])


def test_inception_path_with_random_weights_and_a_local_file(tmp_path):
    images = torch.randint(0, 256, (2, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ex = features.build_extractor("inception", device="cpu", pretrained=False)
    f = ex(images)
    assert f.shape == (2, 2048) and torch.isfinite(f).all()
    from safetensors.torch import save_file

    net = features._inception_network(None, pretrained=False)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "inception.safetensors")
    from_file = features.build_extractor("inception", device="cpu", inception_weights=tmp_path / "inception.safetensors")
    assert torch.allclose(from_file(images), features.FeatureExtractor("x", 2048, lambda b: net(b)[0], torch.device("cpu"))(images))
    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(GanforgeError, match="Inception"):
        features.build_extractor("inception", inception_weights=tmp_path / "other.safetensors")


# ---- class coverage -----------------------------------------------------------------------------


def test_class_coverage_on_real_digits_shows_all_ten_classes(digits, tmp_path):
    perm = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))[:400]
    cc = classes.class_coverage(digits.images[perm], "digits", digits.labels, cache_dir=tmp_path)
    assert cc.classes_present == 10 and sum(cc.histogram) == 400
    assert cc.kl < 0.05 and cc.classifier_accuracy > 0.9
    assert list(tmp_path.glob("digits-*.safetensors"))  # cached for next time
    one = classes.class_coverage(digits.images[:1].repeat(50, 1, 1, 1), "digits", digits.labels, cache_dir=tmp_path)
    assert one.classes_present == 1 and one.kl > 2.0  # ln(10) for one class of ten
    with pytest.raises(GanforgeError, match="labelled"):
        classes.class_coverage(digits.images[:5], "cifar10", digits.labels)


# ---- training-loop hooks ------------------------------------------------------------------------


def test_collapse_detector_fires_on_a_collapsed_generator_and_not_on_data(digits, extractor):
    detector = health.CollapseDetector(digits.images, extractor, n=64, warmup=1000, seed=0)
    torch.manual_seed(0)
    g = build_generator(ModelConfig(size=16, channels=1, latent_dim=16, g_width=8))
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    collapsed = generate(Collapsed(g), z)
    early = detector.check(10, collapsed)
    assert early.collapsed and early.message is None  # before warm-up, alike samples are normal
    real = to_float(digits.images[-64:])
    check = detector.check(100, real)
    assert not check.collapsed and check.message is None and 0.8 < check.ratio < 1.25
    check = detector.check(200, collapsed)
    assert check.collapsed and check.ratio < 0.05 and "step 200" in check.message
    assert detector.check(300, collapsed).message is None  # warned once per drop
    assert not detector.check(400, real).collapsed
    assert detector.check(500, collapsed).message
    late = health.CollapseDetector(digits.images, extractor, n=64, warmup=1000, seed=0)
    assert late.check(1000, collapsed).message  # never diverse, past warm-up: warn


def test_collapse_detector_compares_growing_samples_with_data_as_coarse(digits, extractor):
    detector = health.CollapseDetector(digits.images, extractor, n=64, warmup=0, seed=0)
    real = to_float(digits.images[-64:])
    coarse = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(real, 4), scale_factor=4, mode="nearest")  # a 4-px stage, shown at 16 px
    as_is, at_stage = detector.check(10, coarse), detector.check(10, coarse, resolution=4)
    assert at_stage.ratio > as_is.ratio and 0.8 < at_stage.ratio < 1.25 and not at_stage.collapsed


def test_kid_tracker_is_repeatable_and_restores_train_mode(digits, extractor):
    tracker = health.KIDTracker(digits.images, extractor, n=64, seed=0)
    torch.manual_seed(0)
    g = build_generator(ModelConfig(size=16, channels=1, latent_dim=16, g_width=8))
    g.train()
    first = tracker(g, 16)
    assert first == tracker(g, 16) and g.training  # same latents each time; mode restored
    assert set(first) == {"kid", "kid_std"} and first["kid"] > 0


def test_discriminator_winning_monitor_on_a_synthetic_series():
    monitor = health.DiscriminatorMonitor(window=100)
    rng = np.random.default_rng(0)
    events = []
    series = [(1.2, 0.4)] * 300 + [(0.01, 0.004)] * 60 + [(1.0, 0.4)] * 100 + [(0.01, 0.004)] * 250
    for step, (loss_d, d_fake) in enumerate(series, 1):
        e = monitor.update(step, loss_d + rng.uniform(0, 0.01), d_fake)
        if e:
            events.append(e)
    # the 60-step dip is too short; the sustained one fires once per window
    assert [e.step for e in events] == [550, 650] and all(e.kind == "d_winning" and not e.actions for e in events)
    assert "--auto-balance" in events[0].message


def test_auto_balance_actions_apply_to_the_trainer():
    cfg = TrainConfig(size=16, g_width=8, d_width=8, latent_dim=16, lr_d=2e-4)
    trainer = GANTrainer(cfg, ModelConfig(size=16, channels=1, latent_dim=16, g_width=8, d_width=8), torch.device("cpu"))
    monitor = health.DiscriminatorMonitor(window=10, auto_balance=True, min_lr_factor=0.25)
    events = [e for s in range(1, 41) if (e := monitor.update(s, 0.0, 0.0))]
    assert [e.step for e in events] == [10, 20, 30, 40]
    for e in events:
        for action in e.actions:
            trainer.apply(action)
    assert "Auto-balance" in events[0].message and "learning rate" in events[0].message
    # lr halves twice, then stops at the floor (a quarter); skipping is switched on
    assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(2e-4 / 4)
    assert trainer.runtime.d_skip_below == 0.3 and trainer.cfg.d_skip_below == 0.0
    assert json.loads(json.dumps(events[0].to_dict()))["actions"][0]["kind"] == "skip_d_below"


def test_a_sink_sees_every_event_of_a_run_in_order(tmp_path):
    from ganforge.gan import events

    seen = []
    run_dir = train(TrainConfig(size=16, g_width=8, d_width=8, batch_size=16, latent_dim=16, steps=4, log_every=2, sample_every=2,
                                checkpoint_every=2, eval_every=4), tmp_path / "r", sinks=[seen.append])
    kinds = [type(e).__name__ for e in seen]
    assert kinds[0] == "Started" and seen[0].step == 0 and seen[0].total == 4 and kinds[-1] == "Done"
    assert [e.step for e in seen if isinstance(e, events.StepDone)] == [1, 2, 3, 4]
    assert all(isinstance(e.trainer, GANTrainer) for e in seen if isinstance(e, events.StepDone))
    assert [e.step for e in seen if isinstance(e, events.CheckpointSaved)] == [0, 2, 4]
    assert [e.step for e in seen if isinstance(e, events.SampleGrid)] == [2, 4] and seen[kinds.index("SampleGrid")].images.shape == (64, 1, 16, 16)
    rows = [e.row for e in seen if isinstance(e, events.MetricsRow)]
    assert rows == [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]  # the run folder got the same rows
    assert any("kid" in r for r in rows) and any("diversity_ratio" in r for r in rows)
    saved = [e.path.name for e in seen if isinstance(e, events.GeneratorSaved)]
    assert saved[-1] == "generator.safetensors" and "best.safetensors" in saved
    assert seen[-1].stopped_by is None and seen[-1].summary["step"] == 4 and seen[-1].message.startswith("Done: 4 steps")
    assert (run_dir / "log.txt").read_text().splitlines()[-1].endswith(seen[-1].message) and (run_dir / "summary.json").is_file()


def test_is_diverged():
    assert not health.is_diverged(0.7, 1.3)
    assert health.is_diverged(float("nan"), 1.0) and health.is_diverged(0.5, float("inf"))


# ---- commands -----------------------------------------------------------------------------------


def _folder(path, seed, count=20):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        make_photo(rng, 24, 24).save(path / f"{i}.png")
    return path


def test_evaluate_two_image_folders_as_json(tmp_path):
    a, b = _folder(tmp_path / "a", 0), _folder(tmp_path / "b", 1)
    r = run("evaluate", a, "--data", b, "-n", 20, "--size", 16, "--json")
    assert r.exit_code == 0, r.output
    scores = json.loads(r.output)
    assert scores["source_kind"] == "folder" and scores["n_generated"] == scores["n_real"] == 20 and scores["size"] == 16
    for key in ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage"):
        assert math.isfinite(scores[key]), key
    assert "class_coverage" not in scores
    same = json.loads(run("evaluate", a, "--data", a, "-n", 20, "--size", 16, "--json").output)
    assert same["fid"] == pytest.approx(0, abs=1e-2) and same["precision"] == same["recall"] == 1.0


def test_evaluate_a_trained_run_on_digits(trained):
    r = run("evaluate", trained, "--data", "digits", "-n", 30)
    assert r.exit_code == 0, r.output
    assert re.search(r"FID\s+\d", r.output) and "KID" in r.output and "classes" in r.output and "of 10 present" in r.output
    r = run("evaluate", trained / "generator.safetensors", "--data", "digits", "-n", 30, "--json")
    scores = json.loads(r.output)
    assert scores["step"] == 4 and scores["size"] == 16 and sum(scores["class_coverage"]["histogram"]) == 30


def test_evaluate_bad_inputs_exit_2_with_one_line(tmp_path, trained):
    one_line_error(run("evaluate", tmp_path / "nothing", "--data", "digits"), "no such")
    (tmp_path / "empty").mkdir()
    one_line_error(run("evaluate", tmp_path / "empty", "--data", "digits"), "no image files")
    one_line_error(run("evaluate", trained, "--data", "digits", "--size", 48), "power of two")
    one_line_error(run("evaluate", trained, "--data", tmp_path / "nothing"), "no such folder")
    (tmp_path / "w.pt").write_bytes(b"not weights")
    one_line_error(run("evaluate", trained, "--data", "digits", "--features", "inception", "--inception-weights", tmp_path / "w.pt"), "w.pt")
    assert run("evaluate", trained, "--data", "digits", "--features", "vgg").exit_code == 2
    assert run("evaluate", trained, "--data", "digits", "-n", 3).exit_code == 2


def test_neighbors_grid(trained, tmp_path):
    r = run("neighbors", trained, "--data", "digits", "-n", 2, "-k", 3, "--features", "pixels", "-o", tmp_path / "nn.png")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "nn.png").size == (4 * 18 + 2, 2 * 18 + 2)  # k+1 columns, n rows of 16 px
    one_line_error(run("neighbors", trained, "--data", "digits", "-k", 20, "--max-real", 10, "--features", "pixels"), "-k 20")


def test_report_is_self_contained(trained, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    with open(run_dir / "log.txt", "a") as f:
        f.write("2026-01-01 00:00:00 Warning: Skipped 1 unreadable file(s): x.jpg.\n")  # not a health event
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "health": {"step": 3, "kind": "d_winning", "message": "the discriminator is winning at step 3", "actions": []}}) + "\n")
        f.write(json.dumps({"step": 4, "kid": 0.5, "kid_std": 0.1}) + "\n" + json.dumps({"step": 4, "diversity_ratio": 0.9}) + "\n")
        f.write('{"step": 5, "loss_d"\n')  # a cut-off line too
    r = run("report", run_dir)
    assert r.exit_code == 0, r.output
    page = (run_dir / "report.html").read_text()
    assert page.count("the discriminator is winning at step 3") == 1 and "Skipped" not in page and "Done:" not in page
    assert "lr_g" in page and "step 4" in page
    summary = dict(re.findall(r"<tr><th>([^<]*)</th><td>([^<]*)</td></tr>", page))
    assert summary["kimg"] == "0.064" and summary["training time (s)"] != "?" and summary["steps done"] == "4"
    srcs = re.findall(r"src='([^']*)'", page)
    assert len(srcs) >= 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"https?://|<script|<link", page)
    one_line_error(run("report", tmp_path), "not a ganforge run folder")
    one_line_error(run("report", tmp_path / "nothing"), "no such run folder")
