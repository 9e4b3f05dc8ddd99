"""Several validation loaders returned by the module or the trial (LA203)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import libcst as cst

from shim.hooks import HOOKS

from ..classes import Kind
from ._base import Candidate, small_statements

__all__ = ["COVERS", "check"]

COVERS = frozenset({"several validation loaders"})
_BUILDERS = {Kind.MODULE: "val_dataloader", Kind.TRIAL: "build_validation_data_loader"}


def check(defs: Sequence[cst.FunctionDef], kind: Kind) -> Iterator[Candidate]:
    builder = _BUILDERS[kind]
    for fn in defs:
        if fn.name.value != builder:
            continue
        for stmt in small_statements(fn.body):
            value = stmt.value if isinstance(stmt, cst.Return) else None
            if value is not None and _several(value):
                subject = f"returning several validation loaders from `{builder}`"
                yield Candidate(value, HOOKS["several validation loaders"], subject)


def _several(value: cst.BaseExpression) -> bool:
    # Only literal collections are certain; a variable may hold a single loader.
    if isinstance(value, cst.List | cst.Tuple | cst.Dict | cst.Set):
        elements = value.elements
        return len(elements) > 1 or any(
            isinstance(e, cst.StarredElement | cst.StarredDictElement) for e in elements
        )
    return isinstance(value, cst.ListComp | cst.DictComp | cst.SetComp)
