"""The contract with the real ``determined`` package (0.38): signatures, then shared behaviour."""

from __future__ import annotations

import enum
import inspect
import json
import pathlib
import warnings
from collections.abc import Callable
from typing import Any

import determined as det
import determined.core as det_core
import pytest

import shim.core as core
from shim.core.info import ClusterInfo, TrialInfo

# (shim object, determined object, public methods compared)
SURFACE: list[tuple[Any, Any, list[str]]] = [
    (core, det_core, ["init"]),
    (core.Context, det_core.Context, ["start", "close", "__enter__", "__exit__"]),
    (
        core.CheckpointContext,
        det_core.CheckpointContext,
        ["upload", "download", "get_metadata", "store_path", "restore_path", "delete"],
    ),
    (
        core.TrainContext,
        det_core.TrainContext,
        [
            "report_training_metrics",
            "report_validation_metrics",
            "report_metrics",
            "report_progress",
            "report_early_exit",
            "get_experiment_best_validation",
            "set_status",
            "set_metadata",
            "get_metadata",
            "get_tensorboard_path",
            "upload_tensorboard_files",
        ],
    ),
    (
        core.PreemptContext,
        det_core.PreemptContext,
        [
            "start",
            "close",
            "should_preempt",
            "acknowledge_preemption_signal",
            "__enter__",
            "__exit__",
        ],
    ),
    (
        core.DistributedContext,
        det_core.DistributedContext,
        [
            "__init__",
            "from_torch_distributed",
            "close",
            "get_rank",
            "get_local_rank",
            "get_size",
            "get_num_agents",
            "gather",
            "gather_local",
            "allgather",
            "allgather_local",
            "broadcast",
            "broadcast_local",
        ],
    ),
    (
        core.SearcherContext,
        det_core.SearcherContext,
        ["operations", "acknowledge_out_of_ops", "get_configured_units"],
    ),
    (core.SearcherOperation, det_core.SearcherOperation, ["report_progress", "report_completed"]),
]

# Constructors of the parts are internal in Determined (they take a master session); only
# DistributedContext's is public API, and it is compared above.
ENUMS = [
    (core.PreemptMode, det_core.PreemptMode),
    (core.DownloadMode, det_core.DownloadMode),
    (core.EarlyExitReason, det_core.EarlyExitReason),
    (core.TensorboardMode, det_core.TensorboardMode),
    (core.SearcherMode, det_core.SearcherMode),
    (core.Unit, det_core.Unit),
]

CASES = [(ours, theirs, name) for ours, theirs, names in SURFACE for name in names]
COMPARED = len(CASES)


def describe(param: inspect.Parameter) -> tuple[str, str, Any]:
    default = param.default
    if isinstance(default, enum.Enum):
        default = ("enum", default.value)
    elif callable(default) and default is not inspect.Parameter.empty:
        default = "callable"  # lambdas compare by identity; that both are callables is the contract
    return param.name, param.kind.name, default


@pytest.mark.parametrize(
    ("ours", "theirs", "name"), CASES, ids=[f"{getattr(t, '__name__', t)}.{n}" for _, t, n in CASES]
)
def test_signature_matches_determined(ours: Any, theirs: Any, name: str) -> None:
    mine = inspect.signature(getattr(ours, name))
    real = inspect.signature(getattr(theirs, name))
    assert [describe(p) for p in mine.parameters.values()] == [
        describe(p) for p in real.parameters.values()
    ]


def test_searcher_operation_length_is_a_property_like_determined() -> None:
    assert isinstance(inspect.getattr_static(core.SearcherOperation, "length"), property)
    assert isinstance(inspect.getattr_static(det_core.SearcherOperation, "length"), property)


@pytest.mark.parametrize(("ours", "theirs"), ENUMS, ids=[t.__name__ for _, t in ENUMS])
def test_enum_members_match_determined(ours: type[enum.Enum], theirs: type[enum.Enum]) -> None:
    assert {m.name: m.value for m in ours} == {m.name: m.value for m in theirs}


def test_the_contract_compares_every_listed_method() -> None:
    assert COMPARED >= 45


# -- one behaviour suite, run on both contexts --------------------------------------------------


def shim_context(storage: pathlib.Path) -> Any:
    config = {"searcher": {"metric": "loss", "max_length": {"epochs": 1}}}
    info = ClusterInfo(trial=TrialInfo(_config=config))
    return core.local_init(checkpoint_storage=str(storage), info=info)


def determined_context(storage: pathlib.Path) -> Any:
    assert det.get_cluster_info() is None, "the oracle is Determined's off-cluster context"
    return det_core.init(checkpoint_storage=str(storage))


FACTORIES: list[Callable[[pathlib.Path], Any]] = [shim_context, determined_context]


@pytest.fixture(params=FACTORIES, ids=["shim", "determined"])
def context(request: pytest.FixtureRequest, storage: pathlib.Path) -> Any:
    with request.param(storage) as ctx:
        yield ctx


def test_store_then_restore_round_trips_files_and_metadata(
    context: Any, storage: pathlib.Path
) -> None:
    with context.checkpoint.store_path({"steps_completed": 5, "framework": "torch"}) as (path, sid):
        assert isinstance(path, pathlib.Path) and isinstance(sid, str)
        (path / "model.bin").write_bytes(b"weights")
    with context.checkpoint.restore_path(sid) as path:
        assert (path / "model.bin").read_bytes() == b"weights"
        assert json.loads((path / "metadata.json").read_text()) == {
            "steps_completed": 5,
            "framework": "torch",
        }
    assert (storage / sid / "metadata.json").is_file()


def test_upload_download_and_delete_agree(
    context: Any, storage: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    # Determined's upload() also writes metadata.json into the source folder, and lets a selector
    # drop it from the checkpoint; ours leaves the source alone and always keeps it.
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    (src / "b.log").write_text("b")
    sid = context.checkpoint.upload(src, {"steps_completed": 1})
    out = tmp_path / "out"
    context.checkpoint.download(sid, out)
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.log", "metadata.json"]
    assert json.loads((out / "metadata.json").read_text()) == {"steps_completed": 1}
    context.checkpoint.delete(sid)
    assert not (storage / sid).exists()


def test_report_calls_accept_the_same_arguments(context: Any) -> None:
    train = context.train
    train.report_training_metrics(10, {"loss": 1.0}, batch_metrics=[{"loss": 1.0}])
    train.report_training_metrics(steps_completed=20, metrics={"loss": 0.5})
    train.report_validation_metrics(20, {"loss": 0.4})
    train.report_metrics("custom", 20, {"x": 1.0})
    train.report_progress(0.5)
    train.report_early_exit(det_core.EarlyExitReason.USER_REQUESTED_STOP)
    train.set_status("training")


def test_should_preempt_is_false_without_a_signal(context: Any) -> None:
    assert context.preempt.should_preempt() is False
    assert context.preempt.should_preempt(auto_ack=False) is False


def test_single_process_collectives_agree(context: Any) -> None:
    d = context.distributed
    assert (d.rank, d.size, d.local_rank, d.local_size, d.cross_rank, d.cross_size) == (
        0,
        1,
        0,
        1,
        0,
        1,
    )
    assert d.allgather(3) == [3] and d.gather(3) == [3] and d.broadcast(3) == 3
    assert d.allgather_local(3) == [3] and d.gather_local(3) == [3] and d.broadcast_local(3) == 3


def test_searcher_yields_one_operation_with_a_future_warning(context: Any) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ops = list(_complete(context.searcher.operations()))
    assert [op.length for op in ops] == [1]
    assert any(issubclass(w.category, FutureWarning) for w in caught)
    assert context.searcher.get_configured_units().value == "EPOCHS"


def _complete(ops: Any) -> Any:
    for op in ops:
        op.report_progress(1)
        op.report_completed(0.5)
        yield op


@pytest.mark.parametrize("factory", FACTORIES, ids=["shim", "determined"])
def test_invalid_hp_ends_the_trial_with_exit_status_zero(
    factory: Any, storage: pathlib.Path
) -> None:
    with pytest.raises(SystemExit) as exited, factory(storage):
        raise det.InvalidHP("lr too large")
    assert exited.value.code == 0


@pytest.mark.parametrize("factory", FACTORIES, ids=["shim", "determined"])
def test_should_preempt_before_start_raises(factory: Any, storage: pathlib.Path) -> None:
    with pytest.raises(RuntimeError, match="before PreemptContext.start"):
        factory(storage).preempt.should_preempt()


@pytest.mark.parametrize("factory", FACTORIES, ids=["shim", "determined"])
def test_shims_invalid_hp_and_its_subclasses_end_either_context_cleanly(
    factory: Any, storage: pathlib.Path
) -> None:
    class LearningRateTooLarge(core.InvalidHP):
        pass

    for error in (core.InvalidHP("x"), LearningRateTooLarge("x")):
        with pytest.raises(SystemExit) as exited, factory(storage):
            raise error
        assert exited.value.code == 0
