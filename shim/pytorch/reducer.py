"""Metric reduction: Determined 0.38's ``Reducer`` and ``MetricReducer``, and the reductions
its controller applies (``_reducer.py`` and ``_metric_utils.py``).

- Validation: the per-batch dicts must share their keys; each metric is reduced over batches
  (mean by default), then ranks are combined, the mean weighted by each rank's batch count.
- Training: each metric is averaged over the reporting period. One deliberate difference:
  Determined rejects batches with different keys; here a metric is averaged over the batches
  that report it, since Lightning modules often ``self.log`` a value only on some steps.
  Values that are not numbers are left out with a warning (Determined reports ``None``).
"""

from __future__ import annotations

import abc
import enum
import itertools
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from shim.errors import ShimError

__all__ = [
    "MetricReducer",
    "MetricsError",
    "Reducer",
    "SimpleReducer",
    "average_training_metrics",
    "combine_ranks",
    "reduce_validation_metrics",
]


class MetricsError(ShimError, ValueError):
    """Metrics that cannot be reduced: mismatched names, non-numbers, a wrong reducer."""


class Reducer(enum.Enum):
    """How validation metrics are reduced over batches and ranks.

    Also accepts the same member of ``determined.pytorch.Reducer``, so a trial importing the real
    package may return its members from ``evaluation_reducer()``.
    """

    AVG = 1
    SUM = 2
    MAX = 3
    MIN = 4

    @classmethod
    def _missing_(cls, value: object) -> Any:
        # By class and member name, not value: StepMode.STEP_EVERY_EPOCH (also 1) is no Reducer.
        if isinstance(value, enum.Enum) and type(value).__qualname__ == cls.__qualname__:
            return cls.__members__.get(value.name)
        return None


class MetricReducer(metaclass=abc.ABCMeta):
    """A custom, distributed-aware metric (Determined's interface).

    Values are gathered by the trial (e.g. an ``update()`` it defines), ``per_slot_reduce()``
    condenses them on each rank, and ``cross_slot_reduce()`` combines the list of per-rank results
    on the chief. ``reset()`` runs before each training period and validation.
    """

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget the values gathered so far."""

    @abc.abstractmethod
    def per_slot_reduce(self) -> Any:
        """This rank's picklable partial result."""

    @abc.abstractmethod
    def cross_slot_reduce(self, per_slot_metrics: list) -> Any:
        """The metric (or a dict of metrics, when wrapped without a name) from all ranks."""


class SimpleReducer(MetricReducer):
    """A function of all values, as a ``MetricReducer`` (Determined's ``_SimpleReducer``)."""

    def __init__(self, fn: Callable[[list], Any]) -> None:
        self.fn = fn
        self.values: list = []

    def reset(self) -> None:
        self.values = []

    def update(self, value: Any) -> None:
        self.values.append(value)

    def per_slot_reduce(self) -> Any:
        return self.values

    def cross_slot_reduce(self, per_slot_metrics: list) -> Any:
        # Interleave ranks to undo the round-robin sharding (exact if update() runs once a batch).
        missing = object()
        interleaved = itertools.zip_longest(*per_slot_metrics, fillvalue=missing)
        return self.fn([m for row in interleaved for m in row if m is not missing])


def _reducers(reducer: Any, keys: list[str]) -> dict[str, Reducer]:
    if isinstance(reducer, Mapping):
        if set(reducer) != set(keys):
            raise MetricsError(
                "evaluation_reducer() returned reducers for "
                f"{sorted(reducer)} but the validation metrics are {sorted(keys)}; return one "
                "Reducer, or a dict with a Reducer for every validation metric"
            )
        chosen = dict(reducer)
    else:
        chosen = dict.fromkeys(keys, reducer)
    return {key: _reducer(key, value) for key, value in chosen.items()}


def _reducer(key: str, value: Any) -> Reducer:
    try:
        # Enum members only, as Determined: a bare 1 is no Reducer.
        if not isinstance(value, enum.Enum):
            raise ValueError(value)
        return Reducer(value)
    except ValueError:
        raise MetricsError(
            f"the reducer for validation metric {key!r} is {value!r}; use a "
            "determined.pytorch.Reducer (AVG, SUM, MAX or MIN)"
        ) from None


def _numeric(value: Any) -> np.ndarray | None:
    """The value as a numeric array, or None when it is not made of real numbers."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nesting
        return None
    return array if array.dtype.kind in "biuf" else None


def _reduce(reducer: Reducer, values: np.ndarray, weights: list[int] | None = None) -> float:
    if reducer is Reducer.AVG:
        return float(np.average(values, weights=weights))
    if reducer is Reducer.SUM:
        return float(np.sum(values))
    if reducer is Reducer.MAX:
        return float(np.max(values))
    return float(np.min(values))


def _check_keys(metrics: list[dict[str, Any]], what: str) -> list[str]:
    keys = list(metrics[0])
    for idx, entry in enumerate(metrics):
        if set(entry) != set(keys):
            raise MetricsError(
                f"{what} {idx} has metrics {sorted(entry)} but {what} 0 has {sorted(keys)}; "
                "every validation batch must return the same metric names"
            )
    return keys


def _stack(name: str, batch_metrics: list[dict[str, Any]]) -> np.ndarray:
    arrays = []
    for idx, batch in enumerate(batch_metrics):
        array = _numeric(batch[name])
        if array is None:
            raise MetricsError(
                f"validation metric {name!r} of batch {idx} is {batch[name]!r}; "
                "return numbers or numeric tensors"
            )
        arrays.append(array)
    try:
        return np.stack(arrays)
    except ValueError:
        shapes = sorted({a.shape for a in arrays})
        raise MetricsError(
            f"validation metric {name!r} has different shapes across batches {shapes}; "
            "return a scalar per batch (or use a MetricReducer)"
        ) from None


def reduce_validation_metrics(
    batch_metrics: list[dict[str, Any]], reducer: Reducer | dict[str, Reducer]
) -> dict[str, float]:
    """This rank's validation metrics: each metric reduced over its batches.

    Returns ``{}`` for no batches (a rank with an empty shard); ``combine_ranks`` skips it.
    """
    if not batch_metrics:
        return {}
    keys = _check_keys(batch_metrics, "validation batch")
    reducers = _reducers(reducer, keys)
    return {name: _reduce(reducers[name], _stack(name, batch_metrics)) for name in keys}


def combine_ranks(
    per_rank: list[tuple[dict[str, float], int]],
    reducer: Reducer | dict[str, Reducer] = Reducer.AVG,
) -> dict[str, float]:
    """Combine each rank's ``(metrics, num_batches)``; the mean is weighted by batch count.

    Ranks without batches are skipped, as in Determined; ``{}`` when no rank had any.
    """
    for rank, (_, num_batches) in enumerate(per_rank):
        if num_batches < 0:
            raise MetricsError(f"rank {rank} reports {num_batches} validation batches; need >= 0")
    reporting = [(metrics, n) for metrics, n in per_rank if n]
    if not reporting:
        return {}
    keys = _check_keys([metrics for metrics, _ in reporting], "reporting rank")
    reducers = _reducers(reducer, keys)
    weights = [n for _, n in reporting]
    return {
        name: _reduce(reducers[name], np.array([m[name] for m, _ in reporting]), weights)
        for name in keys
    }


def average_training_metrics(batch_metrics: list[dict[str, Any]]) -> dict[str, float]:
    """Each metric's mean over the batches that report it (``None`` values are skipped)."""
    values: dict[str, list[Any]] = {}
    for batch in batch_metrics:
        for name, value in batch.items():
            values.setdefault(name, []).append(value)
    averages = {}
    for name, raw in values.items():
        present = [v for v in raw if v is not None]
        if not present:
            continue
        mean = _mean(present)
        if mean is None:
            kinds = sorted({type(v).__name__ for v in present})
            warnings.warn(
                f"training metric {name!r} has values of type {kinds} that cannot be averaged "
                "(not numbers, or arrays of different shapes); it is left out of the reported "
                "training metrics",
                stacklevel=2,
            )
            continue
        averages[name] = mean
    return averages


def _mean(values: list[Any]) -> float | None:
    arrays = [_numeric(v) for v in values]
    if any(a is None for a in arrays):
        return None
    try:
        return float(np.mean(np.stack(arrays)))  # type: ignore[arg-type]
    except ValueError:
        return None
