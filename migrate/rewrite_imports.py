"""The import block of a migrated trial: drop the ``determined`` imports the rewrite left unused,
add the ones the script needs, each in its isort section (standard library, third party, first
party) so that the result passes ruff's ``I`` rules when the original did.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence

import libcst as cst

from .walk import iter_nodes

__all__ = ["add_import", "remove_unused", "used_names"]

_FUTURE, _STDLIB, _THIRD, _FIRST = range(4)


def used_names(statements: Iterable[cst.CSTNode]) -> set[str]:
    """Names read anywhere in ``statements`` (not as attributes, not in imports), and the
    strings that could name one (``__all__``, string annotations)."""
    attrs: set[int] = set()
    names: list[cst.Name] = []
    used: set[str] = set()
    for stmt in statements:
        if _is_import_line(stmt):
            continue
        for node in iter_nodes(stmt, (cst.Attribute, cst.Name, cst.SimpleString, cst.Import,
                                      cst.ImportFrom)):  # fmt: skip
            if isinstance(node, cst.Attribute):
                attrs.add(id(node.attr))
            elif isinstance(node, cst.Name):
                names.append(node)
            elif isinstance(node, cst.SimpleString):
                used.add(node.value[len(node.prefix) + 1 : -1].strip("'\"").split(".")[0])
    used.update(name.value for name in names if id(name) not in attrs)
    return used


def _is_import_line(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and all(
        isinstance(small, cst.Import | cst.ImportFrom) for small in stmt.body
    )


def _dotted(node: cst.BaseExpression) -> str:
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    parts.append(node.value if isinstance(node, cst.Name) else cst.Module([]).code_for_node(node))
    return ".".join(reversed(parts))


def _bound(alias: cst.ImportAlias, straight: bool) -> str:
    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
        return alias.asname.name.value
    dotted = _dotted(alias.name)
    return dotted.split(".")[0] if straight else dotted


def _import_module(small: cst.Import | cst.ImportFrom, alias: cst.ImportAlias) -> str:
    if isinstance(small, cst.Import):
        return _dotted(alias.name)
    module = _dotted(small.module) if small.module is not None else ""
    return "." * len(small.relative) + module


def remove_unused(
    body: Sequence[cst.BaseStatement], used: Collection[str]
) -> tuple[list[cst.BaseStatement], list[str]]:
    """``body`` without the top-level ``determined`` imports whose names ``used`` lacks; a
    removed statement's comments and blank lines move to the statement after it."""
    out: list[cst.BaseStatement] = []
    removed: list[str] = []
    carried: list[cst.EmptyLine] = []
    for stmt in body:
        if not _is_import_line(stmt):
            out.append(_carry(stmt, carried))
            carried = []
            continue
        assert isinstance(stmt, cst.SimpleStatementLine)
        smalls: list[cst.BaseSmallStatement] = []
        for small in stmt.body:
            assert isinstance(small, cst.Import | cst.ImportFrom)
            kept = _kept_aliases(small, used, removed)
            if kept is None:
                smalls.append(small)
            elif kept:
                kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                smalls.append(small.with_changes(names=kept))
        if smalls:
            smalls[-1] = smalls[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
            out.append(_carry(stmt.with_changes(body=smalls), carried))
            carried = []
        else:
            carried = [*carried, *stmt.leading_lines]
    return out, removed


def _kept_aliases(
    small: cst.Import | cst.ImportFrom, used: Collection[str], removed: list[str]
) -> list[cst.ImportAlias] | None:
    """The aliases to keep, or ``None`` to keep the statement as it is."""
    if isinstance(small.names, cst.ImportStar):
        return None
    straight = isinstance(small, cst.Import)
    kept: list[cst.ImportAlias] = []
    for alias in small.names:
        module = _import_module(small, alias)
        if module.split(".")[0] == "determined" and _bound(alias, straight) not in used:
            name = _dotted(alias.name)
            removed.append(name if straight else f"{module}.{name}")
        else:
            kept.append(alias)
    return None if len(kept) == len(small.names) else kept


def _carry(stmt: cst.BaseStatement, carried: list[cst.EmptyLine]) -> cst.BaseStatement:
    if not carried:
        return stmt
    lines = list(_line(stmt).leading_lines)
    # A removed import's blank line separated sections; the next statement keeps one, not two.
    if any(line.comment is None for line in carried) and lines and lines[0].comment is None:
        lines = lines[1:]
    return _line(stmt).with_changes(leading_lines=[*carried, *lines])


def _category(stmt: cst.SimpleStatementLine, local: Collection[str]) -> int:
    small = stmt.body[0]
    if isinstance(small, cst.ImportFrom):
        if small.relative:
            return _FIRST
        module = _dotted(small.module) if small.module is not None else ""
        if module == "__future__":
            return _FUTURE
    else:
        assert isinstance(small, cst.Import)
        module = _dotted(small.names[0].name)
    root = module.split(".")[0]
    if root in local:
        return _FIRST
    return _STDLIB if root in sys.stdlib_module_names else _THIRD


def _sort_key(stmt: cst.BaseStatement) -> tuple[int, str]:
    assert isinstance(stmt, cst.SimpleStatementLine)
    small = stmt.body[0]
    if isinstance(small, cst.Import):
        return 0, _dotted(small.names[0].name).lower()
    assert isinstance(small, cst.ImportFrom)
    module = _dotted(small.module) if small.module is not None else ""
    return 1, ("." * len(small.relative) + module).lower()


def add_import(
    body: list[cst.BaseStatement], dotted: str, asname: str | None, local: Collection[str]
) -> list[cst.BaseStatement]:
    """``body`` with ``import dotted [as asname]`` in its section of the leading import block."""
    alias = cst.ImportAlias(
        name=_name_expr(dotted),
        asname=cst.AsName(cst.Name(asname)) if asname else None,
    )
    new = cst.SimpleStatementLine([cst.Import(names=[alias])])
    category = _category(new, local)
    start = 1 if body and _is_docstring(body[0]) else 0
    end = start
    while end < len(body) and _is_import_line(body[end]):
        end += 1
    sections: list[tuple[int, int, int]] = []  # (first, last + 1, category)
    for index in range(start, end):
        stmt = body[index]
        assert isinstance(stmt, cst.SimpleStatementLine)
        if index == start or _opens_section(stmt):
            sections.append((index, index + 1, _category(stmt, local)))
        else:
            first, _, kind = sections[-1]
            sections[-1] = (first, index + 1, kind)
    for first, last, kind in sections:
        if kind == category:
            return _insert_in_section(body, first, last, new)
    after = [s for s in sections if s[2] > category]
    if after:
        return _insert_section(body, after[0][0], new)
    return _insert_section(body, end, new)


def _line(stmt: cst.BaseStatement) -> cst.SimpleStatementLine | cst.BaseCompoundStatement:
    assert isinstance(stmt, cst.SimpleStatementLine | cst.BaseCompoundStatement)
    return stmt


def _name_expr(dotted: str) -> cst.Name | cst.Attribute:
    head, *rest = dotted.split(".")
    expr: cst.Name | cst.Attribute = cst.Name(head)
    for part in rest:
        expr = cst.Attribute(value=expr, attr=cst.Name(part))
    return expr


def _is_docstring(stmt: cst.BaseStatement) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, cst.SimpleString | cst.ConcatenatedString)
    )


def _opens_section(stmt: cst.SimpleStatementLine) -> bool:
    return any(line.comment is None for line in stmt.leading_lines)


def _split_blank(lines: Sequence[cst.EmptyLine]) -> tuple[list[cst.EmptyLine], list[cst.EmptyLine]]:
    """Leading blank lines, and the rest (comments that belong to the statement)."""
    count = 0
    while count < len(lines) and lines[count].comment is None:
        count += 1
    return list(lines[:count]), list(lines[count:])


def _insert_in_section(
    body: list[cst.BaseStatement], first: int, last: int, new: cst.SimpleStatementLine
) -> list[cst.BaseStatement]:
    key = _sort_key(new)
    at = first
    while at < last and _sort_key(_line(body[at])) < key:
        at += 1
    if at == first:  # the new import opens the section: it takes the blank lines above it
        old = _line(body[first])
        blank, rest = _split_blank(old.leading_lines)
        new = new.with_changes(leading_lines=blank)
        body = [*body[:first], old.with_changes(leading_lines=rest), *body[first + 1 :]]
    return [*body[:at], new, *body[at:]]


def _insert_section(
    body: list[cst.BaseStatement], at: int, new: cst.SimpleStatementLine
) -> list[cst.BaseStatement]:
    """A section of its own before ``body[at]``, one blank line on each side."""
    if at < len(body):
        old = _line(body[at])
        if _is_import_line(old):
            blank, rest = _split_blank(old.leading_lines)
            new = new.with_changes(leading_lines=blank or [cst.EmptyLine()])
            old = old.with_changes(leading_lines=[cst.EmptyLine(), *rest])
        else:  # after the import block: the code keeps its own spacing
            new = new.with_changes(leading_lines=[cst.EmptyLine()])
        if at == 0:
            new = new.with_changes(leading_lines=[])
        return [*body[:at], new, old, *body[at + 1 :]]
    return [*body, new.with_changes(leading_lines=[cst.EmptyLine()] if body else [])]
