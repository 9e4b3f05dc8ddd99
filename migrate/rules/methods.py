"""Overridden hooks the table does not support (LA101-LA110, LA303-LA305, LA308, LA401, LA405)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import libcst as cst

from shim.hooks import Scope, by_scope

from ..classes import Kind
from ._base import Candidate

__all__ = ["COVERS", "check"]

_TABLES = {
    Kind.MODULE: {h.name: h for h in by_scope(Scope.MODULE_METHOD) if h.reported},
    Kind.TRIAL: {h.name: h for h in by_scope(Scope.TRIAL_METHOD) if h.reported},
}
COVERS = frozenset(_TABLES[Kind.MODULE]) | frozenset(_TABLES[Kind.TRIAL])


def check(defs: Sequence[cst.FunctionDef], kind: Kind) -> Iterator[Candidate]:
    table = _TABLES[kind]
    for fn in defs:
        hook = table.get(fn.name.value)
        if hook is not None:
            yield Candidate(fn.name, hook, f"`{fn.name.value}`")
