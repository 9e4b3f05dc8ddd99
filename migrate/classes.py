"""Find LightningModule and LightningAdapter subclasses from source alone.

Bases are resolved through the file's imports (any alias), through classes of the same file, and
(by :func:`resolve_kinds`) through classes of other files linted together. Nothing is imported.
"""

from __future__ import annotations

import builtins
import enum
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import libcst as cst

from .walk import iter_nodes

__all__ = [
    "ClassInfo",
    "Kind",
    "ModuleClasses",
    "find_classes",
    "kind_of_name",
    "reached_modules",
    "references",
    "resolve_kinds",
]

_LIGHTNING_ROOTS = frozenset({"pytorch_lightning", "lightning"})
_ADAPTER_ROOTS = frozenset({"determined", "shim"})
# Bases from these roots can never be a class of a linted file, so they need no cross-file look.
_NEVER_LOCAL = (
    frozenset(sys.stdlib_module_names)
    | frozenset(dir(builtins))
    | _LIGHTNING_ROOTS
    | _ADAPTER_ROOTS
    | {"torch", "numpy"}
)


class Kind(enum.Enum):
    MODULE = "LightningModule"
    TRIAL = "LightningAdapter"
    DATAMODULE = "LightningDataModule"


@dataclass
class ClassInfo:
    """A class statement: its name, node, bases as dotted names, (once known) its kind, and the
    names the file's imports bind (``{"pl": "pytorch_lightning", "GAN": "gan.GAN"}``)."""

    name: str
    node: cst.ClassDef
    bases: tuple[str, ...]
    kind: Kind | None = None
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def may_be_local_subclass(self) -> bool:
        """Whether a base could still be a module or trial class of another linted file."""
        return self.kind is None and any(
            base.lstrip(".").split(".")[0] not in _NEVER_LOCAL for base in self.bases
        )


@dataclass(frozen=True)
class ModuleClasses:
    """What other files need to know about one file's classes: names, bases and kinds, and the
    names each class that is (or may be) a trial refers to, for :func:`reached_modules`."""

    path: str
    kinds: Mapping[str, Kind]
    pending: Mapping[str, tuple[str, ...]]
    bases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    references: Mapping[str, frozenset[str]] = field(default_factory=dict)


def kind_of_name(qualified: str) -> Kind | None:
    """The kind of an external base from its dotted name, e.g. ``lightning.LightningModule``."""
    parts = qualified.split(".")
    if parts[-1] == "LightningModule" and parts[0] in _LIGHTNING_ROOTS:
        return Kind.MODULE
    if parts[-1] == "LightningDataModule" and parts[0] in _LIGHTNING_ROOTS:
        return Kind.DATAMODULE
    if parts[-1] == "LightningAdapter" and parts[0] in _ADAPTER_ROOTS:
        return Kind.TRIAL
    return None


def find_classes(module: cst.Module) -> list[ClassInfo]:
    """Every module-level class (also under ``if``/``try``/``with``), with its kind if local."""
    aliases: dict[str, str] = {}
    stars: list[str] = []
    classes: list[ClassInfo] = []
    for stmt in _top_level(module.body):
        if isinstance(stmt, cst.SimpleStatementLine | cst.SimpleStatementSuite):
            for small in stmt.body:
                _record_import(small, aliases, stars)
        elif isinstance(stmt, cst.ClassDef):
            bases = tuple(
                q for q in (_qualify(arg.value, aliases) for arg in stmt.bases) if q is not None
            )
            classes.append(ClassInfo(stmt.name.value, stmt, bases, names=aliases))
    _resolve_locally(classes, stars)
    return classes


def resolve_kinds(files: Sequence[ModuleClasses]) -> dict[tuple[str, str], Kind]:
    """Kinds of pending classes whose base is a module or trial class of another linted file."""
    known: dict[tuple[str, str], Kind] = {}
    for info in files:
        known.update(((info.path, name), kind) for name, kind in info.kinds.items())
    suffixes = {info.path: _module_parts(info.path) for info in files}
    changed = True
    while changed:  # a chain of bases across files resolves one link per round
        changed = False
        for info in files:
            for name, bases in info.pending.items():
                if (info.path, name) in known:
                    continue
                for base in bases:
                    kind = _lookup(base, files, suffixes, known)
                    if kind is not None:
                        known[info.path, name] = kind
                        changed = True
                        break
    return known


def references(info: ClassInfo) -> frozenset[str]:
    """The dotted names a class body refers to, through the file's imports (``gan.GAN``)."""
    found: set[str] = set()
    for node in iter_nodes(info.node.body, (cst.Name, cst.Attribute)):
        dotted = _dotted(node) if isinstance(node, cst.Name | cst.Attribute) else None
        if dotted is not None:
            found.add(_qualify_dotted(dotted, info.names))
    return frozenset(found)


def reached_modules(
    files: Sequence[ModuleClasses], kinds: Mapping[tuple[str, str], Kind]
) -> set[tuple[str, str]]:
    """The module classes a trial of ``files`` refers to (e.g. builds and wraps), and their
    module base classes: ``(path, class name)``."""
    # Module classes by name: a reference is looked up among the few classes of that name.
    homes: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for info in files:
        for name in info.bases:
            if info.kinds.get(name) is Kind.MODULE or name in info.pending:
                homes.setdefault(name, []).append((info.path, _module_parts(info.path)))
    by_path = {info.path: info for info in files}
    work: list[tuple[str, str]] = []
    for info in files:
        for name, names in info.references.items():
            if kinds.get((info.path, name)) is Kind.TRIAL:
                work.extend(_locate(ref, info.path, homes) for ref in names)
    reached: set[tuple[str, str]] = set()
    while work:
        key = work.pop()
        if key in reached or kinds.get(key) is not Kind.MODULE:
            continue
        reached.add(key)
        bases = by_path[key[0]].bases.get(key[1], ())
        work.extend(_locate(base, key[0], homes) for base in bases)
    return reached


def _locate(
    name: str, where: str, homes: Mapping[str, list[tuple[str, tuple[str, ...]]]]
) -> tuple[str, str]:
    """The ``(path, class)`` that ``name``, as written in the file ``where``, may denote."""
    module, _, cls = name.lstrip(".").rpartition(".")
    wanted = tuple(module.split(".")) if module else ()
    for path, parts in homes.get(cls, ()):
        if (path == where and not wanted) or (wanted and parts[-len(wanted) :] == wanted):
            return path, cls
    return "", name


def _qualify_dotted(dotted: str, aliases: Mapping[str, str]) -> str:
    head, _, rest = dotted.partition(".")
    target = aliases.get(head, head)
    return f"{target}.{rest}" if rest else target


def _top_level(
    body: Sequence[cst.BaseStatement],
) -> Iterator[cst.BaseStatement | cst.SimpleStatementSuite]:
    for stmt in body:
        if isinstance(stmt, cst.If | cst.Try | cst.With):
            blocks: list[cst.BaseSuite] = [stmt.body]
            if isinstance(stmt, cst.If) and stmt.orelse is not None:
                blocks.append(stmt.orelse.body)
            if isinstance(stmt, cst.Try):
                blocks.extend(handler.body for handler in stmt.handlers)
            for block in blocks:
                if isinstance(block, cst.IndentedBlock):
                    yield from _top_level(block.body)
                elif isinstance(block, cst.SimpleStatementSuite):
                    yield block
        else:
            yield stmt


def _record_import(
    small: cst.BaseSmallStatement, aliases: dict[str, str], stars: list[str]
) -> None:
    if isinstance(small, cst.Import):
        for alias in small.names:
            dotted = _dotted(alias.name)
            if dotted is None:
                continue
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                aliases[alias.asname.name.value] = dotted
            else:  # `import a.b` binds `a`
                head = dotted.split(".")[0]
                aliases[head] = head
    elif isinstance(small, cst.ImportFrom):
        module = _dotted(small.module) if small.module is not None else None
        source = "." * len(small.relative) + (module or "")
        if isinstance(small.names, cst.ImportStar):
            stars.append(source)
            return
        for alias in small.names:
            name = _dotted(alias.name)
            if name is None:
                continue
            bound = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                bound = alias.asname.name.value
            aliases[bound] = f"{source}.{name}" if not source.endswith(".") else source + name


def _dotted(node: cst.BaseExpression | None) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr.value}"
    return None


def _qualify(expr: cst.BaseExpression, aliases: Mapping[str, str]) -> str | None:
    dotted = _dotted(expr)
    return None if dotted is None else _qualify_dotted(dotted, aliases)


def _resolve_locally(classes: list[ClassInfo], stars: Sequence[str]) -> None:
    by_name = {info.name: info for info in classes}
    for info in classes:
        info.kind = _external_kind(info.bases, stars)
    changed = True
    while changed:  # base classes may come after their subclasses in the file
        changed = False
        for info in classes:
            if info.kind is not None:
                continue
            for base in info.bases:
                local = by_name.get(base)
                if local is not None and local.kind is not None:
                    info.kind, changed = local.kind, True
                    break


def _external_kind(bases: Sequence[str], stars: Sequence[str]) -> Kind | None:
    for base in bases:
        kind = kind_of_name(base)
        if kind is None and "." not in base:  # maybe bound by `from pytorch_lightning import *`
            kind = next((k for s in stars if (k := kind_of_name(f"{s}.{base}"))), None)
        if kind is not None:
            return kind
    return None


def _module_parts(path: str) -> tuple[str, ...]:
    parts = path.replace("\\", "/").removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return tuple(p for p in parts if p not in ("", "."))


def _lookup(
    base: str,
    files: Sequence[ModuleClasses],
    suffixes: Mapping[str, tuple[str, ...]],
    known: Mapping[tuple[str, str], Kind],
) -> Kind | None:
    # `from models import Base` gives "models.Base": the class Base of a file whose path ends
    # in models.py (or models/__init__.py). Relative imports match the same way.
    module, _, name = base.lstrip(".").rpartition(".")
    wanted = tuple(module.split(".")) if module else ()
    for info in files:
        parts = suffixes[info.path]
        if wanted and parts[-len(wanted) :] != wanted:
            continue
        kind = known.get((info.path, name))
        if kind is not None:
            return kind
    return None
