"""The module's overridden hooks, looked up once so the per-batch path calls only real code."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from shim.lightning.compat import positional_params, user_method

__all__ = ["ModuleHooks"]

# Hooks whose Lightning default does nothing: skipping them when not overridden is exact.
_OPTIONAL = (
    "prepare_data",
    "setup",
    "teardown",
    "on_fit_start",
    "on_fit_end",
    "on_train_start",
    "on_train_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "training_epoch_end",
    "training_step_end",
    "on_before_zero_grad",
    "optimizer_zero_grad",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "configure_gradient_clipping",
    "on_validation_start",
    "on_validation_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "validation_epoch_end",
    "validation_step_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_save_checkpoint",
    "on_load_checkpoint",
)


class ModuleHooks:
    """Bound methods for the hooks the user overrode (None otherwise), plus signature facts."""

    prepare_data: Callable[..., Any] | None
    setup: Callable[..., Any] | None
    teardown: Callable[..., Any] | None
    on_fit_start: Callable[..., Any] | None
    on_fit_end: Callable[..., Any] | None
    on_train_start: Callable[..., Any] | None
    on_train_end: Callable[..., Any] | None
    on_train_batch_start: Callable[..., Any] | None
    on_train_batch_end: Callable[..., Any] | None
    on_train_epoch_start: Callable[..., Any] | None
    on_train_epoch_end: Callable[..., Any] | None
    training_epoch_end: Callable[..., Any] | None
    training_step_end: Callable[..., Any] | None
    on_before_zero_grad: Callable[..., Any] | None
    optimizer_zero_grad: Callable[..., Any] | None
    on_before_backward: Callable[..., Any] | None
    on_after_backward: Callable[..., Any] | None
    on_before_optimizer_step: Callable[..., Any] | None
    configure_gradient_clipping: Callable[..., Any] | None
    on_validation_start: Callable[..., Any] | None
    on_validation_end: Callable[..., Any] | None
    on_validation_epoch_start: Callable[..., Any] | None
    on_validation_epoch_end: Callable[..., Any] | None
    validation_epoch_end: Callable[..., Any] | None
    validation_step_end: Callable[..., Any] | None
    on_validation_batch_start: Callable[..., Any] | None
    on_validation_batch_end: Callable[..., Any] | None
    on_save_checkpoint: Callable[..., Any] | None
    on_load_checkpoint: Callable[..., Any] | None

    def __init__(self, module: Any) -> None:
        cls = type(module)
        for name in _OPTIONAL:
            found = user_method(cls, name)
            setattr(self, name, getattr(module, name) if found is not None else None)
        self.training_step_takes_idx = _takes(module.training_step, "optimizer_idx", 3)
        self.zero_grad_idx = _arity(self.optimizer_zero_grad) >= 4
        self.before_step_idx = _arity(self.on_before_optimizer_step) >= 2
        self.clip_idx = _arity(self.configure_gradient_clipping) >= 4
        self.toggle_takes_idx = _arity(module.toggle_optimizer) >= 2
        # Lightning 1.9 passes dataloader_idx=0 to the validation batch hooks; 2.x only with
        # several loaders. Pass it when the hook declares it.
        start = self.on_validation_batch_start
        self.val_batch_extra: tuple[int, ...] = (
            (0,) if start is not None and _arity(start) >= 3 else ()
        )
        end = self.on_validation_batch_end
        self.val_batch_end_extra: tuple[int, ...] = (
            (0,) if end is not None and _arity(end) >= 4 else ()
        )


def _arity(fn: Callable[..., Any] | None) -> int:
    return len(positional_params(fn)) if fn is not None else 0


def _takes(fn: Callable[..., Any], name: str, position: int) -> bool:
    params = inspect.signature(fn).parameters
    if name in params:
        return True
    return len(positional_params(fn)) >= position or any(
        p.kind is inspect.Parameter.VAR_POSITIONAL for p in params.values()
    )
