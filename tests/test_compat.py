"""Files written by ganforge 0.1.0 before the training engine was reshaped (tests/fixtures/runs-v1,
made by make_runs_v1.sh at that version) still load, sample the same pictures and resume to the
same weights that version reached."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.gan.checkpoint import load_generator
from ganforge.gan.loop import resume_training
from ganforge.gan.sampling import sample_images
from ganforge.images import to_uint8

FIXTURES = Path(__file__).parent / "fixtures" / "runs-v1"
VARIANTS = ["dcgan", "dcgan-stabilised", "mlp", "msg", "grow"]


def _pictures(images: torch.Tensor) -> np.ndarray:
    return to_uint8(images).permute(0, 2, 3, 1).numpy()[..., 0]  # (N, H, W): the fixtures are gray digits


@pytest.mark.parametrize("name", VARIANTS)
def test_old_generators_sample_the_same_pictures(name):
    expected = np.stack([np.asarray(Image.open(FIXTURES / f"{name}-samples" / f"sample-{i:05d}.png")) for i in range(8)])
    for source in (FIXTURES / name, FIXTURES / name / "generator.safetensors", FIXTURES / name / "checkpoints" / "step-000002.pt"):
        got = _pictures(sample_images(source, n=8, seed=0))
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1, source  # rounding may differ on another CPU
        assert (got != expected).mean() < 0.01, source


@pytest.mark.parametrize("name", VARIANTS)
def test_old_runs_resume_to_the_weights_the_old_version_reached(name, tmp_path):
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)
    resume_training(run, steps=4, sinks=[])
    got = torch.load(run / "checkpoints" / "step-000004.pt", weights_only=True)
    expected = torch.load(FIXTURES / f"{name}-expected-step-4.pt", weights_only=True)
    for net in ("generator", "discriminator", "generator_ema"):
        assert (net in got) == (net in expected)
        if net in expected:
            assert got[net].keys() == expected[net].keys()
            for key, value in expected[net].items():
                torch.testing.assert_close(got[net][key], value, msg=f"{net}.{key}")
    for key in ("d_skipped", "d_skip_below", "rollbacks", "lr_scale"):
        assert got[key] == expected[key], key
    assert load_generator(run)[2] == 4
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if "loss_d" in line]
    assert steps == [1, 2, 3, 4]
