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

    # One thread: with two, PyTorch's CPU kernels now and then (about one process start in a hundred
    # here) round the first step of a process differently, which GAN training amplifies, so a resumed
    # run, which starts a dozen processes, would match its reference only most of the time. On one
    # thread no start in over 300 differed.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
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


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def wait_for(predicate, proc, timeout=120.0, poll=0.0005) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    return False


def new_temporary(run: Path, before: set) -> bool:
    """A checkpoint being written now: a temporary file that was not there at launch."""
    try:
        return any(name.endswith(".tmp") and name not in before for name in os.listdir(run / "checkpoints"))
    except OSError:
        return False


def newest_step(run: Path) -> int:
    files = RunFolder(run).checkpoint_files()
    return files[-1][0] if files else -1


def test_killed_at_any_moment_the_run_resumes_to_the_uninterrupted_weights(tmp_path):
    steps = ["--steps", "400", "--checkpoint-every", "1", "--keep", "2"]
    code, _, err = finish(ganforge("train", *TINY, *steps, "--run-dir", tmp_path / "whole"))
    assert code == 0, err
    run = tmp_path / "cut"
    rng = random.Random(0)
    # in the first second of a start, once its settings are written, a few steps on, and in the
    # middle of checkpoint writes; each moment is watched for rather than timed, so that a fast
    # or a slow machine kills at the same places
    plan = [rng.uniform(0.2, 1.0) for _ in range(2)] + ["settings"] * 2 + [rng.randint(1, 25) for _ in range(6)] + ["write"] * 6
    kills = []  # (moment, newest checkpoint before, after): what a failure reports
    for moment in plan:
        launched = time.time()
        before = set(os.listdir(run / "checkpoints")) if (run / "checkpoints").is_dir() else set()
        start_step = newest_step(run)
        command = ["train", "--resume", run] if RunFolder(run).holds_run() else ["train", *TINY, *steps, "--run-dir", run]
        proc = ganforge(*command)
        if moment == "settings":
            assert wait_for(lambda: (run / "config.json").exists() and (run / "config.json").stat().st_mtime >= launched, proc)
        elif moment == "write":
            assert wait_for(lambda: new_temporary(run, before), proc)
        elif isinstance(moment, int):
            assert wait_for(lambda: newest_step(run) >= start_step + moment, proc, poll=0.002)
        else:
            time.sleep(moment)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills.append((moment, start_step, newest_step(run)))
        if RunFolder(run).checkpoint_files():  # the newest checkpoint is complete, and it is what a resume reads
            step, newest = RunFolder(run).checkpoint_files()[-1]
            assert load_checkpoint(newest)["step"] == step
    while True:  # now let it finish, resuming (or restarting an unfinished start) as a person would
        command = ["train", "--resume", run] if RunFolder(run).holds_run() else ["train", *TINY, *steps, "--run-dir", run]
        code, _, err = finish(ganforge(*command))
        if code == 0:
            break
        pytest.fail(err)
    whole, cut = final_weights(tmp_path / "whole"), final_weights(run)
    if not same_weights(whole, cut):
        # Should a process still round differently (see ganforge() above), a second uninterrupted
        # run tells a reference that went astray from a resume that did.
        code, _, err = finish(ganforge("train", *TINY, *steps, "--run-dir", tmp_path / "again"))
        assert code == 0, err
        again = final_weights(tmp_path / "again")
        agreeing = same_weights(whole, again)
        assert same_weights(again, cut), (f"the resumed run differs from {'two agreeing' if agreeing else 'two disagreeing'} "
                                          f"uninterrupted runs; kills at {kills}")
    assert not list(run.rglob("*.tmp")) and not (run / ".starting").exists()  # what the kills left was cleared up
    steps_logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss_d"' in line]
    assert steps_logged == list(range(2, 401, 2))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_at_start_up_leaves_a_clean_folder_and_one_line(tmp_path, signum):
    for i, delay in enumerate([1.0, 1.5, 2.2, 3.0, 4.5]):  # from when the handlers are surely in place
        run = tmp_path / f"r{i}"
        proc = ganforge("train", *TINY, "--steps", "100000", "--run-dir", run)
        time.sleep(delay)
        proc.send_signal(signum)
        code, out, err = finish(proc)
        assert code == 128 + signum, err
        line = one_error_line(err, "Stopped", signal.Signals(signum).name)
        if RunFolder(run).checkpoint_files():  # it got as far as a checkpoint: resumable
            assert "--resume" in line and out.strip().splitlines()[-1] == str(run)
            code, _, err = finish(ganforge("train", "--resume", run, "--steps", "3"))
        else:  # nothing that blocks the same command: the folder this start made is gone
            assert not run.exists(), list(run.iterdir())
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
    message = "changed since the run last trained: 1 added, 3 removed, 1 changed; training continues on the 18 there now"
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


# ---- what clean-up must never touch (in-process: faults injected where they hurt most) ----


def _tiny_cfg(**kw):
    from ganforge.gan.config import TrainConfig

    return TrainConfig(**{**dict(size=16, g_width=4, d_width=4, latent_dim=8, batch_size=16, steps=2, collapse_check=False), **kw})


def _interrupt_set_up(monkeypatch):
    """Ctrl-C while training sets up, before the first checkpoint."""
    from ganforge.gan import loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "HealthChecks", interrupted)


def test_a_stopped_start_leaves_a_users_own_files_and_can_be_started_again(tmp_path, monkeypatch):
    from ganforge.gan.loop import resume_training, train

    folder = tmp_path / "mine"
    (folder / "samples").mkdir(parents=True)
    (folder / "samples" / "holiday.png").write_bytes(b"mine")
    (folder / "log.txt").write_text("my notes\n")
    with monkeypatch.context() as m:
        _interrupt_set_up(m)
        with pytest.raises(KeyboardInterrupt):
            train(_tiny_cfg(), folder, sinks=[])
    assert (folder / "samples" / "holiday.png").read_bytes() == b"mine" and (folder / "log.txt").read_text().startswith("my notes")
    assert RunFolder(folder).unfinished()  # marked, with its settings: the same command, or --resume, starts it
    with monkeypatch.context() as m:  # stopped again, this time on --resume: its settings stay
        _interrupt_set_up(m)
        with pytest.raises(KeyboardInterrupt):
            resume_training(folder, sinks=[])
    assert (folder / "config.json").exists() and RunFolder(folder).unfinished()
    resume_training(folder, sinks=[])
    assert newest_step(folder) == 2 and (folder / "samples" / "holiday.png").read_bytes() == b"mine"
    assert not RunFolder(folder).unfinished() and not (folder / ".starting").exists()


def test_a_finished_run_without_its_checkpoints_is_never_started_over(tmp_path):
    from ganforge.errors import GanforgeError
    from ganforge.gan.loop import resume_training, train

    run = train(_tiny_cfg(), tmp_path / "r", sinks=[])
    shutil.rmtree(run / "checkpoints")  # to save space, keeping generator.safetensors
    kept = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(GanforgeError, match="already holds a run"):
        train(_tiny_cfg(), run, sinks=[])
    with pytest.raises(GanforgeError, match="no readable checkpoint"):
        resume_training(run, steps=4, sinks=[])
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == {k: v for k, v in kept.items() if k != ".lock"}


def test_resume_with_data_accepts_the_same_pictures_copied_and_refuses_others(tmp_path):
    from ganforge.errors import GanforgeError
    from ganforge.gan.loop import resume_training, train

    photos = _pictures(tmp_path / "photos", 20)
    run = train(_tiny_cfg(data=str(photos), batch_size=8), tmp_path / "r", sinks=[])
    copy = tmp_path / "copy"
    shutil.copytree(photos, copy, copy_function=shutil.copyfile)  # new files: new times, same bytes
    seen = []
    resume_training(run, steps=3, data=copy, sinks=[seen.append])
    assert not any("changed since" in getattr(e, "message", "") for e in seen)
    others = _pictures(tmp_path / "others", 20, seed=5)
    for i in range(12):  # most of the names are new
        (others / f"{i:03d}.png").rename(others / f"other-{i}.png")
    with pytest.raises(GanforgeError, match="holds only 8 of the 20 pictures this run trained on"):
        resume_training(run, steps=4, data=others, sinks=[])
    with pytest.raises(GanforgeError, match="can only say where the same pictures are now"):
        resume_training(run, steps=4, data="digits", sinks=[])
