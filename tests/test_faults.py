"""Faults as they happen to real runs: a process killed at any moment, signals during start-up, two
processes on one run, a data folder that changed or moved, a full disk, outputs that cannot be
written. Nothing saved may be lost and every message is one line.

These run `python -m ganforge` in child processes, as a person's shell would.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.gan.checkpoint import load_checkpoint
from ganforge.gan.rundir import RunFolder

from conftest import make_photo

TINY = ["--size", "16", "--g-width", "8", "--d-width", "8", "--latent-dim", "16", "--batch-size", "16", "--no-collapse-check",
        "--sample-every", "20", "--log-every", "2"]


def ganforge(*args, cwd=None, limit_file_size: int | None = None, **popen):
    def limits():
        if limit_file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "ganforge", *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=limits, **popen)


def finish(proc, timeout=300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def one_error_line(err: str, *fragments) -> str:
    """The last line of stderr is the one-line message; no traceback anywhere."""
    assert "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    for f in fragments:
        assert f in line, line
    return line


def final_weights(run: Path) -> dict:
    state = torch.load(RunFolder(run).checkpoint_files()[-1][1], weights_only=True)
    return {f"{net}.{k}": v for net in ("generator", "discriminator") for k, v in state[net].items()}


def wait_for(predicate, proc, timeout=120.0, poll=0.0005) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    return False


def writing_a_checkpoint(run: Path) -> bool:
    folder = run / "checkpoints"
    try:
        return any(name.endswith(".tmp") for name in os.listdir(folder))
    except OSError:
        return False


def test_killed_at_any_moment_the_run_resumes_to_the_uninterrupted_weights(tmp_path):
    steps = ["--steps", "600", "--checkpoint-every", "1", "--keep", "2"]  # long enough that no kill comes after the end
    code, _, err = finish(ganforge("train", *TINY, *steps, "--run-dir", tmp_path / "whole"))
    assert code == 0, err
    run = tmp_path / "cut"
    rng = random.Random(0)
    # the first second of a start, random moments, and the middle of checkpoint writes
    plan = ["config"] * 2 + [rng.uniform(0.3, 1.0) for _ in range(2)] + [rng.uniform(1.0, 6.0) for _ in range(6)] + ["write"] * 6
    survived = 0
    for moment in plan:
        command = ["train", "--resume", run] if RunFolder(run).is_run() else ["train", *TINY, *steps, "--run-dir", run]
        proc = ganforge(*command)
        if moment == "config":
            wait_for(lambda: (run / "config.json").exists(), proc)
        elif moment == "write":
            wait_for(lambda: writing_a_checkpoint(run), proc, timeout=60)
        else:
            time.sleep(moment)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            survived += 1
        proc.communicate()
        if RunFolder(run).is_run():  # the newest checkpoint is complete, and it is what a resume reads
            step, newest = RunFolder(run).checkpoint_files()[-1]
            assert load_checkpoint(newest)["step"] == step
    assert survived == len(plan), survived
    while True:  # now let it finish, resuming (or restarting an unfinished start) as a person would
        command = ["train", "--resume", run] if RunFolder(run).is_run() else ["train", *TINY, *steps, "--run-dir", run]
        code, _, err = finish(ganforge(*command))
        if code == 0 or "already reached step 600" in err:
            break
        pytest.fail(err)
    whole, cut = final_weights(tmp_path / "whole"), final_weights(run)
    assert whole.keys() == cut.keys() and all(torch.equal(whole[k], cut[k]) for k in whole)
    assert not list(run.rglob("*.tmp"))  # what the kills left was cleared up
    steps_logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss_d"' in line]
    assert steps_logged == list(range(2, 601, 2))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_at_start_up_leaves_a_clean_folder_and_one_line(tmp_path, signum):
    for i, delay in enumerate([0.6, 1.2, 2.0, 3.0, 4.5]):
        run = tmp_path / f"r{i}"
        proc = ganforge("train", *TINY, "--steps", "100000", "--run-dir", run)
        time.sleep(delay)
        proc.send_signal(signum)
        code, out, err = finish(proc)
        assert code == 128 + signum, err
        line = one_error_line(err, "Stopped", signal.Signals(signum).name)
        if RunFolder(run).is_run():  # it got as far as a checkpoint: resumable
            assert "--resume" in line and out.strip().splitlines()[-1] == str(run)
            code, _, err = finish(ganforge("train", "--resume", run, "--steps", "3"))
        else:  # nothing that blocks the same command
            assert not run.exists() or not [p for p in run.iterdir() if p.name != ".lock"], list(run.iterdir())
            code, _, err = finish(ganforge("train", *TINY, "--steps", "3", "--run-dir", run))
        assert code == 0 or "already reached" in err, err


def test_a_second_process_on_the_same_run_is_refused(tmp_path):
    run = tmp_path / "r"
    first = ganforge("train", *TINY, "--steps", "100000", "--run-dir", run)
    assert wait_for(lambda: (run / "metrics.jsonl").exists(), first, poll=0.05)
    for args in (["train", "--resume", run, "--steps", "200000"], ["train", *TINY, "--run-dir", run]):
        code, _, err = finish(ganforge(*args))
        assert code == 2
        one_error_line(err, f"{run} is being trained by process {first.pid}")
    first.send_signal(signal.SIGTERM)
    code, _, err = finish(first)
    assert code == 128 + signal.SIGTERM, err
    step = RunFolder(run).checkpoint_files()[-1][0]
    code, _, err = finish(ganforge("train", "--resume", run, "--steps", step + 2))  # the lock went with the process
    assert code == 0, err


def _pictures(folder: Path, count: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        make_photo(rng, 24, 24).save(folder / f"{i:03d}.png")
    return folder


def test_a_changed_or_moved_data_folder(tmp_path):
    photos = _pictures(tmp_path / "photos", 20)
    run = tmp_path / "r"
    code, _, err = finish(ganforge("train", photos, *TINY, "--batch-size", "8", "--steps", "2", "--run-dir", run))
    assert code == 0, err
    for i in range(3):
        (photos / f"{i:03d}.png").unlink()
    make_photo(np.random.default_rng(9), 30, 30).save(photos / "new.png")
    make_photo(np.random.default_rng(8), 30, 30).save(photos / "010.png")  # same name, new picture
    code, _, err = finish(ganforge("train", "--resume", run, "--steps", "3"))
    assert code == 0, err
    message = "changed since the run began: 1 added, 3 removed, 1 changed; training continues on the 18 there now"
    assert message in err and message in (run / "log.txt").read_text()
    moved = tmp_path / "elsewhere"
    shutil.move(photos, moved)
    code, _, err = finish(ganforge("train", "--resume", run, "--steps", "4"))
    assert code == 2
    one_error_line(err, "is gone", f"--resume {run} --data NEW_PATH")
    code, _, err = finish(ganforge("train", "--resume", run, "--steps", "4", "--data", moved))
    assert code == 0, err
    assert "changed since" not in err  # the same pictures, somewhere else
    assert json.loads((run / "config.json").read_text())["train"]["data"] == str(moved.resolve())


def test_a_file_size_limit_loses_nothing_saved(tmp_path):
    run = tmp_path / "r"
    code, _, err = finish(ganforge("train", *TINY, "--steps", "2", "--checkpoint-every", "1", "--run-dir", run))
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    code, _, err = finish(ganforge("train", "--resume", run, "--steps", "4", limit_file_size=64_000))
    assert code == 2
    one_error_line(err, "could not write", "step-000003.pt", "a file-size limit")
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == before  # no half file, nothing lost
    code, _, err = finish(ganforge("train", "--resume", run, "--steps", "4"))
    assert code == 0, err


def test_a_full_disk_is_one_sentence(tmp_path, monkeypatch):
    import errno

    from ganforge.errors import GanforgeError
    from ganforge.fileio import atomic_write_bytes

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(GanforgeError, match=r"could not write .*x\.bin: the disk is full\.$"):
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("t") / "run"
    code, _, err = finish(ganforge("train", *TINY, "--steps", "2", "--run-dir", run))
    assert code == 0, err
    return run


def test_outputs_that_cannot_be_written(trained_run, tmp_path):
    """Every command that writes, pointed below a file (so that even root cannot write there), and
    under a file-size limit: one line, exit code 2, nothing half-written."""
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    make_photo(np.random.default_rng(0), 40, 30).save(content)
    make_photo(np.random.default_rng(1), 40, 30).save(style)
    commands = [
        ["train", *TINY, "--steps", "1", "--run-dir", blocker / "run"],
        ["sample", trained_run, "-n", "4", "-o", blocker / "grid.png"],
        ["sample", trained_run, "-n", "4", "--out-dir", blocker],
        ["neighbors", trained_run, "--data", "digits", "-n", "2", "-k", "2", "--features", "pixels", "-o", blocker / "nn.png"],
        ["report", trained_run, "-o", blocker / "report.html"],
        ["stylize", content, style, "--size", "32", "--steps", "1", "--scales", "1", "-o", blocker / "out.png"],
    ]
    for args in commands:
        code, _, err = finish(ganforge(*args))
        assert code == 2, (args, err)
        one_error_line(err, str(blocker))
    limited = [
        ["sample", trained_run, "-n", "400", "-o", tmp_path / "big.png"],
        ["report", trained_run, "-o", tmp_path / "report.html"],
        ["stylize", content, style, "--size", "256", "--steps", "1", "--scales", "1", "-o", tmp_path / "out.png"],
    ]
    for args in limited:
        code, _, err = finish(ganforge(*args, limit_file_size=2_000))
        assert code == 2, (args, err)
        one_error_line(err, "could not write", "a file-size limit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "c.png", "s.png"]  # no half-written files
