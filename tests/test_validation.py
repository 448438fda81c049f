"""Settings are checked by the library, before anything is written, with one sentence that names the
setting and what it accepts; every command turns a usage mistake into one `Error:` line."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

import pytest

from ganforge.errors import GanforgeError
from ganforge.gan.config import TrainConfig
from ganforge.gan.loop import resume_training, train
from ganforge.gan.rundir import create_run_folder

from conftest import one_line_error, run

TINY = dict(size=16, g_width=4, d_width=4, batch_size=16, latent_dim=8, steps=2, collapse_check=False)


@pytest.mark.parametrize("settings,message", [
    (dict(arch="resnet"), "--arch must be one of dcgan, mlp, msg, fastgan, not 'resnet'"),
    (dict(loss="wgan"), "--loss must be one of bce, hinge, not 'wgan'"),
    (dict(g_norm="layer"), "--g-norm must be one of batch, pixel, not 'layer'"),
    (dict(upsample="bilinear"), "--upsample must be one of transpose, nearest"),
    (dict(device="tpu"), "--device must be one of auto, cpu, cuda, mps or cuda:N, not 'tpu'"),
    (dict(channels=2), "--channels must be one of 1, 3, not 2"),
    (dict(preset="huge"), "--preset must be one of small, not 'huge'"),
    (dict(size=48), "--size must be a power of two from 16 to 256 (512 with --arch fastgan), not 48"),
    (dict(steps=0), "--steps must be at least 1, not 0"),
    (dict(g_width=0), "--g-width must be at least 1, not 0"),
    (dict(d_width=-8), "--d-width must be at least 1, not -8"),
    (dict(lr_d=float("inf")), "--lr-d must be a finite number"),
    (dict(lr_g=0.0), "--lr-g must be greater than 0"),
    (dict(beta1=2.0), "--beta1 must be less than 1, not 2"),
    (dict(label_smoothing=1.0), "--label-smoothing must be less than 1"),
    (dict(ema_decay=1.0), "--ema-decay must be less than 1"),
    (dict(r1=-1.0), "--r1 must be at least 0"),
    (dict(steps="10"), "--steps must be a whole number, not '10'"),
    (dict(batch_size=2.5), "--batch-size must be a whole number, not 2.5"),
    (dict(flip="yes"), "--flip is on or off"),
    (dict(augment=True, augment_p="often"), "--augment-p must be a probability from 0 to 1 or 'auto', not 'often'"),
    (dict(augment_policy="color,blur"), "--augment-policy: unknown augmentation blur; choose from color, translation, cutout"),
    (dict(grow=True, arch="mlp"), "--grow builds its own convolutional networks"),
    (dict(grow_stage_steps=5), "--grow-stage-steps needs --grow"),
    (dict(grow=True, grow_stage_steps=0), "--grow-stage-steps must be at least 1, not 0"),
    (dict(device="cuda"), "--device cuda was asked for"),
    (dict(device="cuda:1"), "--device cuda:1 was asked for"),
])
def test_the_python_api_refuses_what_the_cli_refuses_before_writing(settings, message, tmp_path, monkeypatch):
    if settings.get("device", "").startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GanforgeError) as err:
        train(TrainConfig(**{**TINY, **settings}), sinks=[])
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GanforgeError):
        train(TrainConfig(**{**TINY, **settings}), tmp_path / "mine", sinks=[])
    assert list(tmp_path.iterdir()) == []  # no runs/ folder, no --run-dir folder


def test_resume_checks_its_changes_too(tmp_path):
    run_dir = train(TrainConfig(**TINY), tmp_path / "r", sinks=[])
    with pytest.raises(GanforgeError, match="--steps must be at least 1, not 0"):
        resume_training(run_dir, steps=0, sinks=[])
    with pytest.raises(GanforgeError, match="--device must be one of"):
        resume_training(run_dir, steps=3, device="gpu", sinks=[])
    with pytest.raises(GanforgeError, match="already reached step 2"):
        resume_training(run_dir, steps=2, sinks=[])


def test_other_library_functions_check_their_arguments(tmp_path):
    from ganforge.scoring import evaluate, nearest_neighbors
    from ganforge.gan.sampling import sample_images

    with pytest.raises(GanforgeError, match="--num must be at least 1, not 0"):
        sample_images(tmp_path, n=0)
    with pytest.raises(GanforgeError, match="--features must be one of lite0, inception, not 'vgg'"):
        evaluate(tmp_path, "digits", features="vgg")
    with pytest.raises(GanforgeError, match="--k must be at least 1, not 0"):
        nearest_neighbors(tmp_path, "digits", k=0)


USAGE_ERRORS = [
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
    (["train", "--no-such-option"], "No such option '--no-such-option'"),
    (["train", "--arch", "resnet"], "'resnet' is not one of 'dcgan', 'mlp', 'msg', 'fastgan'"),
    (["train", "--g-norm", "layer"], "'layer' is not one of 'batch', 'pixel'"),
    (["train", "--steps", "many"], "'many' is not a valid integer"),
    (["train", "--lr-g", "fast"], "'fast' is not a valid float"),
    (["train", "--steps"], "Option '--steps' requires an argument"),
    (["train", "a", "b"], "Got unexpected extra argument (b)"),
    (["sample"], "Missing argument 'SOURCE'"),
    (["sample", "run", "--num", "few"], "'few' is not a valid integer"),
    (["evaluate", "run"], "Missing option '--data'"),
    (["evaluate", "run", "--data", "digits", "--features", "vgg"], "'vgg' is not one of 'lite0', 'inception'"),
    (["evaluate", "run", "--data", "digits", "-n", "lots"], "'lots' is not a valid integer"),
    (["neighbors"], "Missing argument 'SOURCE'"),
    (["neighbors", "run", "--data", "digits", "-k", "x"], "'x' is not a valid integer"),
    (["report"], "Missing argument 'RUN_DIR'"),
    (["report", "run", "--bogus"], "No such option '--bogus'"),
    (["stylize", "a.jpg", "b.jpg", "--init", "zeros"], "'zeros' is not one of 'content', 'random'"),
    (["stylize", "a.jpg", "b.jpg", "--size", "big"], "'big' is not a valid integer"),
]


@pytest.mark.parametrize("args,message", USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_every_usage_error_is_one_line(args, message):
    result = run(*args)
    one_line_error(result, message)
    assert result.output.startswith("Error: ") and "Traceback" not in result.output and "Usage:" not in result.output
    if args[0] != "nosuchcommand":
        assert f"ganforge {args[0]} --help" in result.output  # where to look


def test_library_errors_are_one_line_through_the_cli(tmp_path):
    one_line_error(run("train", "--g-width", "0", "--run-dir", tmp_path / "r"), "--g-width must be at least 1, not 0")
    one_line_error(run("sample", tmp_path, "--num", "0"), "--num must be at least 1, not 0")
    one_line_error(run("sample", tmp_path, "--device", "tpu"), "--device must be one of auto, cpu, cuda, mps or cuda:N, not 'tpu'")
    assert not (tmp_path / "r").exists()


def _make_folders(root, barrier, count, out):
    barrier.wait()
    out.extend([str(create_run_folder(root, "digits").path) for _ in range(count)])


def test_runs_started_at_the_same_moment_get_different_folders(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, manager = ctx.Barrier(6), ctx.Manager()
    made = manager.list()
    procs = [ctx.Process(target=_make_folders, args=(tmp_path / "runs", barrier, 5, made)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(made) == 30 and len(set(made)) == 30
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [f"{i:05d}-digits" for i in range(30)]


def test_two_trainings_started_together_write_two_complete_runs(tmp_path):
    cmd = [sys.executable, "-m", "ganforge", "train", "--size", "16", "--g-width", "4", "--d-width", "4", "--batch-size", "16",
           "--steps", "2", "--no-collapse-check"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folders = {out.strip().splitlines()[-1] for out, _ in outs}
    assert folders == {"runs/00000-digits", "runs/00001-digits"}
    for folder in folders:
        assert (tmp_path / folder / "generator.safetensors").is_file() and (tmp_path / folder / "config.json").is_file()


def test_paths_work_as_data_and_a_saved_config_keeps_its_preset(photo_folder, tmp_path):
    from pathlib import Path

    from ganforge.gan.config import apply_preset

    run_dir = train(TrainConfig(data=Path(photo_folder), size=16, g_width=4, d_width=4, batch_size=8, steps=1, collapse_check=False),
                    tmp_path / "r", sinks=[])
    import json

    assert json.loads((run_dir / "config.json").read_text())["train"]["data"] == str(photo_folder.resolve())
    cfg = apply_preset(TrainConfig(preset="small", batch_size=64), explicit={"batch_size"})
    assert cfg.batch_size == 64 and cfg.ema and cfg.preset_applied
    assert apply_preset(TrainConfig.from_dict(cfg.to_dict())) == cfg  # filled once, never again


def test_plain_ganforge_shows_its_help():
    result = run()
    assert "Usage: ganforge" in result.output and "Commands:" in result.output and "Error" not in result.output


def test_a_folder_smaller_than_a_batch_trains_on_all_of_it(photo_folder, tmp_path):
    import json

    seen = []
    run_dir = train(TrainConfig(data=str(photo_folder), size=16, g_width=4, d_width=4, steps=2, collapse_check=False), tmp_path / "r", sinks=[seen.append])
    note = "--batch-size 64 is more than the 20 pictures; training on batches of 20."
    assert any(getattr(e, "message", "") == note for e in seen) and note in (run_dir / "log.txt").read_text()
    assert json.loads((run_dir / "config.json").read_text())["train"]["batch_size"] == 20


def test_the_moving_average_warms_up():
    import torch

    from ganforge.gan.families.base import ModelConfig
    from ganforge.gan.trainer import GANTrainer

    model = ModelConfig(size=16, channels=1, latent_dim=8, g_width=4, d_width=4)
    warm = GANTrainer(TrainConfig(ema=True, ema_decay=0.999, latent_dim=8), model, torch.device("cpu"))
    assert [round(warm.ema_decay_at(s), 4) for s in (0, 10, 90, 10**6)] == [0.1, 0.55, 0.91, 0.999]
    cold = GANTrainer(TrainConfig(ema=True, ema_decay=0.999, ema_warmup=False, latent_dim=8), model, torch.device("cpu"))
    assert cold.ema_decay_at(0) == 0.999
    assert TrainConfig.from_dict({"ema": True}).ema_warmup is False  # configs from before the warm-up keep training without it
