"""``self.log`` / ``self.log_dict`` with Lightning's arguments, bound onto the module instance.

Step values join the batch's training metrics; epoch values are reduced (batch-size weighted
mean by default, as Lightning) at the end of the training or validation epoch and join the
validation metrics. Everything also lands in ``callback_metrics`` (what ReduceLROnPlateau and user
code read) and goes to TensorBoard through the metric reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from shim.errors import ShimError

__all__ = ["LogCollector", "extract_batch_size"]

_STEP_HOOKS = frozenset(
    {
        "training_step",
        "training_step_end",
        "on_train_batch_start",
        "on_train_batch_end",
        "on_before_backward",
        "on_after_backward",
        "on_before_optimizer_step",
        "on_before_zero_grad",
        "optimizer_zero_grad",
        "configure_gradient_clipping",
    }
)
_VALIDATION_BATCH_HOOKS = frozenset(
    {
        "validation_step",
        "validation_step_end",
        "on_validation_batch_start",
        "on_validation_batch_end",
    }
)
_REDUCERS = ("mean", "sum", "max", "min")


@dataclass
class _Accumulator:
    reduce_fx: str
    total: float = 0.0
    weight: float = 0.0
    extreme: float | None = None

    def add(self, value: float, batch_size: int) -> None:
        if self.reduce_fx == "mean":
            # In float32, step by step, as Lightning's _ResultMetric accumulates: the epoch
            # value (and what ReduceLROnPlateau or "best" compare) is then bitwise Lightning's.
            total = torch.tensor(self.total, dtype=torch.float32)
            self.total = float(total + torch.tensor(value, dtype=torch.float32) * batch_size)
            self.weight += batch_size
        elif self.reduce_fx == "sum":
            self.total += value
        elif self.extreme is None:
            self.extreme = value
        else:
            self.extreme = (
                max(self.extreme, value) if self.reduce_fx == "max" else min(self.extreme, value)
            )

    def merge(self, other: _Accumulator) -> None:
        """Add another rank's accumulation (``sync_dist``)."""
        if self.reduce_fx == "mean":
            total = torch.tensor(self.total, dtype=torch.float32)
            self.total = float(total + torch.tensor(other.total, dtype=torch.float32))
            self.weight += other.weight
        elif self.reduce_fx == "sum":
            self.total += other.total
        elif other.extreme is not None:
            self.add(other.extreme, 1)

    def result(self) -> float:
        if self.reduce_fx == "mean":
            if not self.weight:
                return math.nan
            mean = torch.tensor(self.total, dtype=torch.float32) / int(self.weight)
            return float(mean)
        if self.reduce_fx == "sum":
            return self.total
        return self.extreme if self.extreme is not None else math.nan


class LogCollector:
    """Collects what the module logs; the adapter tells it which hook is running.

    ``allgather`` (an object allgather over the ranks; None in one process) makes
    ``sync_dist=True`` epoch values the reduction over every rank's batches, as Lightning's
    ``sync_dist`` does: a mean is sum(value * batch size) / sum(batch size) over all ranks; sum,
    max and min reduce with their own operation. Every rank gathers at every epoch's end, so a
    rank that logged nothing (no validation batches) still takes part."""

    def __init__(self, allgather: Callable[[Any], list[Any]] | None = None) -> None:
        self._allgather = allgather
        self._synced: dict[str, set[str]] = {"train": set(), "val": set()}
        self.current_hook = ""
        self.batch: Any = None
        self.step_metrics: dict[str, Any] = {}
        self.callback_metrics: dict[str, Any] = {}
        self.logged_metrics: dict[str, Any] = {}
        self.progress_bar_metrics: dict[str, Any] = {}
        self._epoch: dict[str, dict[str, _Accumulator]] = {"train": {}, "val": {}}
        self._stepped_too: set[str] = set()

    # -- bound onto the module -------------------------------------------------------------------

    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: Any = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Any = None,
        add_dataloader_idx: bool = True,
        batch_size: int | None = None,
        metric_attribute: str | None = None,
        rank_zero_only: bool = False,
        **legacy: Any,
    ) -> None:
        """Lightning's ``log``; 1.x-only arguments (``sync_dist_op``, ``tbptt_*``) are accepted
        and ignored, as the hook table's LA306 says."""
        number = _scalar(name, value)
        step_default, epoch_default = self._defaults()
        on_step = step_default if on_step is None else on_step
        on_epoch = epoch_default if on_epoch is None else on_epoch
        reducer = "mean" if reduce_fx == "mean" else _reducer_name(reduce_fx, name)
        if on_step and on_epoch:
            self._stepped_too.add(name)
        if on_step:
            key = f"{name}_step" if on_epoch else name
            if logger is not False:
                self.logged_metrics[key] = number
            # Lightning's callback_metrics take step values only in training (`name` and
            # `name_step`); validation contributes its epoch values alone.
            if self.current_hook not in _VALIDATION_BATCH_HOOKS:
                self.step_metrics[key] = number
                self.callback_metrics[key] = number
                self.callback_metrics[name] = number
        if on_epoch:
            stage = "val" if "validation" in self.current_hook else "train"
            if sync_dist:
                self._synced[stage].add(name)
            size = batch_size if batch_size is not None else extract_batch_size(self.batch)
            bucket = self._epoch[stage].setdefault(name, _Accumulator(reducer))
            bucket.add(float(number), size)
        if prog_bar:
            self.progress_bar_metrics[name] = number

    def log_dict(self, dictionary: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        for name, value in dictionary.items():
            self.log(name, value, *args, **kwargs)

    # -- read by the adapter ---------------------------------------------------------------------

    def take_step_metrics(self) -> dict[str, Any]:
        out, self.step_metrics = self.step_metrics, {}
        return out

    def finish_epoch(self, stage: str) -> dict[str, float]:
        """Reduce the epoch's values. A name also logged per step is ``name_epoch`` for the
        logger, and both ``name`` and ``name_epoch`` in ``callback_metrics``, as in Lightning.

        Returns what the epoch reports: the validation metrics are what ``callback_metrics``
        holds (so ``searcher.metric: name`` finds ``name``); the training epoch values are what
        Lightning's logger gets."""
        if self._allgather is not None:
            self._sync(stage)
        logged: dict[str, Any] = {}
        callback: dict[str, Any] = {}
        for name, bucket in self._epoch[stage].items():
            value = bucket.result()
            key = f"{name}_epoch" if name in self._stepped_too else name
            logged[key] = callback[key] = callback[name] = value
        self._epoch[stage] = {}
        self.callback_metrics.update(callback)
        self.logged_metrics.update(logged)
        return callback if stage == "val" else logged

    def _sync(self, stage: str) -> None:
        assert self._allgather is not None
        buckets = self._epoch[stage]
        mine = {name: buckets[name] for name in self._synced[stage] if name in buckets}
        merged: dict[str, _Accumulator] = {}
        for per_rank in self._allgather(mine):
            for name, bucket in per_rank.items():
                merged.setdefault(name, _Accumulator(bucket.reduce_fx)).merge(bucket)
        buckets.update(merged)
        self._synced[stage] = set()

    def state_dict(self) -> dict[str, Any]:
        return {
            stage: {n: [a.reduce_fx, a.total, a.weight, a.extreme] for n, a in buckets.items()}
            for stage, buckets in self._epoch.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for stage, buckets in state.items():
            self._epoch[stage] = {
                name: _Accumulator(fx, total, weight, extreme)
                for name, (fx, total, weight, extreme) in buckets.items()
            }

    def _defaults(self) -> tuple[bool, bool]:
        if self.current_hook in _STEP_HOOKS:
            return True, False
        return False, True


def extract_batch_size(batch: Any) -> int:
    """Lightning's rule: the first tensor's ``size(0)``, searching containers in order."""
    if isinstance(batch, torch.Tensor):
        return int(batch.size(0)) if batch.dim() else 1
    if isinstance(batch, Mapping):
        for value in batch.values():
            size = extract_batch_size(value)
            if size:
                return size
    if isinstance(batch, (list, tuple)):
        for value in batch:
            size = extract_batch_size(value)
            if size:
                return size
    return 1


def _scalar(name: str, value: Any) -> torch.Tensor | float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ShimError(
                f"self.log({name!r}, ...) got a tensor of shape {tuple(value.shape)}; "
                "log a scalar (e.g. value.mean())"
            )
        # Kept as a tensor: converting now would wait for the device on every step.
        return value.detach()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Mapping):
            raise ShimError(
                f"self.log({name!r}, ...) got a dict; use self.log_dict() for several values"
            )
        raise ShimError(f"self.log({name!r}, ...) needs a number or scalar tensor, not {value!r}")
    return float(value)


def _reducer_name(reduce_fx: Any, name: str) -> str:
    fx = getattr(reduce_fx, "__name__", reduce_fx)
    fx = {"amax": "max", "amin": "min", "avg": "mean"}.get(str(fx), str(fx))
    if fx not in _REDUCERS:
        raise ShimError(
            f"self.log({name!r}, reduce_fx={reduce_fx!r}): only 'mean', 'sum', 'max' and 'min' "
            "are supported, as in Lightning"
        )
    return fx
