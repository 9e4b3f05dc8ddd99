"""The one error base of the runtime, and the kinds ``run-trial`` tells apart.

``run-trial`` exits 2 (no restart) for an error in the user's input, 1 after ``max_restarts``
restarts when the trial's own code fails, and 1 with a "this is a bug" line when this package
fails (``shim.failures`` decides which from the class and the traceback):

- ``UserInputError``, and any other ``ShimError``: the package checked something the user gave
  (config, flags, trial file, a damaged checkpoint) and refuses it; the message says what to do.
- ``ApiMisuse``: a call this package refuses. The caller made the mistake: the user's when the
  trial's code made the call, this package's own when no trial code is on the stack.
- ``InternalError``: an invariant of this package is broken.
"""

__all__ = ["ApiMisuse", "InternalError", "ShimError", "UserInputError"]


class ShimError(Exception):
    """An error this package raises on purpose; the message says what, where and what to do."""


class UserInputError(ShimError):
    """The user's input is wrong (config, flags, trial file, a damaged checkpoint or
    ``trial.json``): ``run-trial`` exits 2 and does not restart."""


class ApiMisuse(ShimError):
    """A call this package refuses (wrong arguments, wrong rank, wrong order): the user's
    mistake when the trial's code called, a bug of this package when its own code did."""


class InternalError(ShimError):
    """A broken invariant of this package: a bug, reported as one."""
