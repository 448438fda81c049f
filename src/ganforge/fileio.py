"""Writing files so that a killed process never leaves half a file under a real name."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def atomic_write(path: Path, write) -> Path:
    """Call write(file_object) on a temporary file beside `path`, fsync, then rename onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    # Mode 0o666 passes through the process's umask, as for any ordinary new file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))
