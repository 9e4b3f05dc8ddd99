from __future__ import annotations

import pytest

import shim.core as core
from shim.core.distributed import DummyDistributedContext
from shim.core.searcher import searcher_length
from shim.errors import ShimError


def config(max_length: object) -> dict:
    return {"searcher": {"metric": "loss", "max_length": max_length}}


def test_operations_yield_one_op_of_the_configured_length_with_a_future_warning() -> None:
    searcher = core.SearcherContext(DummyDistributedContext(), config({"batches": 500}))
    with pytest.warns(FutureWarning, match="deprecated in Determined 0.38.0"):
        ops = []
        for op in searcher.operations():
            op.report_progress(250)
            assert op.progress == 0.5
            op.report_completed(0.1)
            ops.append(op)
    assert [op.length for op in ops] == [500]
    assert searcher.get_configured_units() is core.Unit.BATCHES


def test_an_op_not_completed_raises_like_determined() -> None:
    searcher = core.SearcherContext(DummyDistributedContext(), config(5))
    with pytest.warns(FutureWarning), pytest.raises(RuntimeError, match="report_completed"):
        for _ in searcher.operations():
            pass


def test_report_completed_twice_raises() -> None:
    op = core.SearcherOperation(5, True)
    op.report_completed(1.0)
    with pytest.raises(RuntimeError, match="only call op.report_completed\\(\\) once"):
        op.report_completed(1.0)


def test_workers_may_not_report_and_the_error_names_the_rank() -> None:
    op = core.SearcherOperation(5, False, rank=3)
    with pytest.raises(core.ChiefOnlyError, match="rank 3"):
        op.report_completed(1.0)


def test_operations_without_max_length_explain_the_fix() -> None:
    searcher = core.SearcherContext(DummyDistributedContext(), {})
    with pytest.warns(FutureWarning), pytest.raises(ShimError, match="searcher.max_length"):
        next(iter(searcher.operations()))


@pytest.mark.parametrize(
    ("max_length", "expected"),
    [
        (100, (100, None)),
        ({"batches": 7}, (7, core.Unit.BATCHES)),
        ({"epochs": 2}, (2, core.Unit.EPOCHS)),
        ({"records": 640}, (640, core.Unit.RECORDS)),
        (None, (None, None)),
    ],
)
def test_searcher_length_reads_every_max_length_form(max_length: object, expected: tuple) -> None:
    assert searcher_length({"searcher": {"max_length": max_length}}) == expected


@pytest.mark.parametrize("bad", [{"steps": 5}, {"batches": "5"}, {"batches": 1, "epochs": 1}, True])
def test_bad_max_length_is_refused_with_examples(bad: object) -> None:
    with pytest.raises(ShimError, match=r"max_length .* is not valid|must be an int"):
        searcher_length({"searcher": {"max_length": bad}})


def test_a_bad_max_length_only_fails_when_the_searcher_is_used(storage: object) -> None:
    info = core.ClusterInfo(trial=core.TrialInfo(_config=config({"steps": 5})))
    ctx = core.local_init(checkpoint_storage=str(storage), info=info)
    with ctx, pytest.warns(FutureWarning), pytest.raises(ShimError, match="max_length"):
        next(iter(ctx.searcher.operations()))
