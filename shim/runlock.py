"""One ``run-trial`` at a time per run: a lock that the chief holds for the whole run.

The lock file, ``<storage>/runs/<run>.lock``, sits beside the run's folder rather than in it, so
``--fresh`` (which renames that folder) never moves it while a run holds it. It is a POSIX record
lock (``fcntl.lockf``): the kernel drops it when the holding process ends, however it ends, so a
killed run never blocks the next one. ``flock`` would not do: its lock is shared with forked
children, and data loader workers outlive a SIGKILLed parent by seconds. A POSIX lock is per
process, so this module also refuses a second lock on the same file from the same process. The
file holds the holder's pid, host and start time, for the message the second run prints.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pathlib
import socket
import time
import warnings
from typing import Any

from shim.errors import UserInputError

__all__ = ["RunLock", "RunLocked", "lock_path"]

# The holder writes its details right after it takes the lock; a run that loses the race by a
# few milliseconds waits this long for them before naming an unknown holder.
_DETAILS_WAIT_S = 2.0
_held: dict[str, RunLock] = {}


class RunLocked(UserInputError):
    """Another ``run-trial`` holds this run's lock."""


def lock_path(run_dir: pathlib.Path) -> pathlib.Path:
    return run_dir.with_name(f"{run_dir.name}.lock")


class RunLock:
    """The lock on one run; ``acquire`` it, ``release`` it (or use it as a context manager)."""

    def __init__(self, path: pathlib.Path, fd: int | None, details: dict[str, Any]) -> None:
        self.path = path
        self.details = details
        self._fd = fd

    @classmethod
    def acquire(cls, run_dir: pathlib.Path) -> RunLock:
        """Lock ``run_dir``'s run, or raise ``RunLocked`` naming the process that holds it."""
        path = lock_path(run_dir)
        key = os.path.realpath(path)
        if key in _held:
            raise RunLocked(_locked_message(_held[key].details, run_dir))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except (PermissionError, IsADirectoryError) as exc:
            raise UserInputError(
                f"cannot open the run's lock file {path} ({exc.strerror}); make it a file you "
                "can write, or pass --checkpoint-storage DIR with a folder you can write to"
            ) from exc
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)  # this process holds no lock on the file, so closing releases nothing
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise RunLocked(_locked_message(_holder(path), run_dir)) from None
            # E.g. ENOLCK: a network file system without a lock service. Running unlocked
            # is what every version before this one did; say so rather than refuse to run.
            warnings.warn(
                f"cannot lock {path} ({exc.strerror}); two run-trial processes on this run "
                "would not be detected",
                RuntimeWarning,
                stacklevel=2,
            )
            return cls(path, None, {})
        details = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        with contextlib.suppress(OSError):  # the details only make a message better
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(details) + "\n").encode(), 0)
        lock = cls(path, fd, details)
        _held[key] = lock
        return lock

    def release(self) -> None:
        if self._fd is None:
            return
        _held.pop(os.path.realpath(self.path), None)
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # a file left behind names no one
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(path: pathlib.Path) -> dict[str, Any]:
    deadline = time.monotonic() + _DETAILS_WAIT_S
    while True:
        try:
            details = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(details, dict) and "pid" in details:
                return details
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.02)


def _locked_message(details: dict[str, Any], run_dir: pathlib.Path) -> str:
    pid = details.get("pid")
    if pid is None:
        return (
            f"another run-trial is running this trial in {run_dir} (it holds "
            f"{lock_path(run_dir)}); wait for it to finish, or stop it and run again"
        )
    host = details.get("host") or "?"
    where = "" if host == socket.gethostname() else f" on {host}"
    return (
        f"another run-trial (pid {pid}{where}, started {details.get('started', '?')}) is "
        f"running this trial in {run_dir}; wait for it to finish, or stop it (kill {pid}"
        f"{where}) and run again"
    )
