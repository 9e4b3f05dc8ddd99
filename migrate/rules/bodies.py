"""Patterns inside method bodies: calls, assignments and config reads (LA103, LA104, LA110,
LA306, LA307, LA402-LA404).

Walking bodies is the costly part of linting, so it only happens for classes of a file whose
text contains one of the trigger words.
"""

from __future__ import annotations

import re

import libcst as cst

from shim.hooks import HOOKS, Hook

from ..classes import Kind
from ._base import Candidate, iter_nodes, small_statements

__all__ = ["COVERS", "check", "trigger_tokens"]

_LOG_ARGS = {
    kw: HOOKS[f"self.log({kw}=)"]
    for kw in (
        "sync_dist_op",
        "tbptt_reduce_fx",
        "tbptt_pad_token",
        "sync_dist_group",
        "metric_attribute",
    )
}
_TRIAL_CALLS = {
    "get_tensorboard_writer": HOOKS["context.get_tensorboard_writer()"],
    "configure_apex_amp": HOOKS["context.configure_apex_amp()"],
    **{
        attr: HOOKS[f"context.{attr}()"]
        for attr in ("wrap_model", "wrap_optimizer", "wrap_lr_scheduler", "wrap_scaler")
    },
}
_MODULE_ATTRS = {
    "automatic_optimization": HOOKS["self.automatic_optimization = False"],
    "truncated_bptt_steps": HOOKS["self.truncated_bptt_steps"],
}
_APEX = HOOKS["LightningAdapter(amp_backend='apex')"]
_MANUAL = HOOKS["self.automatic_optimization = False"]
_CONFIG_HOOK = HOOKS["records_per_epoch"]
_VISITED = (cst.Call, cst.Assign, cst.AnnAssign, cst.SimpleString)
_CONFIG_KEY = "records_per_epoch"
_TRIGGERS = re.compile(
    "|".join(
        ["manual_backward", "amp_backend", _CONFIG_KEY, *_LOG_ARGS, *_TRIAL_CALLS, *_MODULE_ATTRS]
    )
)
COVERS = frozenset(
    {h.name for h in (*_LOG_ARGS.values(), *_TRIAL_CALLS.values(), *_MODULE_ATTRS.values())}
    | {"self.manual_backward()", _APEX.name, _CONFIG_KEY}
)


def trigger_tokens(text: str) -> frozenset[str]:
    return frozenset(_TRIGGERS.findall(text))


def check(node: cst.ClassDef, kind: Kind, tokens: frozenset[str]) -> list[Candidate]:
    checker = _Checker(kind, tokens)
    if kind is Kind.MODULE:
        checker.class_level(node)
    for found in iter_nodes(node.body, _VISITED):
        if isinstance(found, cst.Call):
            checker.call(found)
        elif isinstance(found, cst.Assign):
            for target in found.targets:
                checker.assignment(target.target, found.value)
        elif isinstance(found, cst.AnnAssign) and found.value is not None:
            checker.assignment(found.target, found.value)
        elif isinstance(found, cst.SimpleString):
            checker.string(found)
    return checker.found


def _self_attr(node: cst.BaseExpression) -> str | None:
    if (
        isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == "self"
    ):
        return node.attr.value
    return None


def _literal(node: cst.BaseExpression | None) -> str | None:
    if isinstance(node, cst.Name) and node.value in ("False", "True", "None"):
        return node.value
    if isinstance(node, cst.Integer):
        return node.value
    if isinstance(node, cst.SimpleString):
        return node.value[len(node.prefix) + 1 : -1].strip("'\"")
    return None


def _receiver(func: cst.Attribute) -> str:
    parts: list[str] = []
    node: cst.BaseExpression = func.value
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    parts.append(node.value if isinstance(node, cst.Name) else "...")
    return ".".join(reversed(parts))


class _Checker:
    def __init__(self, kind: Kind, tokens: frozenset[str]) -> None:
        self.kind, self.tokens = kind, tokens
        self.found: list[Candidate] = []

    def _add(self, node: cst.CSTNode, hook: Hook, subject: str) -> None:
        self.found.append(Candidate(node, hook, subject))

    def class_level(self, node: cst.ClassDef) -> None:
        """Class attributes and a property override can switch optimization mode too."""
        for stmt in node.body.body if isinstance(node.body, cst.IndentedBlock) else ():
            if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "automatic_optimization":
                if any(
                    isinstance(s, cst.Return) and _literal(s.value) == "False"
                    for s in small_statements(stmt.body)
                ):
                    self._add(stmt.name, _MANUAL, "`automatic_optimization` returning False")
            elif isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Assign):
                        for target in small.targets:
                            if isinstance(target.target, cst.Name):
                                self._attribute(target.target, target.target.value, small.value)

    def call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, cst.Attribute):
            return
        attr = func.attr.value
        if self.kind is Kind.MODULE:
            if _self_attr(func) == "manual_backward":
                self._add(func, HOOKS["self.manual_backward()"], "`self.manual_backward()`")
            elif _self_attr(func) in ("log", "log_dict"):
                for arg in node.args:
                    keyword = arg.keyword
                    if keyword is not None and keyword.value in self.tokens:
                        hook = _LOG_ARGS.get(keyword.value)
                        if hook is not None:
                            self._add(keyword, hook, f"`self.{attr}({keyword.value}=...)`")
            return
        if attr in _TRIAL_CALLS and attr in self.tokens:
            self._add(func, _TRIAL_CALLS[attr], f"`{_receiver(func)}.{attr}()`")
        if "amp_backend" in self.tokens:
            for arg in node.args:
                keyword = arg.keyword
                is_apex = _literal(arg.value) == "apex"
                if keyword is not None and keyword.value == "amp_backend" and is_apex:
                    self._add(keyword, _APEX, "`amp_backend='apex'`")

    def assignment(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        name = _self_attr(target)
        if self.kind is Kind.MODULE and name is not None:
            self._attribute(target, name, value)

    def _attribute(self, target: cst.BaseExpression, name: str, value: cst.BaseExpression) -> None:
        if name not in self.tokens:
            return
        literal = _literal(value)
        if name == "automatic_optimization" and literal == "False":
            self._add(target, _MANUAL, "`automatic_optimization = False`")
        elif name == "truncated_bptt_steps" and literal not in ("0", "None"):
            self._add(target, _MODULE_ATTRS[name], "setting `truncated_bptt_steps`")

    def string(self, node: cst.SimpleString) -> None:
        if _CONFIG_KEY in self.tokens and _literal(node) == _CONFIG_KEY:
            self._add(node, _CONFIG_HOOK, f"reading `{_CONFIG_KEY}`")
