"""Which files to lint: files as given, folders walked (skipping VCS and virtualenv folders)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import PurePath

from .errors import SourceError

__all__ = ["DEFAULT_EXCLUDES", "discover"]

# ruff's default exclusions: tool caches, VCS metadata, virtualenvs and build output.
DEFAULT_EXCLUDES = (
    ".bzr", ".direnv", ".eggs", ".git", ".hg", ".mypy_cache", ".nox", ".pytest_cache",
    ".ruff_cache", ".svn", ".tox", ".venv", "__pycache__", "__pypackages__", "_build",
    "build", "dist", "node_modules", "site-packages", "venv",
)  # fmt: skip


def discover(
    paths: Sequence[str], exclude: Sequence[str] = ()
) -> tuple[list[str], list[SourceError], list[str]]:
    """Files to lint, paths that do not exist, and notices (folders without Python files).

    Files named explicitly are linted whatever their suffix (pre-commit passes scripts with a
    Python shebang too) unless an ``exclude`` glob matches them.
    """
    files: list[str] = []
    errors: list[SourceError] = []
    notices: list[str] = []
    for path in paths:
        if _excluded(path, exclude):
            continue
        if os.path.isdir(path):
            found = _walk(path, exclude)
            if not found:
                notices.append(f"{path}: no Python files found")
            files.extend(found)
        elif os.path.exists(path):
            files.append(path)
        else:
            errors.append(SourceError(path, "no such file or folder"))
    return list(dict.fromkeys(files)), errors, notices


def _walk(root: str, exclude: Sequence[str]) -> list[str]:
    found: list[str] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in DEFAULT_EXCLUDES
            and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg"))
            and not _excluded(os.path.join(folder, d), exclude)
        )
        for name in sorted(names):
            path = os.path.join(folder, name)
            if name.endswith(".py") and not _excluded(path, exclude):
                found.append(path)
    return found


def _excluded(path: str, patterns: Sequence[str]) -> bool:
    # A glob may name a file or folder ("*_pb2.py", "legacy") or a path ("src/gen/*").
    posix = PurePath(path).as_posix().removeprefix("./")
    name = PurePath(path).name
    return any(fnmatch.fnmatch(posix, p) or fnmatch.fnmatch(name, p) for p in patterns)
