"""The codemod (``migrate-trial``) and the linter (``lint-trial``); never imports torch.

Attributes are loaded on first use so that ``import migrate`` costs nothing: the linter runs
as a pre-commit hook, where start-up time is most of the run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import MigrateError, SourceError, UsageError
    from .findings import Finding
    from .lint import LintResult, lint_paths, lint_source
    from .transform import MigrationResult, migrate_source

__all__ = [
    "Finding",
    "LintResult",
    "MigrateError",
    "MigrationResult",
    "SourceError",
    "UsageError",
    "lint_paths",
    "lint_source",
    "migrate_source",
]

_HOMES = {
    "Finding": "findings",
    "LintResult": "lint",
    "MigrateError": "errors",
    "MigrationResult": "transform",
    "SourceError": "errors",
    "UsageError": "errors",
    "lint_paths": "lint",
    "lint_source": "lint",
    "migrate_source": "transform",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
