"""What the adapter binds onto a LightningModule (``print``, ``optimizers``, ``lr_schedulers``,
``clip_gradients``, ``manual_backward``) and small conversions of what a module returns or keeps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from shim.errors import ShimError
from shim.lightning.log import LogCollector

if TYPE_CHECKING:
    from shim.lightning.adapter import LightningAdapter

__all__ = [
    "HookScope",
    "clip_gradients",
    "manual_backward_rejected",
    "numpy_as_tensors",
    "optimizers_of",
    "plain_hparams",
    "print_on_rank_zero",
    "scalar_metrics",
    "schedulers_of",
    "tensors_as_numpy",
]


def numpy_as_tensors(value: Any) -> Any:
    """1.x training_step outputs often hold numpy arrays; checkpoints hold tensors only."""
    if isinstance(value, np.ndarray | np.generic):
        return {"__numpy__": torch.from_numpy(np.asarray(value).copy())}
    if isinstance(value, dict):
        return {k: numpy_as_tensors(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(numpy_as_tensors(v) for v in value)
    return value


def tensors_as_numpy(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__numpy__"}:
            return value["__numpy__"].cpu().numpy()
        return {k: tensors_as_numpy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(tensors_as_numpy(v) for v in value)
    return value


def plain_hparams(module: Any) -> dict[str, Any]:
    """``save_hyperparameters()`` values that load with ``weights_only=True`` (for export)."""
    hparams = getattr(module, "hparams", None) or {}
    plain = (bool, int, float, str, type(None))
    return {k: v for k, v in dict(hparams).items() if isinstance(v, plain)}


class HookScope:
    __slots__ = ("_log", "_name", "_previous")

    def __init__(self, log: LogCollector, name: str) -> None:
        self._log, self._name = log, name

    def __enter__(self) -> None:
        self._previous, self._log.current_hook = self._log.current_hook, self._name

    def __exit__(self, *_: object) -> None:
        self._log.current_hook = self._previous


def scalar_metrics(output: Any) -> dict[str, Any]:
    if output is None:
        return {}
    if isinstance(output, torch.Tensor):
        return {"loss": output.detach()} if output.numel() == 1 else {}
    if isinstance(output, dict):
        return {
            k: v.detach() if isinstance(v, torch.Tensor) else v
            for k, v in output.items()
            if (isinstance(v, torch.Tensor) and v.numel() == 1)
            or (isinstance(v, (int, float)) and not isinstance(v, bool))
        }
    return {}


def print_on_rank_zero(self: Any, *args: Any, **kwargs: Any) -> None:
    if self.trainer.is_global_zero:
        print(*args, **kwargs)


def optimizers_of(adapter: LightningAdapter) -> Any:
    def optimizers(self: Any, use_pl_optimizer: bool = True) -> Any:
        opts = adapter._optimizers
        return opts[0] if len(opts) == 1 else list(opts)

    return optimizers


def schedulers_of(adapter: LightningAdapter) -> Any:
    def lr_schedulers(self: Any) -> Any:
        schedulers = [cfg.scheduler for cfg in adapter._plan.schedulers]
        if not schedulers:
            return None
        return schedulers[0] if len(schedulers) == 1 else schedulers

    return lr_schedulers


def clip_gradients(
    self: Any,
    optimizer: torch.optim.Optimizer,
    gradient_clip_val: float | None = None,
    gradient_clip_algorithm: str | None = None,
) -> None:
    """Lightning's ``clip_gradients`` without a precision plugin: grads are unscaled here."""
    if gradient_clip_val is None or gradient_clip_val == 0:
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if gradient_clip_algorithm in (None, "norm"):
        torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
    elif gradient_clip_algorithm == "value":
        torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
    else:
        raise ShimError(
            f"clip_gradients(gradient_clip_algorithm={gradient_clip_algorithm!r}): use 'norm' "
            "or 'value'"
        )


def manual_backward_rejected(self: Any, *args: Any, **kwargs: Any) -> None:
    raise ShimError(
        f"{type(self).__qualname__}.manual_backward() (LA103): run-trial drives automatic "
        "optimization only; return the loss from training_step instead"
    )
