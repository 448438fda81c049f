"""Every file ganforge writes goes through here: atomically, and with one clear sentence when the
system says no.

A whole file is written to a temporary name beside its target, flushed to disk, then renamed over
it, so a killed process leaves the old file or the complete new one, never half a file under a
real name; `temporary_target` recognises the temporary files such a kill leaves. An OSError (a full
disk, a file-size limit, no permission, a read-only disk) becomes a GanforgeError that names the
file and the reason, which the command line prints as one line; what was saved before stays.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from pathlib import Path

from ganforge.errors import GanforgeError

# ".name.<8 random characters>.tmp": what atomic_write leaves when it is killed mid-write (earlier
# releases used tempfile.mkstemp's names, which have the same shape).
_TEMPORARY = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.tmp$")

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the file would be larger than this system allows (a file-size limit)",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the disk is read-only",
    errno.ENOTDIR: "part of the path is a file, not a folder",
    errno.EISDIR: "a folder of that name is in the way",
    errno.EEXIST: "a file of that name is in the way",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ENOENT: "its folder does not exist",
}
if hasattr(errno, "EDQUOT"):
    _REASONS[errno.EDQUOT] = "the disk quota is used up"


def reason(exc: OSError) -> str:
    """A few words on why the system refused."""
    return _REASONS.get(exc.errno) or (exc.strerror or type(exc).__name__).lower()


def write_error(path: Path, exc: OSError) -> GanforgeError:
    return GanforgeError(f"could not write {path}: {reason(exc)}.")


def make_folder(path: str | os.PathLike) -> Path:
    """`path` and its parents, created if missing; GanforgeError when that is not possible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GanforgeError(f"could not create the folder {path}: {reason(exc)}.") from None
    return path


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call write(file_object) on a temporary file beside `path`, fsync, then rename onto `path`.

    `write` should only write: torch.save and the like are best run into memory first, since
    they hide a failed write behind errors of their own."""
    path = Path(path)
    make_folder(path.parent)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
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
    except OSError as exc:
        raise write_error(path, exc) from None
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def append_text(path: str | os.PathLike, text: str) -> None:
    """Add `text` at the end of a log-like file (a kill can cut its last line short)."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise write_error(Path(path), exc) from None


def temporary_target(name: str) -> str | None:
    """For the name of a temporary file that atomic_write (or an earlier release) made, the name of
    the file it was to become; None for any other name."""
    m = _TEMPORARY.match(name)
    return m.group(1) if m else None


def remove_file(path: str | os.PathLike) -> None:
    """Delete `path` if it is there; GanforgeError when the system refuses."""
    try:
        Path(path).unlink(missing_ok=True)
    except OSError as exc:
        raise GanforgeError(f"could not remove {path}: {reason(exc)}.") from None
