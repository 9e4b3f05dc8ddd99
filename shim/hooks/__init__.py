"""The hook table: what run-trial and a migrated Core API script honour of a legacy trial.

One table decides support everywhere: the runtime raises or warns from it, ``lint-trial`` flags
from it and the README's compatibility table is generated from it, so they never disagree.
Importing this package stays cheap (no torch, no Lightning) because the linter runs as a
pre-commit hook. Regenerate the README block with ``python -m shim.hooks --write-readme``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from ._model import Hook, Scope, Status
from ._table import FAMILIES

__all__ = [
    "HOOKS",
    "README_END",
    "README_START",
    "Hook",
    "Scope",
    "Status",
    "by_scope",
    "render_markdown_table",
    "render_readme_block",
    "rules_by_code",
    "sync_readme",
]

README_START = "<!-- hooks-table:start -->"
README_END = "<!-- hooks-table:end -->"

_LEGEND = """\
*supported*: `run-trial` calls it as Lightning's `Trainer.fit` would. *ignored*: never called;
`run-trial` warns. *rejected*: `run-trial` stops before training. *legacy*: runs under
`run-trial`, but breaks on Lightning 2.x or has no Core API form. `lint-trial PATH...` (also a
pre-commit hook) reports every code but LA0xx; silence one line with `# noqa: CODE`. This block is
generated from `shim/hooks`: `python -m shim.hooks --write-readme`.
"""

HOOKS: Mapping[str, Hook] = MappingProxyType(
    {hook.name: hook for family in FAMILIES for hook in family.hooks()}
)


def rules_by_code() -> Mapping[str, tuple[Hook, ...]]:
    """The reported entries (everything but SUPPORTED) grouped by code, in code order."""
    return MappingProxyType(_by_code(hook for hook in HOOKS.values() if hook.reported))


def by_scope(scope: Scope) -> tuple[Hook, ...]:
    """All entries of one scope, e.g. every LightningModule method the table knows."""
    return tuple(hook for hook in HOOKS.values() if hook.scope is scope)


def render_markdown_table() -> str:
    """The README compatibility table: one row per code, generated from ``HOOKS``."""
    rows = [
        "| Code | Status | Hooks and patterns | Why | What to do |",
        "|---|---|---|---|---|",
    ]
    for code, hooks in _by_code(HOOKS.values()).items():
        first = hooks[0]
        names = ", ".join(f"`{hook.name}`" for hook in hooks)
        fix = first.fix or "-"
        rows.append(f"| {code} | {first.status.value} | {names} | {first.reason} | {fix} |")
    return "\n".join(rows) + "\n"


def render_readme_block() -> str:
    """What goes between the README markers: a legend, then the table."""
    return _LEGEND + "\n" + render_markdown_table()


def sync_readme(readme: Path, *, write: bool) -> bool:
    """Compare (and with ``write``, rewrite) the README's table block; True if it was current."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{readme}: no {README_START} ... {README_END} block to fill")
    updated = text[: start + len(README_START)] + "\n" + render_readme_block() + text[end:]
    if updated == text:
        return True
    if write:
        readme.write_text(updated, encoding="utf-8")
    return False


def _by_code(hooks: Iterable[Hook]) -> dict[str, tuple[Hook, ...]]:
    groups: dict[str, list[Hook]] = {}
    for hook in hooks:
        groups.setdefault(hook.code, []).append(hook)
    return {code: tuple(groups[code]) for code in sorted(groups)}
