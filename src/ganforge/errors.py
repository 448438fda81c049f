"""The one exception type a user's mistake turns into.

The CLI prints its message as a single line and exits with code 2; Python callers can catch it.
"""


class GanforgeError(Exception):
    """A problem with the user's input or files, explained in one sentence."""
