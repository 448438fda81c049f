"""The exceptions a user meets.

GanforgeError: a problem with the user's input or files, explained in one sentence; the CLI
prints its message as a single line and exits with code 2, and Python callers can catch it.
Interrupted: Ctrl-C or SIGTERM arrived; the CLI says so in one line and exits with 128 + signal.
"""

import contextlib
import signal


class GanforgeError(Exception):
    """A problem with the user's input or files, explained in one sentence."""


class Interrupted(KeyboardInterrupt):
    """A signal asked the process to stop (KeyboardInterrupt for SIGINT, this for SIGTERM too)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def raise_interrupted(signum, frame):
    """A signal handler that stops the process the way Ctrl-C does, cleaning up on the way out."""
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_held():
    """Ctrl-C and SIGTERM that arrive inside are acted on when it ends, as Interrupted: for work that
    must not stop halfway (a clean-up), or cannot (torch's C++ start-up, which a KeyboardInterrupt
    aborts with "terminate called after throwing pybind11::error_already_set")."""
    pending = []
    try:
        previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals are not ours to hold
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pending:
            raise Interrupted(pending[0])
