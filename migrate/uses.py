"""What a trial's LightningModule needs of ``core_loop.py``, read from the source.

The trial's class body names the module class it builds (``MNISTLike(...)``, through the file's
imports); the class and its bases are looked up in the trial's file and the files beside it,
down to Lightning's ``LightningModule``. Whatever cannot be read that way (a base from another
package, a module made by a factory function) gives :class:`Uses`' defaults: the whole template.
A one-optimizer or scheduler-free loop also checks at run time what it was written for.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import libcst as cst

from .classes import ClassInfo, Kind, find_classes, kind_of_name, references
from .specialise import Uses
from .walk import iter_nodes

__all__ = ["module_uses"]

_FULL_PRECISION = frozenset({"32", "32-true", "64", "64-true"})


@dataclass(frozen=True)
class _Chain:
    """A module class and its user-written bases, down to Lightning's; ``None`` if unreadable."""

    name: str
    path: str
    classes: tuple[cst.ClassDef, ...]


def module_uses(path: str, trial: ClassInfo, classes: list[ClassInfo]) -> Uses:
    """``trial``: the LightningAdapter subclass of the file at ``path`` (its ``classes``)."""
    mixed = _mixed_precision(trial.node)
    chains: list[_Chain] = []
    for dotted in sorted(references(trial)):
        head, _, name = dotted.rpartition(".")
        if not name[:1].isupper() or head.split(".")[0] in _NOT_USER_CODE:
            continue  # functions, attributes, torch's or Lightning's own classes
        found = _find(head, name, path, classes)
        chain = _chain(*found, (path, classes), frozenset()) if found is not None else None
        if chain is _UNKNOWN:
            return Uses(mixed_precision=mixed)
        if isinstance(chain, _Chain):
            chains.append(chain)
    if not chains:
        return Uses(mixed_precision=mixed)  # a module from elsewhere: the whole template
    hooks = frozenset(
        stmt.name.value
        for chain in chains
        for node in chain.classes
        for stmt in node.body.body
        if isinstance(stmt, cst.FunctionDef)
    )
    return Uses(
        several_optimizers=any(_takes_optimizer_idx(c) for c in chains),
        lr_schedulers=any(_may_schedule(c) for c in chains),
        mixed_precision=mixed,
        hooks=hooks,
        modules=tuple(f"`{c.name}` ({Path(c.path).name})" for c in chains),
    )


_UNKNOWN = object()  # a class that may be a module class this analysis cannot read
# Roots whose classes are never the user's module (a base from them is not a module base).
_NOT_USER_CODE = frozenset(
    {"torch", "numpy", "np", "determined", "pytorch_lightning", "lightning", "torchmetrics"}
) | frozenset(sys.stdlib_module_names)


def _find(
    head: str, name: str, path: str, classes: list[ClassInfo]
) -> tuple[ClassInfo, str] | None:
    """The class ``head.name`` in this file (no ``head``) or in the file beside it that
    ``import head`` finds; None when neither holds it."""
    if head:
        other = _sibling(head, path)
        if other is None:
            return None
        path, classes = other, _classes_of(other)
    found = next((c for c in classes if c.name == name), None)
    return (found, path) if found is not None else None


def _sibling(module: str, path: str) -> str | None:
    """The file that ``import module`` finds beside ``path`` (relative imports included)."""
    folder = Path(path).parent
    dots = len(module) - len(module.lstrip("."))
    for _ in range(max(dots - 1, 0)):
        folder = folder.parent
    base = folder.joinpath(*module.lstrip(".").split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return str(candidate)
    return None


@functools.lru_cache(maxsize=256)
def _classes_of(path: str) -> list[ClassInfo]:
    try:
        return find_classes(cst.parse_module(Path(path).read_bytes()))
    except (OSError, cst.ParserSyntaxError):
        return []


def _chain(
    info: ClassInfo,
    path: str,
    trial_file: tuple[str, list[ClassInfo]],
    seen: frozenset[tuple[str, str]],
) -> object:
    """``info``'s :class:`_Chain` if it is a module class; None if it is not one;
    ``_UNKNOWN`` if a base cannot be read (another package's, a cycle)."""
    if (path, info.name) in seen:
        return _UNKNOWN
    seen = seen | {(path, info.name)}
    nodes: list[cst.ClassDef] = [info.node]
    is_module = False
    for base in info.bases:
        kind = kind_of_name(base)
        if kind is Kind.MODULE:
            is_module = True
            continue
        head, _, name = base.rpartition(".")
        if kind is not None or head.split(".")[0] in _NOT_USER_CODE or base in _BUILTIN_BASES:
            continue  # a data module's, torch's or Python's base: not a module base
        here = trial_file[1] if path == trial_file[0] else _classes_of(path)
        found = _find(head, name, path, here)
        if found is None:
            return _UNKNOWN
        parent = _chain(*found, trial_file, seen)
        if parent is _UNKNOWN:
            return _UNKNOWN
        if isinstance(parent, _Chain):
            is_module = True
            nodes.extend(parent.classes)
    return _Chain(info.name, path, tuple(nodes)) if is_module else None


_BUILTIN_BASES = frozenset({"object", "Generic", "Protocol"})


def _takes_optimizer_idx(chain: _Chain) -> bool:
    for node in chain.classes:
        for stmt in node.body.body:
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "training_step":
                params = stmt.params
                names = [p.name.value for p in (*params.posonly_params, *params.params)]
                return "optimizer_idx" in names or isinstance(params.star_arg, cst.Param)
    return True  # training_step from somewhere unread


def _may_schedule(chain: _Chain) -> bool:
    """False only when configure_optimizers visibly returns bare optimizers."""
    for node in chain.classes:
        for stmt in node.body.body:
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "configure_optimizers":
                code = cst.Module([]).code_for_node(stmt)
                if "sched" in code.lower():
                    return True
                returns = list(iter_nodes(stmt.body, (cst.Return,)))
                return not returns or any(not _bare_optimizer(r) for r in returns)
    return True


def _bare_optimizer(node: cst.CSTNode) -> bool:
    """``return opt``, ``return Adam(...)``, ``return [g, d]``, ``return [g, d], []``."""
    value = node.value if isinstance(node, cst.Return) else None
    if isinstance(value, cst.Tuple) and len(value.elements) == 2:
        first, second = (e.value for e in value.elements)
        if isinstance(second, cst.List | cst.Tuple) and not second.elements:
            value = first
    if isinstance(value, cst.List | cst.Tuple):
        return all(isinstance(e.value, cst.Call | cst.Name) for e in value.elements)
    return isinstance(value, cst.Call | cst.Name)


def _mixed_precision(trial: cst.ClassDef) -> bool:
    """Whether the trial asks for ``precision=16`` / bf16 (a keyword or ``self.precision``)."""
    for node in iter_nodes(trial.body, (cst.Arg, cst.Assign)):
        value: cst.BaseExpression | None = None
        if isinstance(node, cst.Arg) and node.keyword is not None:
            value = node.value if node.keyword.value == "precision" else None
        elif isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
            if any(isinstance(t, cst.Attribute) and t.attr.value == "precision" for t in targets):
                value = node.value
        if value is not None and _literal(value) not in _FULL_PRECISION:
            return True
    return False


def _literal(value: cst.BaseExpression) -> str | None:
    if isinstance(value, cst.Integer):
        return value.value
    if isinstance(value, cst.SimpleString) and isinstance(value.evaluated_value, str):
        return value.evaluated_value
    return None
