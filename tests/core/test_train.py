from __future__ import annotations

import json
import logging
import pathlib

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import shim.core as core
from shim.core.info import ClusterInfo, TrialInfo
from shim.errors import ShimError


def make_context(storage: pathlib.Path, config: dict | None = None) -> core.Context:
    info = ClusterInfo(trial=TrialInfo(trial_id=4, _config=config or {}))
    return core.local_init(checkpoint_storage=storage, info=info)


def read_records(ctx: core.Context) -> list[dict]:
    return [json.loads(line) for line in ctx.train.metrics_path.read_text().splitlines()]


def read_scalars(logdir: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_each_report_is_one_jsonl_record_with_group_step_metrics_and_time(
    storage: pathlib.Path,
) -> None:
    with make_context(storage) as ctx:
        ctx.train.report_training_metrics(10, {"loss": 0.5}, batch_metrics=[{"loss": 0.4}])
        ctx.train.report_validation_metrics(10, {"val_loss": 0.25})
        ctx.train.report_metrics("inference", 10, {"latency": 3})
    records = read_records(ctx)
    assert ctx.train.metrics_path == storage / "metrics" / "trial_4.jsonl"
    assert [(r["group"], r["steps_completed"], r["metrics"]) for r in records] == [
        ("training", 10, {"loss": 0.5}),
        ("validation", 10, {"val_loss": 0.25}),
        ("inference", 10, {"latency": 3}),
    ]
    assert records[0]["batch_metrics"] == [{"loss": 0.4}]
    assert all(isinstance(r["time"], float) for r in records)


def test_tensors_and_numpy_values_are_converted(storage: pathlib.Path) -> None:
    with make_context(storage) as ctx:
        ctx.train.report_training_metrics(
            1,
            {
                "t": torch.tensor(1.5),
                "n": np.float32(2.5),
                "i": np.int64(3),
                "vec": torch.tensor([1.0, 2.0]),
                "arr": np.array([4, 5]),
            },
        )
    assert read_records(ctx)[0]["metrics"] == {
        "t": 1.5,
        "n": 2.5,
        "i": 3,
        "vec": [1.0, 2.0],
        "arr": [4, 5],
    }


def test_metrics_reach_real_tensorboard_event_files(storage: pathlib.Path) -> None:
    with make_context(storage) as ctx:
        for step in (1, 2, 3):
            ctx.train.report_training_metrics(step, {"loss": torch.tensor(1.0 / step)})
        ctx.train.report_validation_metrics(3, {"accuracy": 0.75, "val_loss": 0.5})
        ctx.train.report_metrics("custom", 3, {"x": 7})
    scalars = read_scalars(ctx.train.get_tensorboard_path())
    assert [s for s, _ in scalars["loss"]] == [1, 2, 3]
    assert scalars["loss"][2][1] == pytest.approx(1 / 3)
    assert scalars["val_accuracy"] == [(3, 0.75)]
    assert scalars["val_loss"] == [(3, 0.5)]
    assert scalars["custom/x"] == [(3, 7.0)]


def test_non_finite_and_non_numeric_values_stay_in_json_and_skip_tensorboard_with_a_warning(
    storage: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="shim.core"), make_context(storage) as ctx:
        ctx.train.report_training_metrics(
            1, {"nan": float("nan"), "inf": torch.tensor(float("inf")), "name": "adam", "ok": 1.0}
        )
    # Strict JSON, as Determined writes it: non-finite numbers become strings.
    line = ctx.train.metrics_path.read_text().splitlines()[0]
    metrics = json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert metrics["metrics"] == {"nan": "NaN", "inf": "Infinity", "name": "adam", "ok": 1.0}
    assert set(read_scalars(ctx.train.get_tensorboard_path())) == {"ok"}
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "'nan'" in warned and "'inf'" in warned and "'name'" in warned


def test_manual_tensorboard_mode_writes_no_event_files(storage: pathlib.Path) -> None:
    ctx = core.local_init(
        checkpoint_storage=storage, info=ClusterInfo(), tensorboard_mode=core.TensorboardMode.MANUAL
    )
    with ctx:
        ctx.train.report_training_metrics(1, {"loss": 1.0})
        ctx.train.upload_tensorboard_files()
    assert not ctx.train.get_tensorboard_path().exists()


def test_best_validation_follows_the_searcher_metric_and_direction(storage: pathlib.Path) -> None:
    config = {"searcher": {"metric": "acc", "smaller_is_better": False}}
    with make_context(storage, config) as ctx:
        assert ctx.train.get_experiment_best_validation() is None
        for value in (0.5, 0.9, 0.7):
            ctx.train.report_validation_metrics(1, {"acc": value})
        assert ctx.train.get_experiment_best_validation() == 0.9


def test_validation_metrics_may_not_be_none(storage: pathlib.Path) -> None:
    with make_context(storage) as ctx, pytest.raises(ShimError, match=r"\['acc'\].*None"):
        ctx.train.report_validation_metrics(1, {"acc": None})


def test_progress_must_be_a_fraction(storage: pathlib.Path) -> None:
    with make_context(storage) as ctx:
        ctx.train.report_progress(0.5)
        assert ctx.train.progress == 0.5
        with pytest.raises(ValueError, match="between 0 and 1"):
            ctx.train.report_progress(1.5)


def test_bad_reports_are_refused_with_the_reason(storage: pathlib.Path) -> None:
    with make_context(storage) as ctx:
        with pytest.raises(ShimError, match="steps_completed must be an int"):
            ctx.train.report_training_metrics("1", {"loss": 1.0})  # type: ignore[arg-type]
        with pytest.raises(ShimError, match="must be a dict"):
            ctx.train.report_training_metrics(1, [1.0])  # type: ignore[arg-type]
        with pytest.raises(ShimError, match="without '.'"):
            ctx.train.report_metrics("a.b", 1, {})


def test_status_metadata_and_early_exit_are_kept(storage: pathlib.Path) -> None:
    with make_context(storage) as ctx:
        ctx.train.set_status("warming up")
        assert ctx.train.set_metadata({"k": [1, 2]}) == {"k": [1, 2]}
        assert ctx.train.get_metadata() == {"k": [1, 2]}
        ctx.train.report_early_exit(core.EarlyExitReason.USER_REQUESTED_STOP)
        assert ctx.train.early_exit_reason is core.EarlyExitReason.USER_REQUESTED_STOP
