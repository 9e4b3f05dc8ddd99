"""Writing migrated files: atomically (a temporary file beside the target, renamed over it) with
the target's mode kept, and copies of a whole folder for ``--out``."""

from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .engine import FileChange
from .errors import SourceError, UsageError

__all__ = ["apply", "check_out_dir", "copy_tree", "unified_diff", "write_atomic"]


def write_atomic(path: str, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` in one rename; an existing file's mode is kept, a new one
    gets the usual ``0o666 & ~umask``."""
    target = Path(path)
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def apply(changes: Sequence[FileChange], root: str | None = None, out: str | None = None) -> None:
    """Write ``changes`` in place, or (``out``) under ``out`` at their place relative to
    ``root``. An OS error names the file; files written before it stay written."""
    for change in changes:
        target = change.path
        if out is not None and root is not None:
            target = os.path.join(out, os.path.relpath(change.path, root))
        try:
            write_atomic(target, change.after, change.mode)
        except OSError as exc:
            raise SourceError(
                target,
                f"cannot write the file: {exc.strerror or exc}; nothing else was changed "
                "after it, fix the cause and rerun",
            ) from None


def check_out_dir(out: str, source: str) -> None:
    """``--out DIR``: DIR must be new or empty, and not inside the folder it copies."""
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(
            f"--out {out}: the folder is not empty (or is a file); pass a new or empty folder"
        )
    src = Path(source).resolve()
    if path.resolve() == src or src in path.resolve().parents:
        raise UsageError(f"--out {out} is inside {source}; pass a folder outside it")


def copy_tree(source: str, out: str) -> None:
    """A copy of ``source`` (bytes, modes and times), less caches and VCS folders."""
    ignore = shutil.ignore_patterns("__pycache__", ".git", ".hg", ".svn", ".mypy_cache",
                                    ".ruff_cache", ".pytest_cache")  # fmt: skip
    shutil.copytree(source, out, symlinks=True, ignore=ignore, dirs_exist_ok=True)


def unified_diff(change: FileChange) -> str:
    """The change as a unified diff (``--- path`` / ``+++ path``; a new file from /dev/null)."""
    before = _text(change.before) if change.before is not None else ""
    after = _text(change.after)
    old = change.path if change.before is not None else "/dev/null"
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=old,
        tofile=change.path,
    )
    out = []
    for line in lines:
        out.append(
            line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n"
        )
    return "".join(out)


def _text(data: bytes) -> str:
    from .engine import _encoding

    return data.decode(_encoding(data), errors="replace")
