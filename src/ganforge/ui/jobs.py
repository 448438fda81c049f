"""Training from the web page: each run is a `ganforge train` child process, as in a terminal.

    jobs = Jobs(Path("runs"))
    run = jobs.start(["digits", "--steps", "200"], name="digits")   # waits until it has started
    jobs.stop()                                                     # Ctrl-C: it checkpoints and exits
    jobs.resume(run)

A child process keeps the page responsive, and a crash in training cannot take the page down.
Children run in a session of their own, so closing the browser (or stopping the page's server)
does not stop them. One training at a time: a second start is refused with a sentence.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ganforge.errors import GanforgeError
from ganforge.gan.rundir import RunFolder, create_run_folder
from ganforge.images import is_image_file


@dataclass
class Job:
    run_dir: Path
    process: subprocess.Popen
    log: Path  # the child's stderr: progress bar and messages
    created: bool  # whether the page made the run folder (and removes it if the start fails)
    started_at: float = field(default_factory=time.time)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def last_error(self) -> str | None:
        """The child's one-line `Error: ...` (or `Stopped ...`), once it has ended badly."""
        if self.running or self.process.returncode == 0:
            return None
        try:
            lines = [line.strip() for line in self.log.read_text(errors="replace").replace("\r", "\n").splitlines() if line.strip()]
        except OSError:
            lines = []
        said = [line for line in lines if line.startswith(("Error:", "Stopped"))]
        return (said[-1] if said else (lines[-1] if lines else f"training ended with exit code {self.process.returncode}")).removeprefix("Error: ")


class Jobs:
    def __init__(self, runs_root: Path):
        self.root = Path(runs_root)
        self.logs = self.root / ".ui-logs"
        self.job: Job | None = None
        self._lock = threading.Lock()

    def busy(self) -> Job | None:
        return self.job if self.job is not None and self.job.running else None

    @staticmethod
    def _log_size(folder: RunFolder) -> int:
        try:
            return folder.log.stat().st_size
        except OSError:
            return 0

    def _started(self, folder: RunFolder, log_before: int) -> bool:
        """Training has begun: a start has its first checkpoint, a resume has said so in log.txt."""
        return self._log_size(folder) > log_before and bool(folder.checkpoints.is_dir() and folder.checkpoint_files())

    def _spawn(self, args: list[str], run_dir: Path, created: bool, wait: float) -> Path:
        before = self._log_size(RunFolder(run_dir))
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{run_dir.name}-{int(time.time() * 1000)}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log, "wb") as err:
            process = subprocess.Popen([sys.executable, "-m", "ganforge", "train", *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=err, env=env, start_new_session=True)
        self.job = job = Job(run_dir, process, log, created)
        folder = RunFolder(run_dir)
        deadline = time.time() + wait
        while time.time() < deadline and job.running and not self._started(folder, before):
            time.sleep(0.1)
        if not job.running and job.process.returncode not in (0, 130, 143):
            message = job.last_error()
            if created and not folder.checkpoint_files():
                shutil.rmtree(run_dir, ignore_errors=True)  # the page made it; nothing of a run is in it
            raise GanforgeError(message)
        return run_dir

    def start(self, args: list[str], name: str, uploads: list[Path] = (), wait: float = 120) -> Path:
        """Start `ganforge train ARGS --run-dir RUNS/NNNNN-name`; `uploads` (pictures or zips) are put
        in the run's uploads/ folder, which becomes the data. Returns the run folder once training
        has written its first checkpoint (or GanforgeError with the command's own message)."""
        with self._lock:
            if (job := self.busy()) is not None:
                raise GanforgeError(f"{job.run_dir.name} is training; stop it first (one training at a time).")
            run = create_run_folder(self.root, name).path
            try:
                if uploads:
                    folder = unpack_uploads(uploads, run / "uploads")
                    args = [str(folder), *args]
            except BaseException:
                shutil.rmtree(run, ignore_errors=True)
                raise
            return self._spawn([*args, "--run-dir", str(run)], run, True, wait)

    def resume(self, run_dir: Path, steps: int | None = None, wait: float = 120) -> Path:
        with self._lock:
            if (job := self.busy()) is not None:
                raise GanforgeError(f"{job.run_dir.name} is training; stop it first (one training at a time).")
            return self._spawn(["--resume", str(run_dir), *(["--steps", str(steps)] if steps else [])], Path(run_dir), False, wait)

    def stop(self, timeout: float = 120) -> Path | None:
        """Ctrl-C for the running training: it writes a checkpoint and exits. Returns its run folder."""
        job = self.busy()
        if job is None:
            return None
        job.process.send_signal(signal.SIGINT)
        try:
            job.process.wait(timeout)
        except subprocess.TimeoutExpired:
            job.process.send_signal(signal.SIGINT)  # a second one stops at once; the newest checkpoint stays
            job.process.wait(30)
        return job.run_dir


def unpack_uploads(files: list[Path], folder: Path) -> Path:
    """Copy uploaded pictures, and the pictures inside uploaded zips, into `folder`.

    Zip members are written under their base name only, so no member can land outside `folder`."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for file in map(Path, files):
        if file.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(file) as z:
                    for i, member in enumerate(z.infolist()):
                        name = Path(member.filename).name
                        if member.is_dir() or not is_image_file(Path(name)) or name.startswith("."):
                            continue
                        (folder / f"{i:05d}-{name}").write_bytes(z.read(member))
                        count += 1
            except zipfile.BadZipFile:
                raise GanforgeError(f"{file.name} is not a readable zip file.") from None
        elif is_image_file(file):
            shutil.copyfile(file, folder / file.name)
            count += 1
        else:
            raise GanforgeError(f"{file.name} is neither a picture nor a zip of pictures.")
    if count == 0:
        raise GanforgeError(f"the upload holds no pictures ({', '.join(Path(f).name for f in files)}).")
    return folder
