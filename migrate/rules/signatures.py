"""Module hook signatures: required dataloader_idx, hiddens, optimizer_idx, epoch-end outputs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import libcst as cst

from shim.hooks import HOOKS

from ._base import Candidate

__all__ = ["COVERS", "check"]

_IDX_HOOKS = ("optimizer_zero_grad", "on_before_optimizer_step", "configure_gradient_clipping")
_IDX_NAMES = frozenset({"optimizer_idx", "opt_idx"})
COVERS = frozenset(
    {
        "dataloader_idx",
        "training_step(hiddens)",
        "training_step(optimizer_idx)",
        "on_train_epoch_end(outputs)",
        *(f"{name}(optimizer_idx)" for name in _IDX_HOOKS),
    }
)


def check(defs: Sequence[cst.FunctionDef]) -> Iterator[Candidate]:
    for fn in defs:
        name = fn.name.value
        positional = [*fn.params.posonly_params, *fn.params.params]
        for param in [*positional, *fn.params.kwonly_params]:
            if param.name.value == "dataloader_idx" and param.default is None:
                subject = f"`{name}(dataloader_idx)` without a default"
                yield Candidate(param.name, HOOKS["dataloader_idx"], subject)
        if name == "training_step":
            yield from _training_step(positional)
        elif name in _IDX_HOOKS:
            hook = HOOKS[f"{name}(optimizer_idx)"]
            for param in positional:
                if param.name.value in _IDX_NAMES:
                    yield Candidate(param.name, hook, f"`{name}({param.name.value})`")
        elif name == "on_train_epoch_end":
            for param in positional[1:]:  # after self
                if param.default is None:
                    subject = f"`on_train_epoch_end({param.name.value})`"
                    yield Candidate(param.name, HOOKS["on_train_epoch_end(outputs)"], subject)


def _training_step(positional: Sequence[cst.Param]) -> Iterator[Candidate]:
    # Lightning 1.x passed hiddens as the fifth positional argument (counting self), whatever
    # its name; optimizer_idx is found by name, as Lightning 1.x did.
    for index, param in enumerate(positional):
        pname = param.name.value
        if pname == "optimizer_idx":
            subject = "`training_step(optimizer_idx)`"
            yield Candidate(param.name, HOOKS["training_step(optimizer_idx)"], subject)
        elif pname == "hiddens" or (index >= 4 and param.default is None):
            subject = f"`training_step({pname})`"
            yield Candidate(param.name, HOOKS["training_step(hiddens)"], subject)
