"""Errors of the ``migrate`` package; all derive from :class:`MigrateError`."""

from __future__ import annotations

__all__ = ["MigrateError", "SourceError", "UsageError"]


class MigrateError(Exception):
    """Base of every error raised by ``migrate-trial`` and ``lint-trial``."""


class UsageError(MigrateError):
    """The command line or a call asked for something that does not exist (exit code 2)."""


class SourceError(MigrateError):
    """A file could not be read, decoded or parsed; ``str()`` reads ``path[:line:col]: why``."""

    def __init__(self, path: str, reason: str, line: int | None = None, column: int | None = None):
        self.path, self.reason, self.line, self.column = path, reason, line, column
        where = path if line is None else f"{path}:{line}:{column or 1}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[type[SourceError], tuple[str, str, int | None, int | None]]:
        # Raised in worker processes with --jobs; keep the fields when pickled back.
        return (SourceError, (self.path, self.reason, self.line, self.column))
