"""``shim.pytorch.lr_scheduler``: the wrapper's contract and the controller's step rule."""

from __future__ import annotations

import functools
import inspect
from types import SimpleNamespace
from typing import Any

import determined.pytorch as det_pytorch
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.pytorch.lr_scheduler import (
    LRScheduler,
    LRSchedulerError,
    LRSchedulerTypeError,
    lr_steps_after_batch,
    should_step_after_batch,
)
from shim.pytorch.reducer import Reducer

Mode = LRScheduler.StepMode
EPOCH, BATCH, MANUAL, OPT = (
    Mode.STEP_EVERY_EPOCH,
    Mode.STEP_EVERY_BATCH,
    Mode.MANUAL_STEP,
    Mode.STEP_EVERY_OPTIMIZER_STEP,
)


def scheduler() -> torch.optim.lr_scheduler.StepLR:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    stepped = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    optimizer.step()  # torch warns when a scheduler steps before its optimizer ever did
    return stepped


@pytest.mark.parametrize(
    "name", ["__init__", "step", "get_last_lr", "state_dict", "load_state_dict"]
)
def test_signatures_match_determined(name: str) -> None:
    def describe(fn: Any) -> list[tuple[str, str, Any]]:
        params = inspect.signature(fn).parameters.values()
        return [(p.name, p.kind.name, p.default) for p in params]

    assert describe(getattr(LRScheduler, name)) == describe(getattr(det_pytorch.LRScheduler, name))


def test_step_modes_have_determined_names_and_values() -> None:
    assert [(m.name, m.value) for m in Mode] == [
        (m.name, m.value) for m in det_pytorch.LRScheduler.StepMode
    ]


def test_the_wrapper_steps_reports_and_restores_the_torch_scheduler() -> None:
    wrapped = LRScheduler(scheduler(), BATCH)
    wrapped.step()
    wrapped.step()
    assert wrapped.get_last_lr() == [0.25]
    restored = LRScheduler(scheduler(), BATCH)
    restored.load_state_dict(wrapped.state_dict())
    assert restored.get_last_lr() == [0.25]
    assert restored.state_dict() == wrapped.state_dict()


def test_members_of_determineds_step_mode_are_accepted() -> None:
    wrapped = LRScheduler(scheduler(), det_pytorch.LRScheduler.StepMode.STEP_EVERY_EPOCH)  # type: ignore[arg-type]
    assert wrapped._step_mode is EPOCH
    assert should_step_after_batch(det_pytorch.LRScheduler.StepMode.MANUAL_STEP, 1, 0, 1) is False


@pytest.mark.parametrize("step_mode", [2, "STEP_EVERY_BATCH", Reducer.AVG, None])
def test_a_step_mode_that_is_no_step_mode_is_rejected(step_mode: Any) -> None:
    with pytest.raises(LRSchedulerTypeError, match=r"step_mode must be an LRScheduler\.StepMode"):
        LRScheduler(scheduler(), step_mode)


@pytest.mark.parametrize("frequency", [0, -3, True, 1.5])
def test_a_frequency_below_one_or_not_an_int_is_rejected(frequency: Any) -> None:
    with pytest.raises(LRSchedulerError, match=r"LRScheduler frequency must be an int >= 1"):
        LRScheduler(scheduler(), BATCH, frequency)


# (step_mode, frequency, batch_idx, epoch_len, steps)
RULE = [
    (BATCH, 1, 0, 5, True),
    (BATCH, 1, 7, 5, True),
    (BATCH, 3, 1, 5, False),
    (BATCH, 3, 2, 5, True),
    (BATCH, 3, 5, 5, True),
    (OPT, 2, 0, 5, False),
    (OPT, 2, 1, 5, True),
    (EPOCH, 1, 3, 5, False),
    (EPOCH, 1, 4, 5, True),
    (EPOCH, 1, 9, 5, True),
    (EPOCH, 2, 4, 5, False),  # the end of epoch 0: (0 + 1) % 2 != 0
    (EPOCH, 2, 9, 5, True),  # the end of epoch 1
    (EPOCH, 2, 14, 5, False),
    (EPOCH, 1, 0, 1, True),  # one-batch epochs end on every batch
    (MANUAL, 1, 4, 5, False),
]


@pytest.mark.parametrize(("mode", "frequency", "batch_idx", "epoch_len", "steps"), RULE)
def test_the_step_rule_follows_determined(
    mode: Any, frequency: int, batch_idx: int, epoch_len: int, steps: bool
) -> None:
    assert should_step_after_batch(mode, frequency, batch_idx, epoch_len) is steps


def determined_steps(mode: Any, frequency: int, batch_idx: int, epoch_len: int, agg: int) -> int:
    """Steps taken by Determined's own controller method, run on a minimal receiver."""
    context = SimpleNamespace(
        _managed_training=True,
        _current_batch_idx=batch_idx,
        _aggregation_frequency=agg,
        _epoch_len=epoch_len,
    )
    context._should_communicate_and_update = functools.partial(
        det_pytorch.PyTorchTrialContext._should_communicate_and_update, context
    )
    controller = SimpleNamespace(context=context)
    controller._get_epoch_idx = functools.partial(
        det_pytorch._PyTorchTrialController._get_epoch_idx, controller
    )
    torch_scheduler = scheduler()
    wrapped = det_pytorch.LRScheduler(
        torch_scheduler, det_pytorch.LRScheduler.StepMode(mode.value), frequency
    )
    det_pytorch._PyTorchTrialController._auto_step_lr_scheduler_per_batch(
        controller, batch_idx, wrapped
    )
    return int(torch_scheduler.last_epoch)


@settings(max_examples=300, deadline=None)
@given(
    mode=st.sampled_from(list(Mode)),
    frequency=st.integers(1, 4),
    batch_idx=st.integers(0, 40),
    epoch_len=st.integers(1, 7),
    agg=st.integers(1, 3),
)
def test_step_counts_equal_determineds_controller(
    mode: Any, frequency: int, batch_idx: int, epoch_len: int, agg: int
) -> None:
    expected = determined_steps(mode, frequency, batch_idx, epoch_len, agg)
    assert lr_steps_after_batch(mode, frequency, batch_idx, epoch_len, agg) == expected
    if agg == 1:
        assert should_step_after_batch(mode, frequency, batch_idx, epoch_len) is (expected > 0)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((BATCH, 0, 0, 5), "frequency must be an int >= 1, got 0"),
        ((BATCH, 1, -1, 5), "batch_idx must be an int >= 0, got -1"),
        ((EPOCH, 1, 0, 0), "epoch_len must be an int >= 1, got 0"),
        ((BATCH, 1, 0, 5, 0), "aggregation_frequency must be an int >= 1, got 0"),
    ],
)
def test_the_step_rule_rejects_impossible_positions(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(LRSchedulerError, match=match):
        lr_steps_after_batch(*args)


def test_the_step_rule_rejects_a_step_mode_that_is_no_step_mode() -> None:
    with pytest.raises(LRSchedulerTypeError, match="got 'batch' of type str"):
        should_step_after_batch("batch", 1, 0, 5)
