"""What a rule reports, and a statement walker the rules share."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from shim.hooks import Hook

__all__ = ["Candidate", "iter_nodes", "small_statements"]


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


# Fields that only hold whitespace, punctuation or plain strings: skipping them makes a walk
# over a class body some twenty times faster than a libcst visitor.
_SKIPPED = (
    "whitespace", "lpar", "rpar", "comma", "leading_lines", "lines_after", "header", "footer",
    "semicolon", "colon", "dot", "equal", "trailing_whitespace", "operator", "star", "asname",
    "default_indent", "default_newline", "encoding", "has_trailing_newline", "newline", "indent",
    "prefix",
)  # fmt: skip
_FIELDS: dict[type[cst.CSTNode], tuple[str, ...]] = {}


def _fields(kind: type[cst.CSTNode]) -> tuple[str, ...]:
    names = _FIELDS.get(kind)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(kind) if not f.name.startswith(_SKIPPED))
        _FIELDS[kind] = names
    return names


def iter_nodes(root: cst.CSTNode, kinds: tuple[type[cst.CSTNode], ...]) -> Iterator[cst.CSTNode]:
    """Every node of a type in ``kinds`` under ``root`` (depth first, children in any order)."""
    stack: list[object] = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, cst.CSTNode):
            continue
        if isinstance(node, kinds):
            yield node
        for name in _fields(type(node)):
            value = getattr(node, name)
            if isinstance(value, cst.CSTNode):
                stack.append(value)
            elif isinstance(value, tuple | list):
                stack.extend(value)
