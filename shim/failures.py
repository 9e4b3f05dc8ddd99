"""Whose failure an exception is, where it happened, and how ``run-trial`` reports it.

Three kinds, told apart by the exception's class and its traceback:

- user input (exit 2, no restart): a ``ShimError`` (the package checked something the user gave
  and refuses it), or an ``ApiMisuse`` raised while the trial's code was on the stack.
- the trial (exit 1 once ``max_restarts`` restarts are spent): an exception raised in the trial's
  code or in a library (torch, Lightning) that this package or the trial called, a deliberate
  ``raise`` in this package's Determined-compatible API (the builtin types Determined raises), and
  a failure of the machine (disk full, out of memory), which a restart may get past.
- this package (exit 1, no restart): an exception whose innermost frame is this package's own
  code but not a ``raise`` statement (an ``AttributeError``, a ``TypeError`` from a bad call: a
  crash), an ``InternalError``, or an ``ApiMisuse`` with no trial code on the stack (the package
  misused its own API). Not restarted: a restart replays the same code and fails the same way,
  and the run's bookkeeping can no longer be trusted to keep checkpoints safe.

"The trial's code" is every file under the trial's folder (CONTEXT_DIR).
"""

from __future__ import annotations

import enum
import errno
import linecache
import os
import pathlib
import re
import tempfile
import time
import traceback
from dataclasses import dataclass

from shim.errors import ApiMisuse, InternalError, ShimError

__all__ = ["LOG_NAME", "Failure", "Kind", "diagnose", "trial_frame", "write_log"]

LOG_NAME = "run-trial-error.log"
_PACKAGE = os.path.dirname(os.path.realpath(__file__)) + os.sep
_LIBRARY = re.compile(r"[/\\](site|dist)-packages[/\\]")
# Failures of the machine or its set-up rather than of code: a restart may get past them (space
# or memory freed, permissions fixed by then), and their traceback would otherwise point at
# whatever code happened to write.
_MACHINE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EIO,
    errno.EROFS,
    errno.ENOMEM,
    errno.EACCES,
    errno.EPERM,
}


class Kind(enum.Enum):
    USER_INPUT = "user input"
    TRIAL = "trial"
    INTERNAL = "internal"


@dataclass(frozen=True)
class Failure:
    kind: Kind
    exc: BaseException
    where: str | None  # "file:line": the trial's frame (for internal failures: the package's)

    @property
    def exit_code(self) -> int:
        return 2 if self.kind is Kind.USER_INPUT else 1

    @property
    def restartable(self) -> bool:
        return self.kind is Kind.TRIAL

    def describe(self) -> str:
        """``file:line: Type: message`` (the type left out for the package's own errors, whose
        messages are written for the user)."""
        text = str(self.exc)
        if not isinstance(self.exc, ShimError) or isinstance(self.exc, InternalError):
            text = f"{type(self.exc).__name__}: {text}" if text else type(self.exc).__name__
        if self.where is None or self.where.rpartition(":")[0] + ":" in text:
            return text
        return f"{self.where}: {text}"


def diagnose(exc: BaseException, trial_dir: pathlib.Path | None) -> Failure:
    """The kind of ``exc`` (see the module docstring) and its most useful location."""
    frames = traceback.extract_tb(exc.__traceback__)
    in_trial = _in_folder(frames, trial_dir)
    trial_where = _location(in_trial[-1]) if in_trial else None
    if isinstance(exc, InternalError):
        return Failure(Kind.INTERNAL, exc, _innermost_in_package(frames))
    if isinstance(exc, ApiMisuse):
        if in_trial:
            return Failure(Kind.USER_INPUT, exc, trial_where)
        return Failure(Kind.INTERNAL, exc, _innermost_in_package(frames))
    if isinstance(exc, ShimError):
        return Failure(Kind.USER_INPUT, exc, trial_where)
    if _machine_failure(exc):
        return Failure(Kind.TRIAL, exc, trial_where)
    if frames and _under(frames[-1].filename, _PACKAGE) and not _is_raise(frames[-1]):
        return Failure(Kind.INTERNAL, exc, _location(frames[-1]))
    return Failure(Kind.TRIAL, exc, trial_where or (_location(frames[-1]) if frames else None))


def trial_frame(exc: BaseException, trial_dir: pathlib.Path) -> str | None:
    """``file:line`` of the innermost frame of ``exc`` in the trial's folder."""
    found = _in_folder(traceback.extract_tb(exc.__traceback__), trial_dir)
    return _location(found[-1]) if found else None


def write_log(failure: Failure, folder: pathlib.Path | None, heading: str) -> pathlib.Path | None:
    """Append the traceback to ``<folder>/run-trial-error.log`` (rank N > 0:
    ``run-trial-error.rankN.log``), or to the temp folder when ``folder`` cannot take it (a full
    disk); None when neither can."""
    rank = int(os.environ.get("RANK", "0"))
    name = LOG_NAME if rank == 0 else LOG_NAME.replace(".log", f".rank{rank}.log")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    text = f"--- {stamp} pid {os.getpid()} rank {rank}: {heading}\n" + "".join(
        traceback.format_exception(failure.exc)
    )
    fallback = pathlib.Path(tempfile.gettempdir()) / f"run-trial-error.{os.getpid()}.log"
    for path in ([folder / name] if folder is not None else []) + [fallback]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as out:
                out.write(text)
            return path
        except OSError:
            continue
    return None


def _machine_failure(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS


def _in_folder(
    frames: traceback.StackSummary, folder: pathlib.Path | None
) -> list[traceback.FrameSummary]:
    """The frames of the trial's own code: under its folder, but neither this package nor an
    installed library (a project folder may hold both, e.g. a checkout with its ``.venv``)."""
    if folder is None:
        return []
    root = os.path.realpath(folder) + os.sep
    return [
        f
        for f in frames
        if _under(f.filename, root)
        and not _under(f.filename, _PACKAGE)
        and not _LIBRARY.search(f.filename)
    ]


def _under(filename: str, folder: str) -> bool:
    return filename.startswith(folder) or os.path.realpath(filename).startswith(folder)


def _is_raise(frame: traceback.FrameSummary) -> bool:
    line = frame.line or linecache.getline(frame.filename, frame.lineno or 0)
    return line.lstrip().startswith("raise")


def _location(frame: traceback.FrameSummary) -> str:
    return f"{frame.filename}:{frame.lineno}"


def _innermost_in_package(frames: traceback.StackSummary) -> str | None:
    ours = [f for f in frames if _under(f.filename, _PACKAGE)]
    return _location(ours[-1]) if ours else None
