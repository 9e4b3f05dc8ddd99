"""Decide, from the one hook table (``shim.hooks``), what a LightningModule may use here.

Rejected hooks raise before training with the module's file:line; ignored ones warn once.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable
from typing import Any

from shim.errors import ShimError
from shim.hooks import HOOKS, Hook, Status

__all__ = [
    "UnsupportedHook",
    "check_module",
    "positional_params",
    "user_method",
    "where",
]

logger = logging.getLogger("shim.lightning")

_LIBRARY_PREFIXES = ("pytorch_lightning.", "lightning.", "lightning_fabric.", "torch.")


class UnsupportedHook(ShimError):
    """The module uses a hook or pattern the hook table rejects."""


def user_method(cls: type, name: str) -> Callable[..., Any] | None:
    """The user's definition of ``name`` on ``cls`` (None if only Lightning defines it)."""
    for klass in cls.__mro__:
        if klass.__module__.startswith(_LIBRARY_PREFIXES) or klass is object:
            return None
        if name in vars(klass):
            found = vars(klass)[name]
            return found if callable(found) else None
    return None


def where(fn: Any) -> str:
    """``file:line`` of a function, for messages that point at the user's code."""
    target = inspect.unwrap(fn)
    try:
        path = inspect.getsourcefile(target) or "<unknown>"
        line = inspect.getsourcelines(target)[1]
    except (OSError, TypeError):
        return getattr(target, "__qualname__", repr(target))
    return f"{path}:{line}"


def positional_params(fn: Callable[..., Any]) -> list[str]:
    """Names of the positional parameters of a bound method (without self)."""
    params = inspect.signature(fn).parameters.values()
    return [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]


def check_module(module: Any) -> None:
    """Raise for rejected hooks and patterns, warn for ignored ones."""
    cls = type(module)
    for name, hook in HOOKS.items():
        if hook.status in (Status.REJECTED, Status.IGNORED) and name.isidentifier():
            fn = user_method(cls, name)
            if fn is not None:
                _verdict(hook, f"{cls.__name__}.{name}", where(fn))
    _check_signatures(module)
    if getattr(module, "automatic_optimization", True) is False:
        _verdict(HOOKS["self.automatic_optimization = False"], cls.__name__, where(cls.__init__))
    if getattr(module, "truncated_bptt_steps", 0):
        _verdict(HOOKS["self.truncated_bptt_steps"], cls.__name__, where(cls.__init__))


def _check_signatures(module: Any) -> None:
    cls = type(module)
    for name in ("validation_step", "on_validation_batch_start", "on_validation_batch_end"):
        fn = user_method(cls, name)
        if fn is not None and _required(fn, "dataloader_idx"):
            _verdict(HOOKS["dataloader_idx"], f"{cls.__name__}.{name}(dataloader_idx)", where(fn))
    step = user_method(cls, "training_step")
    if step is not None and "hiddens" in inspect.signature(step).parameters:
        _verdict(HOOKS["training_step(hiddens)"], f"{cls.__name__}.training_step", where(step))
    epoch_end = user_method(cls, "on_train_epoch_end")
    if epoch_end is not None and _required(epoch_end, "outputs"):
        hook = HOOKS["on_train_epoch_end(outputs)"]
        _verdict(hook, f"{cls.__name__}.on_train_epoch_end", where(epoch_end))


def _required(fn: Callable[..., Any], param: str) -> bool:
    found = inspect.signature(fn).parameters.get(param)
    return found is not None and found.default is inspect.Parameter.empty


def _verdict(hook: Hook, what: str, location: str) -> None:
    message = f"{location}: {what} ({hook.code}): {hook.reason}"
    if hook.fix:
        message += f"; {hook.fix}"
    if hook.status is Status.REJECTED:
        raise UnsupportedHook(message)
    warnings.warn(f"{message}; it will not be called", UserWarning, stacklevel=3)
