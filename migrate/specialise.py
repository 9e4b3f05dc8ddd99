"""``core_loop.py`` for one module: the template with what the module does not use left out.

The template (``templates/core_loop.py``) is complete, tested Python that serves any module. Its
feature code sits under ``if FLAG:`` (the module-level flags ``SEVERAL_OPTIMIZERS``,
``LR_SCHEDULERS``, ``MIXED_PRECISION``) and its hook calls go through ``X.overrides("hook")`` and
``X.hook("hook", ...)``. Specialising folds those to constants from :class:`Uses`, keeps the
branch that runs, drops hook calls of hooks the module does not override, and then removes what
nothing refers to any more (private functions, ``_Module`` methods, imports). Conditions that
mention a flag must be free of side effects: a folded ``x and FLAG`` loses ``x``.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import libcst as cst

from .walk import iter_nodes

__all__ = ["TEMPLATE", "Uses", "specialise"]

TEMPLATE = Path(__file__).with_name("templates") / "core_loop.py"
_FLAGS = ("SEVERAL_OPTIMIZERS", "LR_SCHEDULERS", "MIXED_PRECISION")
_LEFT_OUT = "_LEFT_OUT_HOOKS"
_NO_CONTEXT = "_NO_AUTOCAST"  # `with _NO_AUTOCAST:` is a block that needs no `with`
# Classes whose methods only the loop calls: one nothing calls any more can go. The others
# (_Trainer, _Log, ...) are what the user's module reads, by names this file never spells.
_INTERNAL_CLASSES = frozenset({"_Module", "_Run", "_Batches"})


@dataclass(frozen=True)
class Uses:
    """What a module needs of the loop. The defaults (everything) serve any module."""

    several_optimizers: bool = True
    lr_schedulers: bool = True
    mixed_precision: bool = True
    hooks: frozenset[str] | None = None  # the hooks the module overrides; None: not known
    modules: tuple[str, ...] = ()  # "Class (file.py)" of the modules this was read from

    def union(self, other: Uses) -> Uses:
        """What two trials sharing one ``core_loop.py`` need together."""
        hooks = None if self.hooks is None or other.hooks is None else self.hooks | other.hooks
        return Uses(
            self.several_optimizers or other.several_optimizers,
            self.lr_schedulers or other.lr_schedulers,
            self.mixed_precision or other.mixed_precision,
            hooks,
            tuple(sorted({*self.modules, *other.modules})),
        )

    @property
    def flags(self) -> dict[str, bool]:
        return dict(
            zip(
                _FLAGS,
                (self.several_optimizers, self.lr_schedulers, self.mixed_precision),
                strict=True,
            )
        )

    def describe(self) -> str:
        """One sentence for the generated file's docstring."""
        if self == replace(Uses(), modules=self.modules):
            return "This copy keeps the whole template: it serves any LightningModule."
        parts = [
            "several optimizers" if self.several_optimizers else "one optimizer",
            "LR schedulers" if self.lr_schedulers else "no LR scheduler",
            "mixed precision" if self.mixed_precision else "full precision",
            "every hook" if self.hooks is None else "only the hooks the module overrides",
        ]
        subject = " and ".join(self.modules) if self.modules else "the migrated module"
        return (
            f"This copy is written for {subject}: {', '.join(parts)}. "
            "A module that needs more stops with a message naming what is missing."
        )


def specialise(uses: Uses) -> bytes:
    """The template for ``uses``, as the bytes to write beside the migrated script."""
    return _specialise(uses, TEMPLATE.read_bytes())


@functools.lru_cache(maxsize=32)
def _specialise(uses: Uses, template: bytes) -> bytes:
    module = cst.parse_module(template)
    fold = _Fold(uses)
    module = module.visit(fold).visit(_SetLeftOut(fold.left_out))
    module = _without_dead_code(module)
    module = _with_note(module, uses.describe())
    return module.code.encode(module.encoding)


class _Fold(cst.CSTTransformer):
    """Folds flags and known hooks bottom-up, keeping the branch that runs."""

    def __init__(self, uses: Uses) -> None:
        self.flags = uses.flags
        self.hooks = uses.hooks
        self.left_out: set[str] = set()

    def _hook_known_absent(self, call: cst.Call, method: str) -> bool | None:
        """For ``X.<method>("name", ...)``: True when the module does not override ``name``."""
        func = call.func
        if self.hooks is None or not isinstance(func, cst.Attribute) or func.attr.value != method:
            return None
        if not call.args or not isinstance(call.args[0].value, cst.SimpleString):
            return None
        name = call.args[0].value.evaluated_value
        if not isinstance(name, str) or name in self.hooks:
            return False
        self.left_out.add(name)
        return True

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if updated.value in self.flags:
            return cst.Name(str(self.flags[updated.value]))
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        absent = self._hook_known_absent(updated, "overrides")
        return updated if absent is None else cst.Name(str(not absent))

    def leave_UnaryOperation(
        self, original: cst.UnaryOperation, updated: cst.UnaryOperation
    ) -> cst.BaseExpression:
        value = _constant(updated.expression)
        if isinstance(updated.operator, cst.Not) and value is not None:
            return cst.Name(str(not value))
        return updated

    def leave_BooleanOperation(
        self, original: cst.BooleanOperation, updated: cst.BooleanOperation
    ) -> cst.BaseExpression:
        left, right = _constant(updated.left), _constant(updated.right)
        decisive = isinstance(updated.operator, cst.Or)  # the value that decides: True for `or`
        if left is not None:
            return cst.Name(str(decisive)) if left is decisive else updated.right
        if right is not None:
            return cst.Name(str(decisive)) if right is decisive else updated.left
        return updated

    def leave_IfExp(self, original: cst.IfExp, updated: cst.IfExp) -> cst.BaseExpression:
        value = _constant(updated.test)
        if value is None:
            return updated
        return updated.body if value else updated.orelse

    def leave_If(
        self, original: cst.If, updated: cst.If
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement] | cst.RemovalSentinel:
        value = _constant(updated.test)
        if value is None:
            if updated.orelse is None and _only_pass(updated.body):
                return cst.RemoveFromParent()  # its hooks were all left out
            return updated
        if value:
            return _inline(updated.body, updated.leading_lines)
        orelse = updated.orelse
        if orelse is None:
            return cst.RemoveFromParent()
        if isinstance(orelse, cst.If):
            return orelse.with_changes(leading_lines=updated.leading_lines)
        return _inline(orelse.body, updated.leading_lines)

    def leave_With(
        self, original: cst.With, updated: cst.With
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        items = updated.items
        item = items[0].item if len(items) == 1 else None
        if isinstance(item, cst.Name) and item.value == _NO_CONTEXT:
            return _inline(updated.body, updated.leading_lines)
        return updated

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        small = original.body[0] if len(original.body) == 1 else None
        target = small.target if isinstance(small, cst.AnnAssign) else None
        if isinstance(target, cst.Name) and target.value in self.flags:  # a flag's own line
            return cst.RemoveFromParent()
        small = updated.body[0] if len(updated.body) == 1 else None
        call = small.value if isinstance(small, cst.Expr) else None
        if isinstance(call, cst.Call) and self._hook_known_absent(call, "hook"):
            return cst.RemoveFromParent()
        return updated

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        body = _reachable(updated.body)
        if not body:
            body = [cst.SimpleStatementLine([cst.Pass()])]
        return updated.with_changes(body=body)


def _only_pass(block: cst.BaseSuite) -> bool:
    body = block.body
    if isinstance(block, cst.IndentedBlock):
        if len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine):
            return False
        body = body[0].body
    return len(body) == 1 and isinstance(body[0], cst.Pass)


class _SetLeftOut(cst.CSTTransformer):
    """``_LEFT_OUT_HOOKS = frozenset()`` becomes the hooks whose calls were left out, so a
    module that overrides one later stops instead of silently missing it."""

    def __init__(self, names: set[str]) -> None:
        self.names = sorted(names)

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine:
        small = updated.body[0]
        target = small.target if isinstance(small, cst.AnnAssign) else None
        if not isinstance(target, cst.Name) or target.value != _LEFT_OUT or not self.names:
            return updated
        items = "".join(f'        "{name}",\n' for name in self.names)
        text = f"{_LEFT_OUT}: frozenset[str] = frozenset(\n    {{\n{items}    }}\n)\n"
        statement = cst.parse_statement(text)
        assert isinstance(statement, cst.SimpleStatementLine)
        return statement.with_changes(leading_lines=updated.leading_lines)


def _constant(expr: cst.BaseExpression) -> bool | None:
    if isinstance(expr, cst.Name) and expr.value in ("True", "False"):
        return expr.value == "True"
    return None


def _inline(
    block: cst.BaseSuite, leading: Sequence[cst.EmptyLine]
) -> cst.FlattenSentinel[cst.BaseStatement]:
    statements = list(block.body) if isinstance(block, cst.IndentedBlock) else []
    if isinstance(block, cst.SimpleStatementSuite):
        statements = [cst.SimpleStatementLine(block.body)]
    if statements and leading:
        first = statements[0]
        own = getattr(first, "leading_lines", ())  # every statement kind has them
        statements[0] = first.with_changes(leading_lines=[*leading, *own])
    return cst.FlattenSentinel(statements)


def _reachable(body: Sequence[cst.BaseStatement]) -> list[cst.BaseStatement]:
    """The statements up to the first that always leaves the block (a bare return or raise)."""
    out: list[cst.BaseStatement] = []
    for stmt in body:
        out.append(stmt)
        if isinstance(stmt, cst.SimpleStatementLine) and any(
            isinstance(small, cst.Return | cst.Raise) for small in stmt.body
        ):
            break
    return out


# -- what nothing refers to ----------------------------------------------------------------------


def _without_dead_code(module: cst.Module) -> cst.Module:
    while True:
        pruned = module.visit(_Prune(_name_counts(module)))
        if pruned.deep_equals(module):
            return pruned
        module = pruned


def _name_counts(node: cst.CSTNode, *, attributes: bool = True) -> Counter[str]:
    """How often each name is read (a ``Name`` that is not what a def, class or import binds,
    an attribute unless ``attributes`` is False, a string) under ``node``."""
    collector = _Uses(attributes)
    node.visit(collector)
    return collector.names


class _Uses(cst.CSTVisitor):
    def __init__(self, attributes: bool = True) -> None:
        self.names: Counter[str] = Counter()
        self.attributes = attributes

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        if not self.attributes:  # `self.lm` does not read a local `lm`
            node.value.visit(self)
            return False
        return True

    def visit_Name(self, node: cst.Name) -> None:
        self.names[node.value] += 1

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._visit_children_except(node, node.name)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self._visit_children_except(node, node.name)
        return False

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        if isinstance(node.evaluated_value, str):
            self.names[node.evaluated_value] += 1

    def _visit_children_except(self, node: cst.CSTNode, name: cst.Name) -> None:
        for child in node.children:
            if child is not name:
                child.visit(self)


class _Prune(cst.CSTTransformer):
    """Removes private module-level names, loop-internal methods and imports nobody reads."""

    def __init__(self, used: Counter[str]) -> None:
        self.used = used
        self.depth = 0
        self.classes: list[str] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.classes.append(node.name.value)
        self.depth += 1
        return True

    def leave_ClassDef(
        self, original: cst.ClassDef, updated: cst.ClassDef
    ) -> cst.ClassDef | cst.RemovalSentinel:
        self.classes.pop()
        self.depth -= 1
        if self.depth == 0 and self._unused_private(updated.name.value):
            return cst.RemoveFromParent()
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.depth += 1
        return False  # nothing inside a function is pruned

    def leave_FunctionDef(
        self, original: cst.FunctionDef, updated: cst.FunctionDef
    ) -> cst.FunctionDef | cst.RemovalSentinel:
        self.depth -= 1
        name = updated.name.value
        in_class = self.depth == 1 and bool(self.classes)
        prunable = name.startswith("_") and self.depth == 0
        prunable |= in_class and (name.startswith("_") or self.classes[-1] in _INTERNAL_CLASSES)
        # Read elsewhere: more often in the file than inside itself (`torch.autocast` in
        # `def autocast` is not a use of it).
        unread = prunable and self.used[name] <= _name_counts(updated.body)[name]
        if unread and not name.startswith("__"):
            return cst.RemoveFromParent()
        return updated.with_changes(body=updated.body.visit(_UnusedLocals(updated)))

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        if self.depth != 0 or len(updated.body) != 1:
            return updated
        small = updated.body[0]
        if isinstance(small, cst.Assign | cst.AnnAssign):
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else []
            if isinstance(small, cst.AnnAssign):
                targets = [small.target]
            names = [t.value for t in targets if isinstance(t, cst.Name)]
            if names and all(self._unused_private(n, own=1) for n in names):
                return cst.RemoveFromParent()
        if isinstance(small, cst.Import | cst.ImportFrom) and not isinstance(
            small.names, cst.ImportStar
        ):
            module = small.module if isinstance(small, cst.ImportFrom) else None
            if isinstance(module, cst.Name) and module.value == "__future__":
                return updated
            kept = [alias for alias in small.names if self._bound(alias) in self.used]
            if not kept:
                return cst.RemoveFromParent()
            if len(kept) != len(small.names):
                kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                return updated.with_changes(body=[small.with_changes(names=kept)])
        return updated

    def _unused_private(self, name: str, own: int = 0) -> bool:
        """``own``: the uses that are its own definition (an assignment's target)."""
        return name.startswith("_") and not name.startswith("__") and self.used[name] <= own

    @staticmethod
    def _bound(alias: cst.ImportAlias) -> str:
        if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
            return alias.asname.name.value
        node: cst.BaseExpression = alias.name
        while isinstance(node, cst.Attribute):
            node = node.value
        return node.value if isinstance(node, cst.Name) else ""


class _UnusedLocals(cst.CSTTransformer):
    """Drops a function's assignments to locals nothing reads (a branch that read them was
    left out); in a tuple target an unread name becomes ``_``. Values with calls are kept."""

    def __init__(self, function: cst.FunctionDef) -> None:
        self.counts = _name_counts(function.body, attributes=False)
        self.assigned: Counter[str] = Counter()  # times a name is a plain assignment's target
        for node in iter_nodes(function.body, (cst.Assign, cst.AnnAssign)):
            targets: list[cst.BaseExpression] = []
            if isinstance(node, cst.Assign):
                targets = [t.target for t in node.targets]
            elif isinstance(node, cst.AnnAssign):
                targets = [node.target]
            for target in targets:
                names = target.elements if isinstance(target, cst.Tuple) else []
                for value in [target, *(e.value for e in names)]:
                    if isinstance(value, cst.Name):
                        self.assigned[value.value] += 1

    def _unread(self, target: cst.BaseExpression) -> bool:
        """Only ever assigned to: every use of the name is an assignment's target."""
        if not isinstance(target, cst.Name):
            return False
        return self.counts[target.value] == self.assigned[target.value]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # a nested function has locals of its own

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.RemovalSentinel:
        small = updated.body[0] if len(updated.body) == 1 else None
        annotated = small if isinstance(small, cst.AnnAssign) else None
        if annotated and annotated.value and self._unread(annotated.target):
            return updated if _has_call(annotated.value) else cst.RemoveFromParent()
        if not isinstance(small, cst.Assign) or len(small.targets) != 1:
            return updated
        target = small.targets[0].target
        if self._unread(target) and not _has_call(small.value):
            return cst.RemoveFromParent()
        if isinstance(target, cst.Tuple) and any(self._unread(e.value) for e in target.elements):
            elements = [
                e.with_changes(value=cst.Name("_")) if self._unread(e.value) else e
                for e in target.elements
            ]
            new = small.with_changes(
                targets=[
                    small.targets[0].with_changes(target=target.with_changes(elements=elements))
                ]
            )
            return updated.with_changes(body=[new])
        return updated


_PURE_CALLS = frozenset({"len", "isinstance", "bool", "int", "float", "str"})


def _has_call(node: cst.CSTNode) -> bool:
    """Whether evaluating ``node`` may do something (a call other than a few pure builtins)."""
    return any(
        not (isinstance(call.func, cst.Name) and call.func.value in _PURE_CALLS)
        for call in iter_nodes(node, (cst.Call,))
        if isinstance(call, cst.Call)
    )


def _with_note(module: cst.Module, note: str) -> cst.Module:
    """The docstring's first paragraph, then ``note``."""
    first = module.body[0] if module.body else None
    if not isinstance(first, cst.SimpleStatementLine):
        return module
    expr = first.body[0]
    if not isinstance(expr, cst.Expr) or not isinstance(expr.value, cst.SimpleString):
        return module
    text = expr.value.value
    quote = text[-3:]
    body = text[3:-3].rstrip("\n")
    lines = _wrap(note, 99)
    new = f"{quote}{body}\n\n" + "\n".join(lines) + f"\n{quote}"
    return module.with_changes(
        body=[
            first.with_changes(body=[expr.with_changes(value=cst.SimpleString(new))]),
            *module.body[1:],
        ]
    )


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines
