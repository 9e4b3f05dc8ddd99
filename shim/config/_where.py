"""Where a config value came from (file and line), and the error that says so."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shim.errors import ShimError

__all__ = ["ConfigError", "KeyPath", "Where", "format_key", "suggest"]

KeyPath = tuple[str | int, ...]


class ConfigError(ShimError):
    """An invalid experiment config or hyperparameter override.

    ``path`` is the config file as given (or a label such as ``<config>``), ``line`` the 1-based
    line when known, ``key`` the dotted key path (``searcher.metric``) when one key is at fault.
    """

    def __init__(
        self, message: str, *, path: str, line: int | None = None, key: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.key = key


def format_key(path: KeyPath) -> str:
    """``("searcher", "max_length")`` -> ``searcher.max_length``; indexes as ``labels[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def suggest(word: object, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for a close match among ``options``, else an empty string."""
    matches = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f"; did you mean {matches[0]!r}?" if matches else ""


@dataclass(frozen=True)
class Where:
    """The config's source and the line of each key, to prefix messages with ``file:line``."""

    source: str
    lines: Mapping[KeyPath, int] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int | None:
        # A missing key has no line of its own, so point at its nearest parent that has one.
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def prefix(self, path: KeyPath) -> str:
        line = self.line(path)
        return self.source if line is None else f"{self.source}:{line}"

    def error(self, path: KeyPath, message: str) -> ConfigError:
        return ConfigError(
            f"{self.prefix(path)}: {message}",
            path=self.source,
            line=self.line(path),
            key=format_key(path) or None,
        )
