"""Training on several processes, for real: torchrun with the gloo backend on this CPU.

- a step on 2 processes computes the gradients, statistics and BatchNorm statistics that 1
  process computes for the same global batch (the proof of the slicing and of BatchNorm over the
  global batch), for the stabilised DCGAN, MSG-GAN and progressive growing;
- checkpoints move between world sizes: 2 -> 1 and 1 -> 2 reach an uninterrupted run's weights;
- two torchrun agents as two "nodes" on 127.0.0.1 leave one complete run folder;
- a worker killed with SIGKILL ends the job at once with one line naming its rank, and the run
  resumes; Ctrl-C to the launcher checkpoints once;
- bf16 on the CPU trains; fp16 without CUDA, a batch that does not divide, a port in use are
  refused in one sentence; --compile without a working compiler warns and trains eagerly.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ganforge.gan.rundir import RunFolder

WORKER = Path(__file__).parent / "workers" / "one_step.py"
TINY = ["--size", "16", "--g-width", "8", "--d-width", "8", "--latent-dim", "16", "--batch-size", "16", "--no-collapse-check",
        "--log-every", "1", "--sample-every", "100"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def torchrun(*args, nproc=2, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), *map(str, args)],
                          env=ENV, capture_output=True, text=True, timeout=timeout)


def ganforge(*args, cwd, timeout=180, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganforge", *map(str, args)], cwd=cwd, env={**ENV, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def last_line(err: str) -> str:
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(run: Path, step: int) -> dict:
    state = torch.load(RunFolder(run).checkpoint(step), weights_only=True)
    return {f"{net}.{k}": v for net in ("generator", "discriminator") for k, v in state[net].items() if v.is_floating_point()}


@pytest.mark.parametrize("settings", [
    {"r1": 1.0, "augment": True, "augment_p": "auto", "ema": True},  # BatchNorm in G and D, R1's double backward, augmentation
    {"arch": "msg", "augment": True, "augment_p": "0.5"},
    {"grow": True, "size": 32, "steps": 8, "grow_stage_steps": 1},  # parameters a step leaves out
    {"arch": "fastgan", "size": 64, "g_width": 2, "d_width": 2, "loss": "hinge", "augment": True, "augment_p": "0.5"},  # D's reconstruction
], ids=["dcgan-stabilised", "msg", "grow", "fastgan"])
def test_a_step_on_two_processes_computes_what_one_process_computes(tmp_path, settings, monkeypatch):
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    done = torchrun(WORKER, two, json.dumps(settings))
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setattr(sys, "argv", [str(WORKER), str(one), json.dumps(settings)])
    runpy.run_path(str(WORKER), run_name="__main__")
    a, b = torch.load(one, weights_only=False), torch.load(two, weights_only=False)

    assert a["stats"] == pytest.approx(b["stats"], abs=1e-6)
    for which in ("g_grad", "d_grad"):
        assert a[which].keys() == b[which].keys() and a[which]
        total = torch.cat([g.flatten() for g in a[which].values()]).norm()
        for name, g in a[which].items():
            # Tolerance: 1e-4 of each gradient's norm, with a floor of 1e-8 of the network's (the
            # gradients of biases under BatchNorm are zero in exact arithmetic, rounding noise here).
            assert (g - b[which][name]).norm() <= 1e-4 * (g.norm() + 1e-4 * total), (which, name)
    for net in ("generator", "discriminator"):  # BatchNorm's running statistics: the global batch's
        for name, value in a["state"][net].items():
            if "running" in name:
                assert torch.allclose(value, b["state"][net][name], rtol=1e-5, atol=1e-6), (net, name)


def test_checkpoints_move_between_world_sizes(tmp_path):
    """2 steps on 2 processes then 2 on 1, and 2 on 1 then 2 on 2, against 4 uninterrupted steps on 1.

    GAN training amplifies rounding: 1 process on 1 thread and on 2 threads already differ by about
    1e-4 (relative, over all weights) after 4 steps, as a different number of processes does. The
    tolerance, 1e-3, is ten times that; a resume that lost the optimizer's moments, or trained on
    other rows, lands about 1e-2 away."""
    common = [*TINY, "--steps", "4", "--checkpoint-every", "2"]
    assert ganforge("train", *common, "--run-dir", "full", cwd=tmp_path).returncode == 0
    first = ganforge("train", *TINY, "--steps", "2", "--checkpoint-every", "2", "--run-dir", "a", "--nproc-per-node", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "2 processes (batches of 8 each)" in first.stderr
    assert ganforge("train", "--resume", "a", "--steps", "4", cwd=tmp_path).returncode == 0
    assert ganforge("train", *TINY, "--steps", "2", "--checkpoint-every", "2", "--run-dir", "b", cwd=tmp_path).returncode == 0
    second = ganforge("train", "--resume", "b", "--steps", "4", "--nproc-per-node", "2", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]

    full = weights(tmp_path / "full", 4)
    for run in ("a", "b"):
        other = weights(tmp_path / run, 4)
        for net in ("generator", "discriminator"):
            keys = [k for k in full if k.startswith(net)]
            diff = torch.cat([(full[k] - other[k]).flatten() for k in keys]).norm()
            assert diff <= 1e-3 * torch.cat([full[k].flatten() for k in keys]).norm(), (run, net)
        rows = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows if "loss_d" in r] == [1, 2, 3, 4]  # each row once, from rank 0 alone


def test_two_machines_on_this_one_leave_one_complete_run_folder(tmp_path):
    port = free_port()
    nodes = [subprocess.Popen([sys.executable, "-m", "ganforge", "train", *TINY, "--steps", "3", "--run-dir", "run", "--nproc-per-node", "1",
                               "--nnodes", "2", "--node-rank", str(rank), "--rdzv-endpoint", f"127.0.0.1:{port}"],
                              cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outs = [p.communicate(timeout=180) for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outs
    assert outs[0][0].strip().splitlines()[-1] == "run" and outs[1][0].strip() == ""  # the first machine speaks
    assert "2 processes" in outs[0][1]
    folder = RunFolder(tmp_path / "run")
    assert folder.generator.exists() and [s for s, _ in folder.checkpoint_files()] == [0, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def worker_pid(rank: int, timeout: float = 60) -> int:
    """The pid of the training process with torchrun's RANK `rank`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                env = (entry / "environ").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if f"RANK={rank}".encode() in env and b"GANFORGE_LAUNCH_REPORT" in b"".join(env):
                return int(entry.name)
        time.sleep(0.2)
    raise AssertionError(f"no process with RANK={rank}")


def wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.1)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_killed_worker_ends_the_job_at_once_naming_its_rank_and_the_run_resumes(tmp_path):
    job = subprocess.Popen([sys.executable, "-m", "ganforge", "train", *TINY, "--steps", "5000", "--checkpoint-every", "10", "--run-dir", "run",
                            "--nproc-per-node", "2"], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = RunFolder(tmp_path / "run")
    wait_for(folder.checkpoint(10))
    victim = worker_pid(1)
    os.kill(victim, signal.SIGKILL)
    killed = time.time()
    out, err = job.communicate(timeout=120)
    assert time.time() - killed < 30  # a death is seen at once; a silent worker after --dist-timeout
    assert job.returncode == 1
    line = last_line(err)
    assert line.startswith(f"Error: training process rank 1 (pid {victim}) was killed by SIGKILL") and "ganforge train --resume run" in line
    newest = folder.checkpoint_files()[-1][0]
    state = torch.load(folder.checkpoint(newest), weights_only=True)  # intact
    assert int(state["step"]) == newest >= 10
    resumed = ganforge("train", "--resume", "run", "--steps", str(newest + 2), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert folder.checkpoint_files()[-1][0] == newest + 2


def test_ctrl_c_to_the_launcher_checkpoints_once_and_stops_every_process(tmp_path):
    job = subprocess.Popen([sys.executable, "-m", "ganforge", "train", *TINY, "--steps", "5000", "--checkpoint-every", "1000", "--run-dir", "run",
                            "--nproc-per-node", "2"], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = RunFolder(tmp_path / "run")
    wait_for(folder.checkpoint(0))
    time.sleep(1.0)
    job.send_signal(signal.SIGINT)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 130, err[-2000:]
    line = last_line(err)
    assert line.startswith("Stopped at step ") and "checkpoint saved" in line and out.strip() == "run"
    step = int(line.split()[3])
    assert [s for s, _ in folder.checkpoint_files()] == [0, step]


def test_bf16_trains_on_the_cpu_and_fp16_is_refused_there(tmp_path):
    from ganforge import TrainConfig, train

    run = train(TrainConfig(data="digits", size=16, g_width=8, d_width=8, latent_dim=16, batch_size=16, steps=3, log_every=1,
                            collapse_check=False, precision="bf16"), tmp_path / "bf16", sinks=[])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "loss_d" in line]
    assert len(rows) == 3 and all(torch.isfinite(torch.tensor([r["loss_d"], r["loss_g"]])).all() for r in rows)

    refused = ganforge("train", *TINY, "--precision", "fp16", "--device", "cpu", "--run-dir", "fp16", cwd=tmp_path)
    assert refused.returncode == 2
    assert last_line(refused.stderr) == ("Error: --precision fp16 needs a CUDA GPU (its gradient scaling is made for one); "
                                         "on cpu use --precision bf16 or fp32.")
    assert not (tmp_path / "fp16").exists()


def test_a_batch_that_does_not_divide_and_a_port_in_use_are_one_sentence_and_exit_code_2(tmp_path):
    uneven = ganforge("train", *TINY[:8], "--batch-size", "15", "--run-dir", "run", "--nproc-per-node", "2", cwd=tmp_path)
    assert uneven.returncode == 2
    assert last_line(uneven.stderr) == ("Error: --batch-size 15 does not divide evenly among 2 processes; "
                                        "choose a multiple of 2 (the batch size is the global one).")
    assert not (tmp_path / "run").exists()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = ganforge("train", "--nnodes", "2", "--node-rank", "0", "--rdzv-endpoint", f"127.0.0.1:{port}", cwd=tmp_path)
    assert busy.returncode == 2
    assert last_line(busy.stderr) == f"Error: port {port} on 127.0.0.1 is already in use; choose another with --rdzv-endpoint 127.0.0.1:PORT."


def test_compile_without_a_working_compiler_warns_once_and_trains_eagerly(tmp_path):
    done = ganforge("train", *TINY, "--steps", "2", "--compile", "--run-dir", "run", cwd=tmp_path,
                    env={"CXX": str(tmp_path / "no-such-compiler"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if "--compile" in line]
    assert len(warnings) == 1 and "torch.compile cannot run here" in warnings[0] and "training in eager mode" in warnings[0]
    assert RunFolder(tmp_path / "run").generator.exists()
