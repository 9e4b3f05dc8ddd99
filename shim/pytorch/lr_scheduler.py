"""``LRScheduler``: Determined 0.38's wrapper, and the rule for when the controller steps it."""

from __future__ import annotations

import enum
from typing import Any

import torch

from shim.errors import ShimError

__all__ = [
    "LRScheduler",
    "LRSchedulerError",
    "LRSchedulerTypeError",
    "lr_steps_after_batch",
    "should_step_after_batch",
]


class LRSchedulerError(ShimError, ValueError):
    """An ``LRScheduler`` wrapped, or asked about, with arguments it cannot honour."""


class LRSchedulerTypeError(ShimError, TypeError):
    """``step_mode`` is not an ``LRScheduler.StepMode``."""


def _step_mode(step_mode: Any) -> LRScheduler.StepMode:
    try:
        # Enum members only, as Determined: a bare 2 is no StepMode.
        if not isinstance(step_mode, enum.Enum):
            raise ValueError(step_mode)
        return LRScheduler.StepMode(step_mode)
    except ValueError:
        members = ", ".join(LRScheduler.StepMode.__members__)
        raise LRSchedulerTypeError(
            f"step_mode must be an LRScheduler.StepMode ({members}), "
            f"got {step_mode!r} of type {type(step_mode).__name__}"
        ) from None


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LRSchedulerError(f"{name} must be an int >= 1, got {value!r}")
    return value


class LRScheduler:
    """Wraps a torch LR scheduler: stepped by the controller per ``step_mode``, checkpointed.

    ``STEP_EVERY_EPOCH`` / ``STEP_EVERY_BATCH`` / ``STEP_EVERY_OPTIMIZER_STEP`` step every
    ``frequency`` epochs / batches / optimizer steps; ``MANUAL_STEP`` leaves ``step()`` to the
    trial.
    """

    class StepMode(enum.Enum):
        """When the controller calls ``scheduler.step()``.

        Also accepts the same member of ``determined.pytorch.LRScheduler.StepMode``, so a trial
        that imports the real package may pass its members.
        """

        STEP_EVERY_EPOCH = 1
        STEP_EVERY_BATCH = 2
        MANUAL_STEP = 3
        STEP_EVERY_OPTIMIZER_STEP = 4

        @classmethod
        def _missing_(cls, value: object) -> Any:
            # By class and member name, not value: Reducer.AVG (also 1) is no StepMode.
            if isinstance(value, enum.Enum) and type(value).__qualname__ == cls.__qualname__:
                return cls.__members__.get(value.name)
            return None

    def __init__(
        self,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        step_mode: StepMode,
        frequency: int = 1,
    ) -> None:
        self._step_mode = _step_mode(step_mode)
        self._frequency = _positive("LRScheduler frequency", frequency)
        self._scheduler = scheduler

    def step(self, *args: Any, **kwargs: Any) -> None:
        self._scheduler.step(*args, **kwargs)

    def get_last_lr(self) -> list:
        return self._scheduler.get_last_lr()

    def load_state_dict(self, state_dict: dict[Any, Any]) -> None:
        self._scheduler.load_state_dict(state_dict)

    def state_dict(self) -> dict[Any, Any]:
        return self._scheduler.state_dict()


def lr_steps_after_batch(
    step_mode: Any,
    frequency: int,
    batch_idx: int,
    epoch_len: int,
    aggregation_frequency: int = 1,
) -> int:
    """How many times to step after global batch ``batch_idx`` (Determined's controller rule).

    Nothing steps between optimizer steps (every ``aggregation_frequency`` batches). Batch mode
    steps for each batch ``i`` of the aggregation window with ``(i + 1) % frequency == 0``;
    optimizer-step mode when ``(batch_idx + 1) % frequency == 0``; epoch mode once for each epoch
    ``e`` the next optimizer step crosses into with ``(e + 1) % frequency == 0``.
    """
    mode = _step_mode(step_mode)
    _positive("frequency", frequency)
    _positive("epoch_len", epoch_len)
    agg = _positive("aggregation_frequency", aggregation_frequency)
    if isinstance(batch_idx, bool) or not isinstance(batch_idx, int) or batch_idx < 0:
        raise LRSchedulerError(f"batch_idx must be an int >= 0, got {batch_idx!r}")
    if (batch_idx + 1) % agg != 0 or mode is LRScheduler.StepMode.MANUAL_STEP:
        return 0
    if mode is LRScheduler.StepMode.STEP_EVERY_BATCH:
        return sum((i + 1) % frequency == 0 for i in range(batch_idx - agg + 1, batch_idx + 1))
    if mode is LRScheduler.StepMode.STEP_EVERY_OPTIMIZER_STEP:
        return int((batch_idx + 1) % frequency == 0)
    epochs = range(batch_idx // epoch_len, (batch_idx + agg) // epoch_len)
    return sum((e + 1) % frequency == 0 for e in epochs)


def should_step_after_batch(step_mode: Any, frequency: int, batch_idx: int, epoch_len: int) -> bool:
    """Whether to step after global batch ``batch_idx`` without gradient aggregation.

    Batch modes at ``(batch_idx + 1) % frequency == 0``; epoch mode when the batch is the last of
    epoch ``e`` and ``(e + 1) % frequency == 0``; never for ``MANUAL_STEP``.
    """
    return lr_steps_after_batch(step_mode, frequency, batch_idx, epoch_len) > 0
