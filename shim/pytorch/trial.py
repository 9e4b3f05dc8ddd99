"""``PyTorchTrial``: the abstract trial a legacy Determined model definition subclasses."""

from __future__ import annotations

import abc
from typing import Any

import torch

from shim.pytorch.callback import PyTorchCallback
from shim.pytorch.context import PyTorchTrialContext
from shim.pytorch.reducer import Reducer

__all__ = ["EndEpoch", "PyTorchTrial"]


class EndEpoch(Exception):  # a signal for the controller, not an error
    """Raised by ``train_batch`` to end the current epoch now (Lightning's -1 from
    ``on_train_batch_start``); the controller moves on to the next epoch."""


class PyTorchTrial(abc.ABC):
    """Determined's ``PyTorchTrial`` interface, run by ``shim.pytorch.controller``."""

    trial_context_class = PyTorchTrialContext

    @abc.abstractmethod
    def __init__(self, context: PyTorchTrialContext) -> None: ...

    @abc.abstractmethod
    def train_batch(
        self, batch: Any, epoch_idx: int, batch_idx: int
    ) -> torch.Tensor | dict[str, Any]:
        """Train on one batch; return the loss or a dict of metrics."""

    @abc.abstractmethod
    def build_training_data_loader(self) -> Any: ...

    @abc.abstractmethod
    def build_validation_data_loader(self) -> Any: ...

    def build_callbacks(self) -> dict[str, PyTorchCallback]:
        return {}

    def evaluate_batch(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        raise NotImplementedError("the trial must define evaluate_batch()")

    def evaluation_reducer(self) -> Reducer | dict[str, Reducer]:
        return Reducer.AVG

    def _shim_on_plan(self, batches_per_epoch: int, total_batches: int) -> None:  # noqa: B027
        """Called once the loaders are built, before any checkpoint is restored."""

    def _shim_on_run_end(self, status: str) -> None:  # noqa: B027 - optional hook
        """Called once when the run ends (``completed``, ``preempted`` or ``failed``)."""

    def get_batch_length(self, batch: Any) -> int:
        """Records in a batch (for weighting); the first tensor's first dimension."""
        return _batch_length(batch)


def _batch_length(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, dict):
        for value in batch.values():
            return _batch_length(value)
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_length(batch[0])
    return 1
