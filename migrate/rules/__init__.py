"""The lint rules: each reports entries of the hook table (``shim.hooks``) found in a class.

A rule yields :class:`Candidate` nodes; the engine turns them into findings at the node's line
and column. ``COVERED`` names every table entry some rule can report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import libcst as cst

from ..classes import ClassInfo, Kind
from . import bodies, legacy_api, loaders, methods, signatures
from ._base import Candidate

__all__ = ["COVERED", "Candidate", "check_class", "trigger_tokens"]

COVERED: frozenset[str] = (
    methods.COVERS | signatures.COVERS | loaders.COVERS | bodies.COVERS | legacy_api.COVERS
)


def trigger_tokens(text: str) -> frozenset[str]:
    """The words in ``text`` that make the body rules worth running (most files have none)."""
    return bodies.trigger_tokens(text) | legacy_api.trigger_tokens(text)


def check_class(
    info: ClassInfo,
    kind: Kind,
    tokens: frozenset[str],
    datamodules: Mapping[str, cst.ClassDef] | None = None,
) -> list[Candidate]:
    """Everything the table reports in the class ``info``, read as a class of ``kind``;
    ``datamodules`` are the file's LightningDataModule classes by name."""
    found: list[Candidate] = []
    if kind is not Kind.DATAMODULE:
        defs = _method_defs(info.node)
        found.extend([*methods.check(defs, kind), *loaders.check(defs, kind)])
        if kind is Kind.MODULE:
            found.extend(signatures.check(defs))
        if tokens - legacy_api.WORDS:
            found.extend(bodies.check(info.node, kind, tokens))
    if tokens & legacy_api.WORDS:
        found.extend(legacy_api.check(info, kind, datamodules or {}))
    return found


def _method_defs(node: cst.ClassDef) -> Sequence[cst.FunctionDef]:
    body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
    return [stmt for stmt in body if isinstance(stmt, cst.FunctionDef)]
