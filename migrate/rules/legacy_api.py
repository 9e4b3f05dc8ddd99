"""Lightning 1.x APIs that 1.6-2.0 removed (LA310-LA316) and pre-1.0 step outputs (LA309).

Nothing is imported, so a receiver's type is read from how the class got it: ``self`` in a data
module, ``self.trainer`` in a module, and in any class an attribute or local name assigned from
a data module's constructor (a class of the file that subclasses ``LightningDataModule``, or one
whose name ends in ``DataModule``) or from ``self.trainer.datamodule``. An attribute a class
assigns itself (``self.dims = ...``) is its own and not reported; a foreign data module's
``dims`` and transforms are reported only when its class is in the file and never sets them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import libcst as cst

from shim.hooks import HOOKS, Hook, Scope, by_scope

from ..classes import ClassInfo, Kind
from ._base import Candidate, iter_nodes_in_order

__all__ = ["COVERS", "WORDS", "check", "trigger_tokens"]

COVERS = frozenset(h.name for h in (*by_scope(Scope.REMOVED_API), *by_scope(Scope.RETURN)))
_TRIGGERS = re.compile(
    r"DataModule|datamodule|summarize|model_size|use_amp|precision|amp_backend|num_gpus|gpus"
    r"|root_gpu|num_processes|tpu_cores|lr_schedulers|progress_bar|['\"]log['\"]|\blog="
)
WORDS = frozenset({"legacy_api"})  # the one token trigger_tokens gives for this rule

_MODULE_ATTRS = {"model_size", "use_amp", "precision"}
_TRAINER_ATTRS = {
    "use_amp", "amp_backend", "num_gpus", "gpus", "root_gpu", "num_processes", "tpu_cores",
    "lr_schedulers",
}  # fmt: skip
_SHAPES = {"dims", "train_transforms", "val_transforms", "test_transforms"}
_FLAGS = {h.name.removeprefix("datamodule.") for h in HOOKS.values() if h.code == "LA311"}
_DATA_HOOKS = ("prepare_data", "setup", "teardown")
_INIT_NAMES = ("train_transforms", "val_transforms", "test_transforms", "dims")
_INIT_ARGS = HOOKS[f"LightningDataModule({', '.join(f'{n}=' for n in _INIT_NAMES)})"]
_OUTPUT_KEYS = ("log", "progress_bar")
_NOT_ONE = cst.ClassDef(name=cst.Name("_"), body=cst.SimpleStatementSuite(()))  # a marker
_OUTPUT_METHODS = frozenset(
    f"{stage}_{suffix}"
    for stage in ("training", "validation", "test")
    for suffix in ("step", "step_end", "epoch_end")
)


def trigger_tokens(text: str) -> frozenset[str]:
    return WORDS if _TRIGGERS.search(text) else frozenset()


@dataclass
class _Own:
    """What a class defines for itself: methods and ``self.<name>`` it assigns."""

    methods: set[str] = field(default_factory=set)
    attrs: set[str] = field(default_factory=set)


def own_names(node: cst.ClassDef) -> _Own:
    own = _Own()
    body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
    own.methods = {s.name.value for s in body if isinstance(s, cst.FunctionDef)}
    for found in iter_nodes_in_order(node.body, (cst.AssignTarget, cst.AnnAssign, cst.AugAssign)):
        if not isinstance(found, cst.AssignTarget | cst.AnnAssign | cst.AugAssign):
            continue
        for element in _targets(found.target):
            name = _self_attr(element)
            if name is not None:
                own.attrs.add(name)
    return own


def check(info: ClassInfo, kind: Kind, datamodules: Mapping[str, cst.ClassDef]) -> list[Candidate]:
    checker = _Checker(info, kind, datamodules)
    body = info.node.body.body if isinstance(info.node.body, cst.IndentedBlock) else ()
    for stmt in body:
        if isinstance(stmt, cst.FunctionDef):
            checker.method(stmt)
    return checker.found


# -- helpers -----------------------------------------------------------------------------------


def _targets(node: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    if isinstance(node, cst.Tuple | cst.List):
        for element in node.elements:
            yield from _targets(element.value)
    else:
        yield node


def _pairs(
    target: cst.BaseExpression, value: cst.BaseExpression | None
) -> Iterator[tuple[cst.BaseExpression, cst.BaseExpression | None]]:
    """``a, b = A(), B()`` pairs each name with its value."""
    sequences = (cst.Tuple, cst.List)
    if isinstance(target, sequences) and isinstance(value, sequences):
        if len(target.elements) == len(value.elements):
            for name, item in zip(target.elements, value.elements, strict=True):
                yield from _pairs(name.value, item.value)
        return
    yield target, value


def _dotted(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr.value}"
    if isinstance(node, cst.Call) and _dotted(node.func) == "super" and not node.args:
        return "super()"
    return None


def _self_attr(node: cst.BaseExpression) -> str | None:
    dotted = _dotted(node)
    if dotted is None or not dotted.startswith("self.") or dotted.count(".") != 1:
        return None
    return dotted.removeprefix("self.")


def _literal_key(node: cst.BaseExpression | None) -> str | None:
    if isinstance(node, cst.SimpleString):
        return node.value[len(node.prefix) + 1 : -1].strip("'\"")
    return None


class _Checker:
    def __init__(self, info: ClassInfo, kind: Kind, datamodules: Mapping[str, cst.ClassDef]):
        self.info, self.kind, self.datamodules = info, kind, datamodules
        self.own = own_names(info.node)
        self.found: list[Candidate] = []
        # receiver text -> the data module class of the file it was made from (None: unknown)
        self.typed: dict[str, cst.ClassDef | None] = {"self.trainer.datamodule": None}
        if kind is Kind.DATAMODULE:
            self.typed["self"] = info.node
        self._seen_calls: set[tuple[str, str, str]] = set()
        self._owns: dict[int, _Own] = {id(info.node): self.own}
        self._find_datamodules()

    def _add(self, node: cst.CSTNode, hook: Hook, subject: str) -> None:
        self.found.append(Candidate(node, hook, subject))

    def _find_datamodules(self) -> None:
        for found in iter_nodes_in_order(self.info.node.body, (cst.Assign, cst.AnnAssign)):
            if isinstance(found, cst.Assign):
                targets = [t.target for t in found.targets]
            elif isinstance(found, cst.AnnAssign) and found.value is not None:
                targets = [found.target]
            else:
                continue
            for target in targets:
                for name, value in _pairs(target, found.value):
                    made = self._constructed(value)
                    text = _dotted(name)
                    if made is not _NOT_ONE and text is not None:
                        self.typed[text] = made

    def _constructed(self, value: cst.BaseExpression | None) -> cst.ClassDef | None:
        """The file's class a data module is made from, None if it is not in the file, or
        ``_NOT_ONE`` if ``value`` is no data module."""
        dotted = _dotted(value) if value is not None else None
        if dotted in self.typed:  # `dm = self.dm` or `dm = self.trainer.datamodule`
            return self.typed[dotted]
        callee = _dotted(value.func) if isinstance(value, cst.Call) else None
        if callee is None:
            return _NOT_ONE
        if callee in self.datamodules:
            return self.datamodules[callee]
        # `from data import MNISTDataModule as DM` makes `DM(...)` one too.
        name = callee if "." in callee else self.info.names.get(callee, callee)
        return None if name.rsplit(".", 1)[-1].endswith("DataModule") else _NOT_ONE

    # -- per method ---------------------------------------------------------------------------

    def method(self, fn: cst.FunctionDef) -> None:
        outputs = self.kind is Kind.MODULE and fn.name.value in _OUTPUT_METHODS
        kinds: tuple[type[cst.CSTNode], ...] = (cst.Attribute, cst.Call, cst.Dict)
        for node in iter_nodes_in_order(fn.body, kinds):
            if isinstance(node, cst.Attribute):
                self._attribute(node)
            elif isinstance(node, cst.Call):
                self._call(node, fn.name.value, outputs)
            elif outputs and isinstance(node, cst.Dict):
                self._output_dict(node, fn.name.value)

    def _attribute(self, node: cst.Attribute) -> None:
        receiver, attr = _dotted(node.value), node.attr.value
        if receiver is None:
            return
        if self.kind is Kind.MODULE:
            if receiver == "self" and self._removed_from_module(attr):
                name = "self.summarize()" if attr == "summarize" else f"self.{attr}"
                self._add(node, HOOKS[name], f"`{_dotted(node)}`")
                return
            if receiver == "self.trainer" and attr in _TRAINER_ATTRS:
                self._add(node, HOOKS[f"self.trainer.{attr}"], f"`self.trainer.{attr}`")
                return
        if receiver in self.typed:
            self._datamodule_attribute(node, receiver, attr)

    def _removed_from_module(self, attr: str) -> bool:
        if attr == "summarize":
            return "summarize" not in self.own.methods
        return attr in _MODULE_ATTRS and attr not in self.own.attrs | self.own.methods

    def _datamodule_attribute(self, node: cst.Attribute, receiver: str, attr: str) -> None:
        cls = self.typed[receiver]
        own = None if cls is None else self._owns.setdefault(id(cls), own_names(cls))
        if own is not None and attr in own.attrs | own.methods:
            return
        if attr == "size":
            self._add(node, HOOKS["datamodule.size()"], f"`{receiver}.size()`")
        elif attr in _FLAGS or (attr in _SHAPES and own is not None):
            # A data module's own dims and transforms are only known when its class is here.
            self._add(node, HOOKS[f"datamodule.{attr}"], f"`{receiver}.{attr}`")

    def _call(self, node: cst.Call, method: str, outputs: bool) -> None:
        callee = _dotted(node.func)
        if callee is None:
            return
        receiver, _, name = callee.rpartition(".")
        if self.kind is Kind.DATAMODULE and callee == "super().__init__":
            self._init_arguments(node)
        elif name in _DATA_HOOKS and receiver in self.typed:
            arguments = cst.Module([]).code_for_node(node.with_changes(func=cst.Name("f")))
            key = (receiver, name, arguments)
            if key in self._seen_calls:
                hook = HOOKS[f"a repeated datamodule.{name}()"]
                self._add(node, hook, f"a second `{callee}({arguments[2:-1]})`")
            self._seen_calls.add(key)
        elif outputs and callee in ("dict", "OrderedDict", "collections.OrderedDict"):
            for arg in node.args:
                keyword = arg.keyword.value if arg.keyword is not None else None
                if keyword in _OUTPUT_KEYS:
                    self._output_key(arg.keyword or arg, keyword, method)

    def _init_arguments(self, node: cst.Call) -> None:
        positional = [arg for arg in node.args if arg.keyword is None and not arg.star]
        for name, arg in zip(_INIT_NAMES, positional, strict=False):
            self._add(arg, _INIT_ARGS, f"`super().__init__()` given {name} positionally")
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value in _INIT_NAMES:
                subject = f"`super().__init__({arg.keyword.value}=...)`"
                self._add(arg.keyword, _INIT_ARGS, subject)

    def _output_dict(self, node: cst.Dict, method: str) -> None:
        for element in node.elements:
            if isinstance(element, cst.DictElement):
                key = _literal_key(element.key)
                if key in _OUTPUT_KEYS:
                    self._output_key(element.key, key, method)

    def _output_key(self, node: cst.CSTNode, key: str, method: str) -> None:
        hook = HOOKS[f"{{'{key}': ...}} in a step's output"]
        self._add(node, hook, f"`'{key}'` in `{method}`'s output")
