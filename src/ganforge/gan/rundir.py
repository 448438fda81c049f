"""One folder per run, and the one place that knows what lives where in it.

    runs/00003-cats/
        config.json            the settings, the model's shape, the dataset, library versions
        log.txt                what the run said, with times
        metrics.jsonl          one JSON object per line: losses, KID, diversity, health events
        summary.json           the outcome, written when training ends
        samples/step-*.png     the fixed noise batch every --sample-every steps
        losses.png             loss and D-output curves
        checkpoints/step-*.pt  everything needed to resume
        generator.safetensors  the trained generator, for sharing
        best.safetensors       the generator with the best KID (--eval-every)
        report.html            `ganforge report`
        data.json              the pictures trained on (names, sizes, times), to notice changes on resume
        .lock                  held by the process training the run

A folder becomes a run with its first checkpoint: one that has config.json but no checkpoint is a
start that did not finish (killed, say), and the same command starts it afresh.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ganforge.errors import GanforgeError
from ganforge.fileio import append_text, atomic_write, atomic_write_text, reason

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

_STEP_FILE = re.compile(r"^step-(\d+)\.(pt|png)$")
_NUMBERED = re.compile(r"^(\d{5})-")


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    config = property(lambda self: self.path / "config.json")
    log = property(lambda self: self.path / "log.txt")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    summary = property(lambda self: self.path / "summary.json")
    samples = property(lambda self: self.path / "samples")
    losses_plot = property(lambda self: self.path / "losses.png")
    checkpoints = property(lambda self: self.path / "checkpoints")
    generator = property(lambda self: self.path / "generator.safetensors")
    best = property(lambda self: self.path / "best.safetensors")
    report = property(lambda self: self.path / "report.html")
    data_listing = property(lambda self: self.path / "data.json")
    lock_file = property(lambda self: self.path / ".lock")
    # What a start writes; a start that never reached its first checkpoint leaves only these.
    STARTED = ("config.json", "log.txt", "metrics.jsonl", "data.json", "summary.json", "losses.png", "samples", "checkpoints")

    def __str__(self) -> str:
        return str(self.path)

    @staticmethod
    def looks_like_run(path: Path) -> bool:
        """A folder that ganforge wrote a run into (rather than, say, a folder of pictures)."""
        f = RunFolder(path)
        return path.is_dir() and any(p.exists() for p in (f.config, f.generator, f.checkpoints))

    # ---- files numbered by step ----

    def sample_grid(self, step: int) -> Path:
        return self.samples / f"step-{step:06d}.png"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:06d}.pt"

    @staticmethod
    def _by_step(folder: Path, suffix: str) -> list[tuple[int, Path]]:
        if not folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name)) and m.group(2) == suffix]
        return sorted(found)

    def checkpoint_files(self) -> list[tuple[int, Path]]:
        """(step, path) of the complete checkpoints, oldest first (a killed write leaves only a .tmp)."""
        return self._by_step(self.checkpoints, "pt")

    def sample_grid_files(self) -> list[tuple[int, Path]]:
        return self._by_step(self.samples, "png")

    # ---- config.json ----

    def write_config(self, config: dict) -> None:
        atomic_write_text(self.config, json.dumps(config, indent=2) + "\n")

    def read_config(self) -> dict:
        if not self.config.is_file():
            raise GanforgeError(f"{self.path} is not a ganforge run folder (no config.json).")
        try:
            config = json.loads(self.config.read_text())
        except (ValueError, UnicodeDecodeError):
            raise GanforgeError(f"{self.config} is damaged; it is not JSON.") from None
        if not isinstance(config, dict):
            raise GanforgeError(f"{self.config} is damaged; it holds no settings.")
        return config

    # ---- log.txt and metrics.jsonl ----

    def append_log(self, message: str) -> None:
        append_text(self.log, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def append_metrics(self, row: dict) -> None:
        append_text(self.metrics, json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict]:
        """Every complete row; a line cut short by a kill is passed over."""
        if not self.metrics.is_file():
            return []
        rows = []
        for line in self.metrics.read_text(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def rewrite_metrics(self, rows: list[dict]) -> None:
        atomic_write(self.metrics, lambda f: f.write("".join(json.dumps(r) + "\n" for r in rows).encode()))


    # ---- starts that did not finish ----

    def is_run(self) -> bool:
        """Whether the folder holds a run: settings and at least one checkpoint file."""
        return self.config.exists() and bool(self.checkpoint_files())

    def clear_start(self) -> None:
        """Delete what an unfinished start wrote (never anything else in the folder)."""
        for name in self.STARTED:
            path = self.path / name
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            except OSError as exc:
                raise GanforgeError(f"could not remove {path} of an unfinished start: {reason(exc)}.") from None


def create_run_folder(root: Path, name: str) -> RunFolder:
    """A new, empty root/NNNNN-name, numbered one past the highest run already there.

    `mkdir` either creates the folder or fails because it exists, so two runs started at the same
    moment never share one: the second moves on to the next number.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        number = max((int(m.group(1)) for p in root.iterdir() if (m := _NUMBERED.match(p.name))), default=-1) + 1
        while True:
            path = root / f"{number:05d}-{name}"
            try:
                path.mkdir()
                return RunFolder(path)
            except FileExistsError:
                number += 1
    except OSError as exc:
        raise GanforgeError(f"could not create a run folder in {root}: {reason(exc)}.") from None


class RunLock:
    """An exclusive lock on a run folder while a process trains it, so that a second process
    training or resuming the same run is refused. It is the operating system's file lock on
    `.lock`, which the kernel drops when its process ends, however it ends: a killed run never
    leaves its folder locked. The holder's process id is written in the file, to name it."""

    def __init__(self, folder: RunFolder):
        self.folder, self.fd = folder, None
        try:
            fd = os.open(folder.lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise GanforgeError(f"could not write {folder.lock_file}: {reason(exc)}.") from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            try:
                holder = os.read(fd, 100).decode(errors="replace").split() or ["?"]
            except OSError:
                holder = ["?"]
            os.close(fd)
            raise GanforgeError(f"{folder} is being trained by process {holder[0]}; wait for it to finish, or stop it "
                                f"(Ctrl-C there, or kill {holder[0]}) and then resume.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None
