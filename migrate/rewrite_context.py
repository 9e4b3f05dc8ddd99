"""The statement-level rewrite of a trial: the old context's calls, ``determined.pytorch`` names,
``super().__init__`` and the TODO comments for what cannot be converted.

Names are resolved through the file's imports (``ClassInfo.names``: any alias, ``import
determined.pytorch as dp``, ``from determined import pytorch``) rather than libcst's
``QualifiedNameProvider``, which costs five times the parse and would answer the same for the
module-level imports that matter here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import libcst as cst
import libcst.matchers as m

from .classes import kind_of_name
from .todos import LINE_LENGTH, has_todo, todo_lines
from .walk import iter_nodes, iter_nodes_in_order

__all__ = ["TRIAL_CONTEXT_FIELDS", "Edits", "Todo", "TrialRewriter", "fit_line", "qualify"]

_Node = TypeVar("_Node", bound=cst.CSTNode)
Todo = tuple[str, str, str]  # code, subject (what was found), fix

DATALOADER = "determined.pytorch.DataLoader"
TRIAL_CONTEXT = "determined.pytorch.PyTorchTrialContext"
_GETTERS = {
    "get_hparams": "hparams",
    "get_data_config": "data_config",
    "get_experiment_config": "experiment_config",
    "get_per_slot_batch_size": "per_slot_batch_size",
    "get_global_batch_size": "global_batch_size",
    "get_trial_id": "trial_id",
    "get_trial_seed": "trial_seed",
}
# Reported by the lint rules (LA402, LA403, apex), whose TODOs the caller adds.
_LINTED = frozenset(
    {
        "get_tensorboard_writer",
        "configure_apex_amp",
        "wrap_model",
        "wrap_optimizer",
        "wrap_lr_scheduler",
        "wrap_scaler",
    }
)
_STEP = "read the step from the LightningModule (self.global_step, self.current_epoch)"
_CONTEXT_FIXES = {
    "get_experiment_id": "read det.get_cluster_info().trial.experiment_id in main() and pass it in",
    "get_stop_requested": "core_loop.train runs to --max-length; stop early from the module",
    "set_stop_requested": "core_loop.train runs to --max-length; stop early from the module",
    "to_device": "move tensors with .to(context.device)",
    "get_tensorboard_path": "use core_context.train.get_tensorboard_path() in main()",
    "get_enable_tensorboard_logging": "core_loop.train reports the metrics itself",
    "set_enable_tensorboard_logging": "core_loop.train reports the metrics itself",
    "get_initial_batch": _STEP,
    "current_train_batch": _STEP,
    "current_train_epoch": _STEP,
    "is_epoch_start": _STEP,
    "is_epoch_end": _STEP,
    "backward": "core_loop.train optimizes automatically; move manual steps into the module",
    "step_optimizer": "core_loop.train optimizes automatically; move manual steps into the module",
}
# core_loop.TrialContext's fields: reading them off a context needs no rewrite.
TRIAL_CONTEXT_FIELDS = frozenset(
    {
        "hparams",
        "data_config",
        "experiment_config",
        "per_slot_batch_size",
        "global_batch_size",
        "distributed",
        "device",
        "trial_id",
        "trial_seed",
    }
)
_PASSED_ON = (
    "core_loop.TrialContext has plain fields, not the old methods: check that what it reaches "
    'only reads fields (get_hparam("x") -> hparams["x"])'
)
_HARMLESS = frozenset({"isinstance"})  # calls that take the context without using its methods
_SHOWN = 48  # the longest piece of code quoted in a TODO
_ADAPTER_ARGS = ("context", "lightning_module", "precision", "amp_backend", "amp_level")
_SUPER_INIT = m.Call(func=m.Attribute(value=m.Call(func=m.Name("super")), attr=m.Name("__init__")))
_SELF = cst.Name("self")
_COMMENT = re.compile(r"#[^\r\n]*")


def qualify(node: cst.BaseExpression, names: Mapping[str, str]) -> str | None:
    """The dotted name ``node`` denotes through the file's imports, e.g. ``dp.DataLoader`` ->
    ``determined.pytorch.DataLoader``; ``None`` for anything but a dotted name."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(names.get(node.value, node.value))
    return ".".join(reversed(parts))


@dataclass
class Edits:
    """What the rewrite did, for the report and for the import fix-up."""

    context_calls: int = 0
    loaders: int = 0
    annotations: int = 0
    super_init: bool = False
    todos: int = 0
    notes: list[str] = field(default_factory=list)


def _dotted_expr(dotted: str) -> cst.BaseExpression:
    expr: cst.BaseExpression = cst.Name(dotted.split(".")[0])
    for part in dotted.split(".")[1:]:
        expr = cst.Attribute(value=expr, attr=cst.Name(part))
    return expr


class TrialRewriter(cst.CSTTransformer):
    """Rewrites one top-level statement; ``trial`` is the trial class (original node), whose
    ``__init__`` and ``self.<attr>`` context attributes get the context rewrites. ``todos`` maps
    ``id()`` of original nodes to ``(code, text)`` TODOs for the statement that holds them."""

    def __init__(
        self,
        names: Mapping[str, str],
        trial: cst.ClassDef | None,
        todos: Mapping[int, Sequence[Todo]],
        indent: str = "    ",
    ) -> None:
        super().__init__()
        self._unit = indent
        self._indents: list[str] = []
        self.names = names
        self.trial = trial
        self.node_todos = todos
        self.edits = Edits()
        self._statements: list[tuple[cst.CSTNode, list[Todo]]] = []
        self._contexts: list[frozenset[str]] = []
        self._context_attrs = _context_attributes(trial, names) if trial is not None else set()
        self._in_trial = 0
        self._not_loads: set[int] = set()
        self._called: set[int] = set()  # call targets and stores: not a reference taken
        self._kept: set[int] = set()  # context arguments the rewrite itself consumes
        self._saw_init = False
        self._rewrites = 0  # expressions rewritten so far: a line whose count moved may grow
        self._line_start: dict[int, int] = {}

    # -- bookkeeping: the statement and the function being rewritten -----------------------------

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.BaseStatement):
            self._statements.append((node, []))
            if isinstance(node, cst.SimpleStatementLine):
                self._line_start[id(node)] = self._rewrites
        found = self.node_todos.get(id(node))
        if found and self._statements:
            self._statements[-1][1].extend(found)
        if isinstance(node, cst.Import | cst.ImportFrom):
            return False
        return super().on_visit(node)

    def on_leave(
        self, original_node: _Node, updated_node: _Node
    ) -> _Node | cst.RemovalSentinel | cst.FlattenSentinel[_Node]:
        result = super().on_leave(original_node, updated_node)
        if isinstance(original_node, cst.BaseStatement) and self._statements:
            _, todos = self._statements.pop()
            if todos and not isinstance(result, cst.RemovalSentinel):
                return cast("_Node | cst.FlattenSentinel[_Node]", self._with_todos(result, todos))
        return result

    def _todo(self, code: str, subject: str, fix: str) -> None:
        if self._statements:
            self._statements[-1][1].append((code, subject, fix))

    def _with_todos(
        self, node: cst.CSTNode | cst.FlattenSentinel[cst.CSTNode], todos: list[Todo]
    ) -> cst.CSTNode | cst.FlattenSentinel[cst.CSTNode]:
        """``node`` with a TODO comment above it per kind of finding, unless already there."""
        target = node.nodes[0] if isinstance(node, cst.FlattenSentinel) else node
        if not isinstance(target, cst.SimpleStatementLine | cst.BaseCompoundStatement):
            return node
        lines = list(target.leading_lines)
        comments = [line.comment.value for line in lines if line.comment is not None]
        added: list[cst.EmptyLine] = []
        grouped: dict[tuple[str, str], list[str]] = {}
        for code, subject, fix in todos:  # one TODO per kind, naming every place
            subjects = grouped.setdefault((code, fix), [])
            if subject not in subjects:
                subjects.append(subject)
        for (code, fix), subjects in grouped.items():
            text = f"{', '.join(subjects)}: {fix}"
            if has_todo(comments, code, text):
                continue
            lines_ = todo_lines(code, text, self._width())
            added.extend(cst.EmptyLine(comment=cst.Comment(c)) for c in lines_)
            self.edits.todos += 1
        if not added:
            return node
        updated = target.with_changes(leading_lines=[*lines, *added])
        if isinstance(node, cst.FlattenSentinel):
            return cst.FlattenSentinel([updated, *node.nodes[1:]])
        return updated

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self._indents.append(node.indent if node.indent is not None else self._unit)

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        self._indents.pop()
        return updated_node

    def _width(self) -> int:
        """Columns of the current indentation (a tab counts four, as ruff counts it)."""
        return len("".join(self._indents).expandtabs(4))

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if node is self.trial:
            self._in_trial += 1

    def leave_ClassDef(
        self, original_node: cst.ClassDef, updated_node: cst.ClassDef
    ) -> cst.ClassDef:
        if original_node is not self.trial:
            return updated_node
        self._in_trial -= 1
        if not self._saw_init:
            self._todo(
                "LA422",
                f"no super().__init__(context, lightning_module=...) in "
                f"`{original_node.name.value}`",
                "set self.lightning_module in __init__",
            )
        kept = [
            arg
            for arg in updated_node.bases
            if kind_of_name(qualify(arg.value, self.names) or "") is None
        ]
        if kept:
            kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        if kept or updated_node.keywords:
            return updated_node.with_changes(bases=kept)
        return updated_node.with_changes(
            bases=(), lpar=cst.MaybeSentinel.DEFAULT, rpar=cst.MaybeSentinel.DEFAULT
        )

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        names = set(self._contexts[-1]) if self._contexts else set()
        params = node.params.params
        for param in (*params, *node.params.kwonly_params):
            annotation = param.annotation
            if (
                annotation is not None
                and qualify(annotation.annotation, self.names) == TRIAL_CONTEXT
            ):
                names.add(param.name.value)
        if self._in_trial and node.name.value == "__init__" and len(params) > 1:
            names.add(params[1].name.value)
        self._contexts.append(frozenset(names))

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef:
        self._contexts.pop()
        return updated_node

    # -- names: DataLoader and PyTorchTrialContext -----------------------------------------------

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._not_loads.add(id(node.attr))
        self._method_taken(node)

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self._not_loads.add(id(node.keyword))

    def visit_Param(self, node: cst.Param) -> None:
        self._not_loads.add(id(node.name))

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.BaseExpression:
        if id(original_node) in self._not_loads or original_node.value not in self.names:
            return updated_node
        return self._renamed(original_node, updated_node)

    def leave_Attribute(
        self, original_node: cst.Attribute, updated_node: cst.Attribute
    ) -> cst.BaseExpression:
        if id(original_node) in self._not_loads:
            return updated_node
        return self._renamed(original_node, updated_node)

    def _renamed(
        self, original: cst.Name | cst.Attribute, updated: cst.BaseExpression
    ) -> cst.BaseExpression:
        target = qualify(original, self.names)
        if target == DATALOADER:
            self.edits.loaders += 1
            new = _dotted_expr("torch.utils.data.DataLoader")
        elif target == TRIAL_CONTEXT:
            self.edits.annotations += 1
            new = _dotted_expr("core_loop.TrialContext")
        else:
            return updated
        self._rewrites += 1
        return new.with_changes(lpar=original.lpar, rpar=original.rpar)

    # -- the old context's calls -----------------------------------------------------------------

    def _is_context(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.Name):
            return bool(self._contexts) and node.value in self._contexts[-1]
        return (
            self._in_trial > 0
            and isinstance(node, cst.Attribute)
            and isinstance(node.value, cst.Name)
            and node.value.value == "self"
            and node.attr.value in self._context_attrs
        )

    # -- the context passed on: code the rewrite cannot follow ------------------------------------

    def _passed_on(self, value: cst.BaseExpression | None, how: str) -> None:
        """A TODO when ``value`` is the context itself, which ``how`` hands to other code."""
        if value is None or id(value) in self._kept or not self._is_context(value):
            return
        self._todo("LA423", f"`{_shown(value)}` {how}", _PASSED_ON)

    def visit_Call(self, node: cst.Call) -> None:
        self._called.add(id(node.func))
        if (self._in_trial and self._is_adapter_init(node)) or qualify(node.func, {}) in _HARMLESS:
            self._kept.update(id(arg.value) for arg in node.args)
            return
        callee = _shown(node.func) if isinstance(node.func, cst.Name | cst.Attribute) else "a call"
        for arg in node.args:
            self._passed_on(arg.value, f"passed to `{callee}`")

    def visit_Return(self, node: cst.Return) -> None:
        self._passed_on(node.value, "returned")

    def visit_Yield(self, node: cst.Yield) -> None:
        value = node.value
        self._passed_on(value if isinstance(value, cst.BaseExpression) else None, "yielded")

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._passed_on(node.body, "returned by a lambda")

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._called.add(id(target.target))
        if self._in_trial and all(
            _self_attribute(t.target) in self._context_attrs for t in node.targets
        ):
            return  # self.<attr> = context: the attributes the rewrite follows
        targets = ", ".join(_shown(t.target) for t in node.targets)
        self._passed_on(node.value, f"stored in `{targets}`")

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._called.add(id(node.target))
        if self._in_trial and _self_attribute(node.target) in self._context_attrs:
            return
        self._passed_on(node.value, f"stored in `{_shown(node.target)}`")

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._called.add(id(node.target))

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._passed_on(node.value, f"stored in `{_shown(node.target)}`")

    def visit_Element(self, node: cst.Element) -> None:
        self._passed_on(node.value, "put in a collection")

    def visit_DictElement(self, node: cst.DictElement) -> None:
        self._passed_on(node.value, "put in a dict")

    def _method_taken(self, node: cst.Attribute) -> None:
        """``f = context.get_hparams``: the old method, referenced without a call."""
        attr = node.attr.value
        if id(node) in self._called or attr in TRIAL_CONTEXT_FIELDS:
            return
        if not self._is_context(node.value):
            return
        if attr in _GETTERS:
            field = f"{_shown(node.value)}.{_GETTERS[attr]}"
            fix = f"core_loop.TrialContext has no such method: read `{field}` where this is called"
            self._todo("LA423", f"`{_shown(node)}` is referenced, not called", fix)
        else:
            fix = _CONTEXT_FIXES.get(attr, "pass the value in from main()")
            subject = f"`{_shown(node)}` has no core_loop.TrialContext value"
            self._todo("LA420", subject, fix)

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        func = updated_node.func
        if not isinstance(func, cst.Attribute) or not self._is_context(func.value):
            return updated_node
        attr = func.attr.value
        args = updated_node.args
        name = _hparam_name(args) if attr == "get_hparam" else None
        if attr == "get_hparam" and name is None:
            receiver = cst.Module([]).code_for_node(func.value)
            self._todo(
                "LA420",
                f"`{receiver}.get_hparam()` with these arguments",
                "read the value as context.hparams[name]",
            )
            return updated_node
        if name is not None:
            self.edits.context_calls += 1
            self._rewrites += 1
            index = cst.SubscriptElement(cst.Index(name))
            hparams = func.with_changes(attr=cst.Name("hparams"))
            return cst.Subscript(
                value=hparams, slice=[index], lpar=updated_node.lpar, rpar=updated_node.rpar
            )
        if attr in _GETTERS and not args:
            self.edits.context_calls += 1
            self._rewrites += 1
            return func.with_changes(
                attr=cst.Name(_GETTERS[attr]), lpar=updated_node.lpar, rpar=updated_node.rpar
            )
        if attr not in _LINTED:
            receiver = cst.Module([]).code_for_node(func.value)
            fix = _CONTEXT_FIXES.get(attr, "pass the value in from main()")
            self._todo("LA420", f"`{receiver}.{attr}()` has no core_loop.TrialContext value", fix)
        return updated_node

    # -- super().__init__(context, lightning_module=lm, precision=16) ----------------------------

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        result = self._adapter_init(updated_node)
        rewritten = self._line_start.pop(id(original_node), self._rewrites) != self._rewrites
        if result is updated_node and rewritten:
            return fit_line(original_node, updated_node, self._width(), self._unit)
        return result

    def _adapter_init(
        self, updated_node: cst.SimpleStatementLine
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        """``super().__init__(context, lightning_module=lm, ...)`` -> attribute lines."""
        if not self._in_trial or not self._contexts:
            return updated_node
        for index, small in enumerate(updated_node.body):
            if not isinstance(small, cst.Expr) or not isinstance(small.value, cst.Call):
                continue
            if not self._is_adapter_init(small.value):
                continue
            self._saw_init = True
            lines = self._attributes(small.value)
            if lines is None:
                return updated_node
            self.edits.super_init = True
            if len(updated_node.body) > 1:  # `x = 1; super().__init__(...)` stays on one line
                assigns = [line.body[0] for line in lines]
                body = [*updated_node.body[:index], *assigns, *updated_node.body[index + 1 :]]
                return updated_node.with_changes(body=body)
            first, last = lines[0], lines[-1]
            lines[0] = first.with_changes(
                leading_lines=[*updated_node.leading_lines, *first.leading_lines]
            )
            if last.trailing_whitespace.comment is None:
                lines[-1] = lines[-1].with_changes(
                    trailing_whitespace=updated_node.trailing_whitespace
                )
            return cst.FlattenSentinel(lines)
        return updated_node

    def _is_adapter_init(self, node: cst.BaseExpression) -> bool:
        if m.matches(node, _SUPER_INIT):
            return True
        if not isinstance(node, cst.Call) or not isinstance(node.func, cst.Attribute):
            return False
        func = node.func
        if func.attr.value != "__init__":
            return False
        return kind_of_name(qualify(func.value, self.names) or "") is not None

    def _attributes(self, call: cst.Call) -> list[cst.SimpleStatementLine] | None:
        """``self.lightning_module = lm`` and one line per other argument, each with the
        comments written beside its argument; ``None`` (and a TODO) if an argument cannot map."""
        args = list(call.args)
        if not m.matches(call, _SUPER_INIT) and args:
            args = args[1:]  # LightningAdapter.__init__(self, context, ...)
        values: dict[str, cst.Arg] = {}
        for position, arg in enumerate(args):
            name = arg.keyword.value if arg.keyword is not None else None
            if arg.star or (name is None and position >= len(_ADAPTER_ARGS)):
                self._todo(
                    "LA422",
                    "super().__init__ with *args or **kwargs",
                    "set self.lightning_module and precision by hand",
                )
                return None
            key = name if name is not None else _ADAPTER_ARGS[position]
            if key not in _ADAPTER_ARGS:
                self._todo("LA422", f"super().__init__ argument `{key}`", "it has no migrated form")
                return None
            values[key] = arg
        if "lightning_module" not in values:
            self._todo(
                "LA422", "super().__init__ without lightning_module", "set self.lightning_module"
            )
            return None
        pending = _comments(call.whitespace_before_args)
        if "context" in values:
            pending.extend(_arg_comments(values["context"]))
        lines: list[cst.SimpleStatementLine] = []
        for key in _ADAPTER_ARGS[1:]:
            given = values.get(key)
            if given is None:
                continue
            comments = _arg_comments(given)
            target = cst.AssignTarget(cst.Attribute(value=_SELF, attr=cst.Name(key)))
            assign = cst.Assign(targets=[target], value=_standalone(given.value))
            lines.append(
                cst.SimpleStatementLine(
                    [assign],
                    leading_lines=[cst.EmptyLine(comment=cst.Comment(c)) for c in pending],
                    trailing_whitespace=_comment(comments[0] if comments else None),
                )
            )
            pending = comments[1:]
        if pending:  # own-line comments after the last argument
            last = lines[-1]
            lines[-1] = last.with_changes(
                leading_lines=[
                    *last.leading_lines,
                    *(cst.EmptyLine(comment=cst.Comment(c)) for c in pending),
                ]
            )
        return lines


def _self_attribute(node: cst.BaseExpression) -> str | None:
    """``x`` for ``self.x``, else None."""
    if (
        isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == "self"
    ):
        return node.attr.value
    return None


def _shown(node: cst.CSTNode) -> str:
    """``node``'s code on one line, cut to ``_SHOWN`` characters, to quote in a TODO."""
    code = " ".join(cst.Module([]).code_for_node(node).split())
    return code if len(code) <= _SHOWN else code[: _SHOWN - 3] + "..."


def _hparam_name(args: Sequence[cst.Arg]) -> cst.BaseExpression | None:
    """The name ``get_hparam(name)`` reads: one argument, by position or as ``name=``."""
    if len(args) != 1 or args[0].star:
        return None
    keyword = args[0].keyword
    return args[0].value if keyword is None or keyword.value == "name" else None


def _context_attributes(trial: cst.ClassDef, names: Mapping[str, str]) -> set[str]:
    """``self.<attr>`` names the trial's ``__init__`` binds to its context parameter."""
    attrs: set[str] = set()
    for node in trial.body.body if isinstance(trial.body, cst.IndentedBlock) else ():
        if not isinstance(node, cst.FunctionDef) or node.name.value != "__init__":
            continue
        params = node.params.params
        if len(params) < 2:
            continue
        context = params[1].name.value
        for assign in iter_nodes(node.body, (cst.Assign, cst.AnnAssign)):
            assert isinstance(assign, cst.Assign | cst.AnnAssign)
            if not (isinstance(assign.value, cst.Name) and assign.value.value == context):
                continue
            targets = assign.targets if isinstance(assign, cst.Assign) else [assign]
            for target in targets:
                expr = target.target
                if (
                    isinstance(expr, cst.Attribute)
                    and isinstance(expr.value, cst.Name)
                    and expr.value.value == "self"
                ):
                    attrs.add(expr.attr.value)
    return attrs


def _standalone(value: cst.BaseExpression) -> cst.BaseExpression:
    """``value`` moved out of the call's parentheses: parenthesised if it spans lines."""
    if "\n" not in cst.Module([]).code_for_node(value) or value.lpar:
        return value
    if isinstance(value, cst.Call | cst.List | cst.Dict | cst.Set | cst.Subscript):
        return value
    return value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def _comments(node: object) -> list[str]:
    """The comments in a piece of whitespace or punctuation, in order."""
    if not isinstance(node, cst.CSTNode):
        return []
    return _COMMENT.findall(cst.Module([]).code_for_node(node))


def _arg_comments(arg: cst.Arg) -> list[str]:
    """The comments after an argument: the one on its line first, then own-line ones."""
    return [*_comments(arg.whitespace_after_arg), *_comments(arg.comma)]


def _comment(text: str | None) -> cst.TrailingWhitespace:
    if text is None:
        return cst.TrailingWhitespace()
    return cst.TrailingWhitespace(whitespace=cst.SimpleWhitespace("  "), comment=cst.Comment(text))


def _widest(node: cst.CSTNode, indent: int) -> int:
    lines = cst.Module([]).code_for_node(node).splitlines() or [""]
    return max(indent + len(line.expandtabs(4)) for line in lines)


def fit_line(
    original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine, indent: int, unit: str
) -> cst.SimpleStatementLine:
    """``updated`` with its first call's arguments on lines of their own (as ruff format
    would: all on one indented line if they fit, else one per line) when the rewrite made a
    line longer than ``LINE_LENGTH`` that was not before."""
    code = cst.Module([]).code_for_node(updated)
    lines = code.splitlines()
    if max(indent + len(line.expandtabs(4)) for line in lines or [""]) <= LINE_LENGTH:
        return updated
    if len(lines) > 1 or _widest(original, indent) > LINE_LENGTH:
        return updated  # spread over lines, or long already: the layout is the user's
    calls = iter_nodes_in_order(updated, (cst.Call,))
    call = next((c for c in calls if isinstance(c, cst.Call) and c.args), None)
    if call is None:
        return updated

    def newline(extra: str) -> cst.ParenthesizedWhitespace:
        return cst.ParenthesizedWhitespace(indent=True, last_line=cst.SimpleWhitespace(extra))

    args = list(call.args)
    hanging = [*args[:-1], args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT,
                                                  whitespace_after_arg=newline(""))]  # fmt: skip
    wrapped = call.with_changes(whitespace_before_args=newline(unit), args=hanging)
    candidate = updated.deep_replace(call, wrapped)
    assert isinstance(candidate, cst.SimpleStatementLine)
    if _widest(candidate, indent) <= LINE_LENGTH:
        return candidate
    exploded = [
        arg.with_changes(
            comma=cst.Comma(whitespace_after=newline(unit if n < len(args) - 1 else "")),
            whitespace_after_arg=cst.SimpleWhitespace(""),
        )
        for n, arg in enumerate(args)
    ]
    wrapped = call.with_changes(whitespace_before_args=newline(unit), args=exploded)
    result = updated.deep_replace(call, wrapped)
    assert isinstance(result, cst.SimpleStatementLine)
    return result
