"""The exceptions a user meets.

GanforgeError: a problem with the user's input or files, explained in one sentence; the CLI
prints its message as a single line and exits with code 2, and Python callers can catch it.
Interrupted: Ctrl-C or SIGTERM arrived; the CLI says so in one line and exits with 128 + signal.
"""

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
