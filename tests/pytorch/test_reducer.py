"""``shim.pytorch.reducer`` against Determined's ``_reducer.py`` and ``_metric_utils.py``."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import determined as det
import determined.pytorch as det_pytorch
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.pytorch.lr_scheduler import LRScheduler
from shim.pytorch.reducer import (
    MetricReducer,
    MetricsError,
    Reducer,
    SimpleReducer,
    average_training_metrics,
    combine_ranks,
    reduce_validation_metrics,
)

finite = st.floats(-1e6, 1e6, allow_nan=False)


def test_reducers_have_determined_names_and_values() -> None:
    assert [(r.name, r.value) for r in Reducer] == [(r.name, r.value) for r in det_pytorch.Reducer]


@pytest.mark.parametrize("name", ["reset", "per_slot_reduce", "cross_slot_reduce"])
def test_metric_reducer_methods_match_determined(name: str) -> None:
    def describe(fn: Any) -> list[tuple[str, str, Any]]:
        return [(p.name, p.kind.name, p.default) for p in inspect.signature(fn).parameters.values()]

    assert describe(getattr(MetricReducer, name)) == describe(
        getattr(det_pytorch.MetricReducer, name)
    )
    assert MetricReducer.__abstractmethods__ == det_pytorch.MetricReducer.__abstractmethods__


def test_members_of_determineds_reducer_are_accepted() -> None:
    assert Reducer(det_pytorch.Reducer.MAX) is Reducer.MAX
    metrics = [{"a": 1.0}, {"a": 3.0}]
    assert reduce_validation_metrics(metrics, det_pytorch.Reducer.MAX) == {"a": 3.0}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reducer", "expected"),
    [(Reducer.AVG, 2.0), (Reducer.SUM, 6.0), (Reducer.MAX, 3.0), (Reducer.MIN, 1.0)],
)
def test_validation_metrics_are_reduced_over_batches(reducer: Reducer, expected: float) -> None:
    batches = [{"loss": 1.0}, {"loss": torch.tensor(2.0)}, {"loss": np.float32(3.0)}]
    assert reduce_validation_metrics(batches, reducer) == {"loss": expected}


def test_each_validation_metric_can_have_its_own_reducer() -> None:
    batches = [{"a": 1, "b": 1}, {"a": 5, "b": 5}]
    reducers = {"a": Reducer.SUM, "b": Reducer.MIN}
    assert reduce_validation_metrics(batches, reducers) == {"a": 6.0, "b": 1.0}


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.tuples(finite, finite), min_size=1, max_size=8),
    reducer=st.sampled_from(list(Reducer)),
)
def test_one_rank_reduces_as_determined(
    values: list[tuple[float, float]], reducer: Reducer
) -> None:
    batches = [{"x": x, "v": torch.tensor([y, x])} for x, y in values]
    theirs = det_pytorch._reduce_metrics(
        det.core.DummyDistributedContext(),
        batch_metrics=[det_pytorch._convert_metrics_to_numpy(dict(b)) for b in batches],
        keys=batches[0].keys(),
        metrics_reducers=dict.fromkeys(["x", "v"], det_pytorch.Reducer(reducer.value)),
    )
    ours = reduce_validation_metrics(batches, reducer)
    assert ours == pytest.approx({k: float(v) for k, v in theirs.items()})


def test_no_validation_batches_reduce_to_no_metrics() -> None:
    assert reduce_validation_metrics([], Reducer.AVG) == {}


def test_batches_with_different_metric_names_are_an_error_naming_the_batch() -> None:
    batches = [{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1, "c": 2}]
    with pytest.raises(
        MetricsError,
        match=r"batch 2 has metrics \['a', 'c'\] but validation batch 0 has \['a', 'b'\]",
    ):
        reduce_validation_metrics(batches, Reducer.AVG)


@pytest.mark.parametrize(
    ("batches", "match"),
    [
        ([{"a": 1}, {"a": "high"}], r"validation metric 'a' of batch 1 is 'high'"),
        ([{"a": None}], r"validation metric 'a' of batch 0 is None"),
        (
            [{"a": torch.ones(3)}, {"a": torch.ones(2)}],
            r"'a' has different shapes across batches \[\(2,\), \(3,\)\]",
        ),
    ],
)
def test_validation_values_that_cannot_be_reduced_are_an_error(
    batches: list[dict[str, Any]], match: str
) -> None:
    with pytest.raises(MetricsError, match=match):
        reduce_validation_metrics(batches, Reducer.AVG)


@pytest.mark.parametrize(
    ("reducer", "match"),
    [
        ({"a": Reducer.AVG}, r"reducers for \['a'\] but the validation metrics are \['a', 'b'\]"),
        ({"a": Reducer.AVG, "b": "sum"}, r"the reducer for validation metric 'b' is 'sum'"),
        (1, r"the reducer for validation metric 'a' is 1"),
        (LRScheduler.StepMode.STEP_EVERY_EPOCH, "is <StepMode.STEP_EVERY_EPOCH: 1>"),
    ],
)
def test_a_reducer_that_does_not_fit_the_metrics_is_an_error(reducer: Any, match: str) -> None:
    with pytest.raises(MetricsError, match=match):
        reduce_validation_metrics([{"a": 1, "b": 2}], reducer)


def test_ranks_are_combined_weighted_by_their_batch_counts() -> None:
    per_rank = [({"loss": 1.0}, 3), ({"loss": 5.0}, 1), ({}, 0)]
    assert combine_ranks(per_rank) == {"loss": 2.0}


@settings(max_examples=50, deadline=None)
@given(
    ranks=st.lists(st.tuples(finite, st.integers(0, 5)), min_size=1, max_size=4),
    reducer=st.sampled_from(list(Reducer)),
)
def test_ranks_combine_as_determined(ranks: list[tuple[float, int]], reducer: Reducer) -> None:
    reporting = [(value, n) for value, n in ranks if n]
    ours = combine_ranks([({"m": value}, n) for value, n in ranks], reducer)
    if not reporting:
        assert ours == {}
        return
    theirs = det_pytorch._simple_reduce_metrics(
        det_pytorch.Reducer(reducer.value),
        np.array([value for value, _ in reporting]),
        num_batches=[n for _, n in reporting],
    )
    assert ours == {"m": pytest.approx(float(theirs))}


def test_ranks_with_different_metric_names_are_an_error_naming_the_rank() -> None:
    with pytest.raises(MetricsError, match=r"reporting rank 1 has metrics \['b'\]"):
        combine_ranks([({"a": 1.0}, 1), ({"b": 1.0}, 2)])


def test_a_negative_batch_count_is_an_error_naming_the_rank() -> None:
    with pytest.raises(MetricsError, match="rank 1 reports -1 validation batches"):
        combine_ranks([({"a": 1.0}, 1), ({"a": 1.0}, -1)])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(finite, st.one_of(st.none(), finite)), min_size=1, max_size=10))
def test_training_metrics_average_as_determined(values: list[tuple[float, float | None]]) -> None:
    batches = [{"loss": x, "acc": y} for x, y in values]
    with warnings.catch_warnings():  # numpy's "mean of empty slice" when acc is always None
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs = det.util.make_metrics(None, batches)["avg_metrics"]
    ours = average_training_metrics(batches)
    expected = {k: v for k, v in theirs.items() if not (v is None or np.isnan(v))}
    assert ours == pytest.approx(expected)


def test_training_tensors_are_averaged_as_numbers() -> None:
    batches = [{"loss": torch.tensor(1.0, requires_grad=True)}, {"loss": torch.tensor(3.0)}]
    assert average_training_metrics(batches) == {"loss": 2.0}


def test_a_training_metric_is_averaged_over_the_batches_that_report_it() -> None:
    batches = [{"loss": 1.0, "lr": 0.5}, {"loss": 3.0}, {"loss": 5.0, "lr": 0.1}]
    assert average_training_metrics(batches) == {"loss": 3.0, "lr": pytest.approx(0.3)}


def test_a_training_metric_that_is_always_none_is_left_out() -> None:
    assert average_training_metrics([{"loss": 1.0, "aux": None}]) == {"loss": 1.0}


@pytest.mark.parametrize(
    ("values", "kinds"),
    [(["a", "b"], r"\['str'\]"), ([np.ones(2), np.ones(3)], r"\['ndarray'\]")],
)
def test_training_values_that_cannot_be_averaged_are_left_out_with_a_warning(
    values: list[Any], kinds: str
) -> None:
    batches = [{"loss": 1.0, "tag": value} for value in values]
    with pytest.warns(UserWarning, match=rf"training metric 'tag' has values of type {kinds}"):
        assert average_training_metrics(batches) == {"loss": 1.0}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(0, 9), max_size=5), min_size=1, max_size=3))
def test_a_simple_reducer_sees_values_in_determineds_interleaved_order(
    per_slot: list[list[int]],
) -> None:
    ours, theirs = SimpleReducer(list), det_pytorch._SimpleReducer(list)
    assert ours.cross_slot_reduce(per_slot) == theirs.cross_slot_reduce(per_slot)


def test_a_simple_reducer_gathers_updates_until_reset() -> None:
    reducer = SimpleReducer(sum)
    reducer.update(2)
    reducer.update(3)
    assert reducer.cross_slot_reduce([reducer.per_slot_reduce()]) == 5
    reducer.reset()
    assert reducer.per_slot_reduce() == []


def test_a_metric_reducer_must_define_every_step() -> None:
    class Partial(MetricReducer):
        def reset(self) -> None: ...

    with pytest.raises(TypeError, match="per_slot_reduce"):
        Partial()  # type: ignore[abstract]


@pytest.mark.gpu
def test_cuda_tensor_metrics_reduce_and_average_like_cpu_ones() -> None:
    batches = [
        {"loss": torch.tensor(1.0, device="cuda")},
        {"loss": torch.tensor(3.0, device="cuda", requires_grad=True)},
    ]
    assert reduce_validation_metrics(batches, Reducer.AVG) == {"loss": 2.0}
    assert combine_ranks([(reduce_validation_metrics(batches, Reducer.SUM), 2)]) == {"loss": 4.0}
    assert average_training_metrics(batches) == {"loss": 2.0}
