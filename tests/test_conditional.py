"""Class-conditional training: classes from subfolders or a built-in's labels, a generator that
draws the class it is asked for, a discriminator that judges picture and class together, and the
class names carried by every file a run writes."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_photo, one_line_error, run
from ganforge.data import BatchSampler, load_data
from ganforge.errors import GanforgeError
from ganforge.gan.checkpoint import load_generator
from ganforge.gan.config import TrainConfig
from ganforge.gan.families.base import ModelConfig
from ganforge.gan.families.layers import ClassNorm
from ganforge.gan.loop import train
from ganforge.gan.networks import build_discriminator, build_generator, recalibrate_batchnorm
from ganforge.gan.sampling import class_index, generate, latents, sample_images

TINY = dict(data="digits", size=16, g_width=8, d_width=8, batch_size=16, latent_dim=16, collapse_check=False, conditional=True)


def class_folder(root, counts: dict[str, int], loose: int = 0):
    rng = np.random.default_rng(1)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            make_photo(rng, 24, 24).save(root / name / f"{i}.png")
    for i in range(loose):
        make_photo(rng, 24, 24).save(root / f"loose{i}.png")
    return root


def test_subfolders_are_the_classes(tmp_path):
    folder = class_folder(tmp_path / "pets", {"dogs": 9, "cats": 10, "birds": 8})
    (folder / "cats" / "kittens").mkdir()
    make_photo(np.random.default_rng(2), 24, 24).save(folder / "cats" / "kittens" / "k.png")  # deeper: still a cat
    data = load_data(str(folder), 16, conditional=True)
    assert data.classes == ("birds", "cats", "dogs")
    assert torch.bincount(data.labels).tolist() == [8, 11, 9]
    sampler = BatchSampler(data, 8, seed=0, flip=False)
    index = {tuple(img.flatten().tolist()): int(y) for img, y in zip(data.images, data.labels)}
    assert [index[tuple(img.flatten().tolist())] for img in sampler.batch(3)] == sampler.labels(3).tolist()


@pytest.mark.parametrize("counts, loose, fragment", [
    ({"only": 20}, 0, "at least two classes"),
    ({"a": 20, "b": 3}, 0, "'b' has 3"),
    ({"a": 10, "b": 10}, 2, "move them into a class subfolder"),
])
def test_folders_that_cannot_be_classes_are_refused(tmp_path, counts, loose, fragment):
    folder = class_folder(tmp_path / "f", counts, loose)
    with pytest.raises(GanforgeError, match=fragment):
        load_data(str(folder), 16, conditional=True)
    one_line_error(run("train", folder, "--conditional", "--steps", "1", "--run-dir", tmp_path / "r"), fragment)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("arch", ["dcgan", "mlp", "msg", "progressive"])
def test_the_class_reaches_both_networks_and_unconditional_keys_are_unchanged(arch):
    cfg = ModelConfig(arch=arch, size=16, channels=1, latent_dim=8, g_width=8, d_width=8, classes=("a", "b", "c"))
    torch.manual_seed(0)
    G, D = build_generator(cfg).eval(), build_discriminator(cfg).eval()
    for m in G.modules():  # classes as different as training makes them
        if isinstance(m, ClassNorm):
            torch.nn.init.normal_(m.scale.weight, 1.0, 0.5)
            torch.nn.init.normal_(m.shift.weight, 0.0, 0.5)
    z = torch.randn(4, 8)
    a, b = G(z, torch.zeros(4, dtype=torch.long)), G(z, torch.ones(4, dtype=torch.long))
    assert a.shape == (4, 1, 16, 16) and (a - b).abs().mean() > 0.1 * a.abs().mean()
    x = a if arch != "msg" else G(z, torch.zeros(4, dtype=torch.long), all_scales=True)
    assert not torch.allclose(D(x, torch.zeros(4, dtype=torch.long)), D(x, torch.full((4,), 2)))
    with pytest.raises(ValueError, match="needs class labels"):
        G(z)
    plain = ModelConfig(**{**cfg.to_dict(), "classes": ()})
    conditional_keys, plain_keys = set(build_generator(cfg).state_dict()), set(build_generator(plain).state_dict())
    norms = [name for name, m in G.named_modules() if isinstance(m, ClassNorm)]
    assert norms and len(norms) == sum(1 for m in build_generator(plain).modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    assert conditional_keys - plain_keys == {f"{n}.{k}" for n in norms for k in ("scale.weight", "shift.weight", "norm.running_mean",
                                                                                  "norm.running_var", "norm.num_batches_tracked")}
    assert set(build_discriminator(cfg).state_dict()) - set(build_discriminator(plain).state_dict()) == {"project_class.weight"}


def test_a_conditional_run_saves_its_classes_and_samples_them(tmp_path):
    run_dir = train(TrainConfig(**TINY, steps=4, sample_every=4, checkpoint_every=4), tmp_path / "r", sinks=[])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["conditional"] and config["model"]["classes"] == [str(i) for i in range(10)]
    generator, cfg, _ = load_generator(run_dir / "generator.safetensors")  # the metadata alone rebuilds it
    assert cfg.classes == tuple(str(i) for i in range(10)) and generator.num_classes == 10
    # the fixed grid: one row of 8 per class (16 px pictures, 2 px padding)
    assert Image.open(run_dir / "samples" / "step-000004.png").size == (8 * 18 + 2, 10 * 18 + 2)
    sevens = sample_images(run_dir, n=6, class_="7")
    assert torch.equal(sevens, generate(generator, latents(6, cfg.latent_dim, 0), torch.full((6,), 7)))
    assert torch.equal(sample_images(run_dir, n=6, class_=7), sevens)
    assert not torch.equal(sample_images(run_dir, n=6, class_="3"), sevens)
    mixed = sample_images(run_dir, n=20)  # no class: every class in turn
    assert torch.equal(mixed, generate(generator, latents(20, cfg.latent_dim, 0), torch.arange(20) % 10))
    result = run("sample", run_dir, "--class", "7", "-n", "4", "-o", tmp_path / "sevens.png")
    assert result.exit_code == 0 and (tmp_path / "sevens.png").exists()
    one_line_error(run("sample", run_dir, "--class", "eleven", "-o", tmp_path / "x.png"), "'eleven'", "0, 1, 2")


def test_an_unconditional_generator_refuses_a_class(tmp_path):
    run_dir = train(TrainConfig(**{**TINY, "conditional": False}, steps=2), tmp_path / "r", sinks=[])
    one_line_error(run("sample", run_dir, "--class", "3", "-o", tmp_path / "x.png"), "--class needs a class-conditional generator")


def test_class_names_and_indices():
    cfg = ModelConfig(classes=("cat", "dog", "7"))
    assert [class_index(cfg, s) for s in ("cat", "dog", "1", 0, "7")] == [0, 1, 1, 0, 2]
    for bad in ("cow", "3", "-1"):
        with pytest.raises(GanforgeError):
            class_index(cfg, bad)


def test_batchnorm_recalibration_of_a_conditional_generator_draws_every_class():
    cfg = ModelConfig(size=16, channels=1, latent_dim=8, g_width=8, classes=("a", "b", "c"))
    torch.manual_seed(0)
    g = build_generator(cfg)
    for m in g.modules():  # classes far apart, so that the statistics depend on which were drawn
        if isinstance(m, ClassNorm):
            torch.nn.init.normal_(m.shift.weight, 0.0, 2.0)
    fixed = recalibrate_batchnorm(g, 8, seed=3, batches=1, batch_size=9)
    z = torch.randn(9, 8, generator=torch.Generator().manual_seed(3))  # what recalibration draws for seed 3
    norms = [m for m in fixed.modules() if isinstance(m, ClassNorm)]
    with torch.no_grad():
        before = g.project[1](g.project[0](z))  # (9, C, 4, 4): what the first norm sees, before any class enters

        def second_norm_input(labels):
            return g.blocks[0](g.project[3](g.project[2](before, labels))).mean((0, 2, 3))

        balanced, one_class = second_norm_input(torch.arange(9) % 3), second_norm_input(torch.zeros(9, dtype=torch.long))
    assert torch.allclose(norms[0].norm.running_mean, before.mean((0, 2, 3)), atol=1e-5)
    second = norms[1].norm.running_mean
    assert torch.allclose(second, balanced, atol=1e-5) and not torch.allclose(second, one_class, atol=1e-3)


def test_truncation_zero_gives_the_mean_picture_for_every_seed(tmp_path):
    run_dir = train(TrainConfig(**{**TINY, "conditional": False}, steps=2), tmp_path / "r", sinks=[])
    a, b = sample_images(run_dir, n=3, seed=1, truncation=0.0), sample_images(run_dir, n=3, seed=2, truncation=0.0)
    generator, cfg, _ = load_generator(run_dir)
    mean = generate(generator, torch.zeros(1, cfg.latent_dim))
    assert torch.equal(a, b) and torch.allclose(a, mean.expand_as(a))
    half = sample_images(run_dir, n=3, seed=1, truncation=0.5)
    assert torch.allclose(half, generate(generator, latents(3, cfg.latent_dim, 1) * 0.5))
    one_line_error(run("sample", run_dir, "--truncation", "-1", "-o", tmp_path / "x.png"), "--truncation")


def test_conditional_turns_on_the_projection_discriminators_training_unless_told_otherwise():
    from ganforge.gan.config import apply_preset

    cfg = apply_preset(TrainConfig(conditional=True))
    assert cfg.spectral_norm and cfg.loss == "hinge" and cfg.preset_applied
    assert apply_preset(TrainConfig(conditional=True), explicit={"loss"}).loss == "bce"
    assert apply_preset(TrainConfig(conditional=True, loss="hinge", spectral_norm=False), explicit={"spectral_norm"}).spectral_norm is False
    assert apply_preset(TrainConfig()) == TrainConfig()  # unconditional runs are untouched
    small = apply_preset(TrainConfig(conditional=True, preset="small"))
    assert small.spectral_norm and small.augment and small.batch_size == 16


def test_a_pixel_norm_generator_takes_its_class_through_every_norm():
    cfg = ModelConfig(arch="msg", size=16, channels=1, latent_dim=8, g_width=8, d_width=8, g_norm="pixel", upsample="nearest", classes=("a", "b"))
    G = build_generator(cfg).eval()
    norms = [m for m in G.modules() if isinstance(m, ClassNorm)]
    assert len(norms) == 5 and all(not any(isinstance(c, torch.nn.modules.batchnorm._BatchNorm) for c in m.modules()) for m in norms)
    for m in norms:
        torch.nn.init.normal_(m.shift.weight, 0.0, 0.5)
    z = torch.randn(3, 8)
    assert not torch.allclose(G(z, torch.zeros(3, dtype=torch.long)), G(z, torch.ones(3, dtype=torch.long)))


def test_a_conditional_run_resumes_only_with_the_classes_it_learnt(tmp_path):
    from ganforge.gan.loop import resume_training

    folder = class_folder(tmp_path / "pets", {"cats": 8, "dogs": 8})
    cfg = TrainConfig(data=str(folder), conditional=True, size=16, steps=2, batch_size=8, g_width=8, d_width=8, latent_dim=8, collapse_check=False)
    run_dir = train(cfg, tmp_path / "r", sinks=[])
    (folder / "cats").rename(folder / "zebras")  # same pictures, but "cats" would now mean zebras
    one_line_error(run("train", "--resume", run_dir, "--steps", "4"), "learnt the classes cats, dogs", "dogs, zebras")
    (folder / "zebras").rename(folder / "cats")
    class_folder(folder, {"birds": 8})
    with pytest.raises(GanforgeError, match="now birds, cats, dogs"):
        resume_training(run_dir, steps=4, sinks=[])
    import shutil

    shutil.rmtree(folder / "birds")
    assert load_generator(resume_training(run_dir, steps=4, sinks=[]))[2] == 4
