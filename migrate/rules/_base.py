"""What a rule reports, and a statement walker the rules share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from shim.hooks import Hook

from ..walk import iter_nodes, iter_nodes_in_order

__all__ = ["Candidate", "iter_nodes", "iter_nodes_in_order", "small_statements"]


@dataclass(frozen=True)
class Candidate:
    """``hook`` found at ``node``; ``subject`` names it in the message, e.g. `` `test_step` ``."""

    node: cst.CSTNode
    hook: Hook
    subject: str


_BLOCKS = ("body", "orelse", "handlers", "finalbody", "cases")


def small_statements(node: cst.CSTNode) -> Iterator[cst.BaseSmallStatement]:
    """The simple statements of a block, in nested blocks too, but not in nested defs/classes."""
    if isinstance(node, cst.SimpleStatementLine | cst.SimpleStatementSuite):
        yield from node.body
        return
    for field in _BLOCKS:
        child = getattr(node, field, None)
        if child is None:
            continue
        children = child if isinstance(child, tuple | list) else (child,)
        for item in children:
            if isinstance(item, cst.FunctionDef | cst.ClassDef):
                continue
            if isinstance(item, cst.CSTNode):
                yield from small_statements(item)
