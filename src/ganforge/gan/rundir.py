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
        data.json              the pictures trained on (names, sizes, content hashes), to notice changes
        .lock                  held by the process training the run
        .starting              there from a start until its first checkpoint

A folder becomes a run with its first checkpoint. One still marked `.starting` is a start that
did not finish (killed, say): the same command starts it afresh, and --resume restarts it.
"""

from __future__ import annotations

import json
import os
import re
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from ganforge.errors import GanforgeError
from ganforge.fileio import append_text, atomic_write, atomic_write_text, reason, remove_file, temporary_target, write_error

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
    starting = property(lambda self: self.path / ".starting")  # there from a start until its first checkpoint
    OWN_FILES = ("config.json", "log.txt", "metrics.jsonl", "summary.json", "losses.png", "generator.safetensors", "best.safetensors",
                 "data.json", ".starting", ".lock")

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

    # ---- starts that did not finish, and what killed writes left ----

    def unfinished(self) -> bool:
        """A start that never reached its first checkpoint: it left its mark, and no checkpoint."""
        return self.starting.exists() and not self.checkpoint_files()

    def holds_run(self) -> bool:
        """Whether a run got going here (or a run from before starts were marked was started here)."""
        return (self.config.exists() or bool(self.checkpoint_files())) and not self.unfinished()

    def own_files(self) -> list[Path]:
        """ganforge's files in the folder, by name: nothing else in it is ever deleted."""
        top = [self.path / name for name in self.OWN_FILES]
        return ([p for p in top if p.exists()] + [p for _, p in self.sample_grid_files()] + [p for _, p in self.checkpoint_files()]
                + self.tensorboard_files())

    def tensorboard_files(self) -> list[Path]:
        """The TensorBoard event files of `--tensorboard` (one per start or resume)."""
        return sorted(self.path.glob("events.out.tfevents.*"))

    def clear_start(self) -> None:
        """Remove what an unfinished start wrote besides its settings and log, before it starts again."""
        for path in [self.metrics, self.summary, self.losses_plot, self.generator, self.best] + [p for _, p in self.sample_grid_files()]:
            remove_file(path)

    def remove_temporaries(self) -> list[Path]:
        """Delete the temporary files of ganforge's own writes that a kill left here; returns them."""
        removed = []
        for folder in (self.path, self.samples, self.checkpoints):
            for path in folder.iterdir() if folder.is_dir() else ():
                target = temporary_target(path.name)
                if target and (target in self.OWN_FILES or _STEP_FILE.match(target)) and path.is_file():
                    remove_file(path)
                    removed.append(path)
        return removed

    def remove(self) -> None:
        """Delete the folder of a start that this process made, with ganforge's files and nothing
        else: a folder that holds anything more is left in place."""
        self.remove_temporaries()
        for path in self.own_files():
            remove_file(path)
        for folder in (self.samples, self.checkpoints, self.path):
            try:
                folder.rmdir()
            except OSError:  # not empty, or gone: leave it
                pass


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

    WINDOWS_BYTE = 1 << 20  # msvcrt locks are mandatory: lock a byte past the process id, which stays readable

    def __init__(self, folder: RunFolder):
        self.folder, self.fd = folder, None
        for _ in range(3):  # the file may be removed and made anew between opening and locking it
            fd = self._open_and_lock()
            try:
                if os.fstat(fd).st_ino == os.stat(folder.lock_file).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        else:
            raise GanforgeError(f"{folder} keeps changing under ganforge; is another program deleting it?")
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:  # the id only names the holder; the lock holds without it
            pass
        self.fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)  # a Run never trained still lets go

    def _open_and_lock(self) -> int:
        folder = self.folder
        try:
            fd = os.open(folder.lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise write_error(folder.lock_file, exc) from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                os.lseek(fd, self.WINDOWS_BYTE, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            try:
                os.lseek(fd, 0, os.SEEK_SET)
                holder = os.read(fd, 100).decode(errors="replace").split() or ["?"]
            except OSError:
                holder = ["?"]
            os.close(fd)
            raise GanforgeError(f"{folder} is being trained by process {holder[0]}; wait for it to finish, or stop it "
                                f"(Ctrl-C there, or kill {holder[0]}) and then resume.") from None
        return fd

    def release(self) -> None:
        if self.fd is not None:
            if fcntl is None:
                os.lseek(self.fd, self.WINDOWS_BYTE, os.SEEK_SET)
                msvcrt.locking(self.fd, msvcrt.LK_UNLCK, 1)
            self._finalizer.detach()
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None
