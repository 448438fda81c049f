"""`ganforge train ... --nproc-per-node N`: start torchrun's own launcher (torch.distributed.run)
in this process, running `python -m ganforge train ...` N times on this machine.

    ganforge train photos/ --nproc-per-node 2
    ganforge train photos/ --nproc-per-node 4 --nnodes 2 --node-rank 0 --rdzv-endpoint host0:29500   # on host0
    ganforge train photos/ --nproc-per-node 4 --nnodes 2 --node-rank 1 --rdzv-endpoint host0:29500   # on host1

torchrun itself prints a multi-line report when a worker fails; here the worker that speaks for
the job (rank 0) hands its last word to this process, which says in one line what happened.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

from ganforge.errors import GanforgeError

LAUNCH_OPTIONS = ("--nproc-per-node", "--nnodes", "--node-rank", "--rdzv-endpoint")
REPORT_ENV = "GANFORGE_LAUNCH_REPORT"  # where rank 0 leaves the run folder and its last error for the launcher


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def worker_arguments(argv: list[str]) -> list[str]:
    """The `ganforge train ...` arguments without the launch options (each worker is one process)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCH_OPTIONS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def split_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise GanforgeError(f"--rdzv-endpoint must be HOST:PORT (the first machine's address and a free port), not {endpoint!r}.")
    return host, int(port)


def check_port_free(host: str, port: int) -> None:
    """Refuse a rendezvous port that something on this machine already listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port a finished job left in TIME_WAIT is free
        try:
            s.bind((host if host not in ("localhost",) else "127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
                raise GanforgeError(f"port {port} on {host} is already in use; choose another with --rdzv-endpoint {host}:PORT.") from None
            # an address of another machine, say: the launcher will find out


def torchrun_arguments(nproc: int, nnodes: int, node_rank: int | None, endpoint: str | None, train_args: list[str]) -> list[str]:
    args = ["--nproc-per-node", str(nproc), "--nnodes", str(nnodes), "--max-restarts", "0"]
    if endpoint is None:
        if nnodes > 1:
            raise GanforgeError(f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT, an address of the first machine that every machine can reach.")
        args.append("--standalone")  # a free port of its own choosing on this machine
    else:
        host, port = split_endpoint(endpoint)
        if node_rank is not None:  # each machine says which it is
            if node_rank >= nnodes:
                raise GanforgeError(f"--node-rank {node_rank} must be below --nnodes {nnodes} (the first machine is 0).")
            if node_rank == 0:
                check_port_free(host, port)
            args += ["--rdzv-backend", "static", "--node-rank", str(node_rank), "--rdzv-endpoint", endpoint]
        else:  # the machines agree on their order among themselves
            args += ["--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "ganforge"]
    return [*args, "-m", "ganforge", "train", *train_args]


def launch(argv: list[str], nproc: int, nnodes: int, node_rank: int | None, endpoint: str | None) -> None:
    """Run `ganforge train argv` under torchrun's launcher; exits with the job's outcome."""
    if under_torchrun():
        raise GanforgeError("--nproc-per-node starts torchrun; under torchrun, leave the launch options to torchrun itself.")
    args = torchrun_arguments(nproc, nnodes, node_rank, endpoint, worker_arguments(argv))
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # Its notices of every start and stop, and its own failure report: this launcher says what matters.
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # One thread per process unless the machine has cores to spare (torchrun would set 1 with a warning).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    with tempfile.TemporaryDirectory(prefix="ganforge-launch-") as tmp:
        report = Path(tmp) / "report.json"
        os.environ[REPORT_ENV] = str(report)  # the workers inherit it
        try:
            run(parse_args(args))
        except ChildFailedError as exc:
            code, message = explain_failure(exc.failures, _read(report), nproc * nnodes)
            if message:
                print(f"Error: {message}", file=sys.stderr)
            sys.exit(code)
        except SignalException as exc:  # the workers were told to stop and have checkpointed
            sys.exit(128 + int(exc.sigval))
        except Exception as exc:  # the rendezvous could not be set up (RendezvousError and the like)
            first = str(exc).strip().splitlines()
            raise GanforgeError(f"torchrun could not start the processes: {first[0] if first else type(exc).__name__}") from None
        finally:
            os.environ.pop(REPORT_ENV, None)


def _read(report: Path) -> dict:
    try:
        return json.loads(report.read_text())
    except (OSError, ValueError):
        return {}


def write_report(**fields) -> None:
    """Rank 0 of a job this launcher started: leave `fields` (run_dir, error) for it."""
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    try:
        Path(path).write_text(json.dumps({**_read(Path(path)), **fields}))
    except OSError:
        pass  # the launcher then says less


def explain_failure(failures: dict, report: dict, world: int) -> tuple[int, str | None]:
    """(exit code, one sentence) for a job whose workers failed: the worker that failed by itself
    first (killed, crashed: any exit but the code 2 of an explained error) is named; else rank 0's
    own error is the sentence."""
    error, run_dir = report.get("error"), report.get("run_dir")
    codes = {f.exitcode for f in failures.values()}
    if len(codes) == 1 and 128 < (code := codes.pop()) < 128 + 65:  # all stopped by a signal, with a checkpoint: said already
        return code, None
    if error and not report.get("lost_contact"):  # rank 0 explained it (a full disk, a bad setting): the others followed
        return 2, error
    # The launcher ends the others with SIGTERM once one has failed: those are named last.
    ended = (-signal.SIGTERM, -signal.SIGINT)
    culprits = sorted((f.exitcode in ended, f.timestamp, rank, f) for rank, f in failures.items() if f.exitcode != 2)
    if not culprits:
        if error and report.get("lost_contact") and world == 2:
            error = f"rank 1 stopped answering: {error}"
        return 2, error or "a training process failed."
    *_, rank, failure = culprits[0]
    if report.get("timed_out") and failure.exitcode == -signal.SIGKILL:  # silent, then ended by the launcher
        how = "stopped answering (the launcher then ended it)"
    elif failure.exitcode < 0:
        how = f"was killed by {signal.Signals(-failure.exitcode).name}"
    else:
        how = f"exited with code {failure.exitcode}"
    where = ""
    if run_dir:
        from ganforge.gan.rundir import RunFolder

        newest = RunFolder(Path(run_dir)).checkpoint_files()
        saved = f"its newest checkpoint, step {newest[-1][0]}, is intact" if newest else "it has no checkpoint yet"
        where = f" The run is in {run_dir}; {saved}. Continue with: ganforge train --resume {run_dir}"
    return 1, f"training process rank {rank} (pid {failure.pid}) {how}, so the job stopped.{where}"
