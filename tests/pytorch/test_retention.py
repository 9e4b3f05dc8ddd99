"""Retention (which checkpoints a run keeps) and resume discovery (which one a rerun uses)."""

from __future__ import annotations

import json
import pathlib
import shutil
import uuid
from typing import Any

import pytest

import shim.core as core
from shim.config import Length
from shim.core.info import ClusterInfo
from shim.pytorch.controller import RunPlan
from shim.pytorch.retention import (
    CheckpointRecord,
    DamagedMetadata,
    checkpoints_to_delete,
    read_record,
    scan_checkpoints,
)
from shim.pytorch.trial_io import CheckpointIO, DamagedCheckpoint
from shim.resume import find_resume_point


def record(steps: int, metric: float | None = None, run_id: str = "run:a") -> CheckpointRecord:
    return CheckpointRecord(str(uuid.uuid4()), steps, metric, run_id, saved_at=float(steps))


def kept(records: list[CheckpointRecord], **settings: int) -> list[int]:
    doomed = set(checkpoints_to_delete(records, smaller_is_better=True, **settings))
    return [r.steps for r in records if r.uuid not in doomed]


def test_save_trial_latest_n_keeps_all_while_fewer_than_n_exist() -> None:
    records = [record(10), record(20)]
    assert kept(records, keep_latest=3, keep_best=0) == [10, 20]
    assert kept([*records, record(30), record(40)], keep_latest=3, keep_best=0) == [20, 30, 40]


def test_latest_zero_and_best_zero_still_keep_the_newest_checkpoint() -> None:
    assert kept([record(10, 0.5), record(20, 0.4)], keep_latest=0, keep_best=0) == [20]


def test_a_preemption_checkpoint_without_a_metric_is_kept_as_the_newest() -> None:
    records = [record(10, 0.5), record(14)]  # preempted at 14, never validated there
    assert kept(records, keep_latest=0, keep_best=1) == [10, 14]


def test_the_union_of_latest_and_best_is_kept() -> None:
    records = [record(10, 0.1), record(20, 0.5), record(30, 0.2), record(40, 0.9), record(50)]
    assert kept(records, keep_latest=2, keep_best=2) == [10, 30, 40, 50]
    larger = checkpoints_to_delete(records, keep_latest=1, keep_best=1, smaller_is_better=False)
    assert {r.steps for r in records if r.uuid not in larger} == {40, 50}


def write_checkpoint(base: pathlib.Path, steps: int, run_id: str, **extra: object) -> str:
    storage_id = str(uuid.uuid4())
    folder = base / storage_id
    folder.mkdir(parents=True)
    metadata = {"steps_completed": steps, "run_id": run_id, "saved_at": float(steps), **extra}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return storage_id


def test_records_come_from_each_checkpoints_own_metadata(tmp_path: pathlib.Path) -> None:
    first = write_checkpoint(tmp_path, 10, "run:a", validation_metric=0.5, seed=7)
    write_checkpoint(tmp_path, 20, "run:a", validation_metric=float("nan"))
    (tmp_path / f".{uuid.uuid4()}.partial").mkdir()
    (tmp_path / "runs").mkdir()
    records, damaged = scan_checkpoints(tmp_path)
    assert [(r.steps, r.metric) for r in records] == [(10, 0.5), (20, None)]
    assert records[0].uuid == first and records[0].seed == 7 and not damaged


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"steps_completed": 1', "not readable JSON"),
        ("[1, 2]", "holds a list, not a JSON object"),
        ('{"framework": "torch"}', "'steps_completed' is None"),
        ('{"steps_completed": -3}', "'steps_completed' is -3"),
    ],
)
def test_damaged_metadata_is_named_with_its_problem(
    tmp_path: pathlib.Path, content: str, problem: str
) -> None:
    (tmp_path / "metadata.json").write_text(content)
    found = read_record(tmp_path)
    assert isinstance(found, DamagedMetadata) and problem in found.problem


def test_resume_uses_the_newest_checkpoint_of_the_run_when_trial_json_is_stale(
    tmp_path: pathlib.Path,
) -> None:
    older = write_checkpoint(tmp_path, 10, "key:a", seed=3)
    newer = write_checkpoint(tmp_path, 20, "key:a", seed=3)
    write_checkpoint(tmp_path, 30, "key:other-instance")
    write_checkpoint(tmp_path, 40, "another-key:a")
    point = find_resume_point(tmp_path, "key", "key:a", older)
    assert (point.checkpoint, point.run_id, point.seed, point.steps) == (newer, "key:a", 3, 20)
    assert "trial.json still named" in point.notices[0]


def test_without_trial_json_resume_takes_the_most_recently_written_run_of_the_key(
    tmp_path: pathlib.Path,
) -> None:
    write_checkpoint(tmp_path, 30, "key:old", saved_at=100.0)
    fresh = write_checkpoint(tmp_path, 5, "key:fresh", saved_at=200.0)
    point = find_resume_point(tmp_path, "key", None, None)
    assert (point.checkpoint, point.run_id) == (fresh, "key:fresh")
    assert find_resume_point(tmp_path, "nothing-here", None, None).checkpoint is None


def test_a_checkpoint_from_before_run_ids_is_resumed_as_named(tmp_path: pathlib.Path) -> None:
    legacy = str(uuid.uuid4())
    (tmp_path / legacy).mkdir()
    (tmp_path / legacy / "metadata.json").write_text('{"steps_completed": 4}')
    assert find_resume_point(tmp_path, "key", None, legacy).checkpoint == legacy


def test_a_named_checkpoint_that_is_gone_with_nothing_to_fall_back_on_is_an_error(
    tmp_path: pathlib.Path,
) -> None:
    gone = str(uuid.uuid4())
    with pytest.raises(
        DamagedCheckpoint, match=f"trial.json names checkpoint {gone}, but .*--fresh"
    ):
        find_resume_point(tmp_path, "key", "key:a", gone)


def test_damaged_metadata_of_the_named_checkpoint_is_the_users_to_fix(
    tmp_path: pathlib.Path,
) -> None:
    named = write_checkpoint(tmp_path, 10, "key:a")
    (tmp_path / named / "metadata.json").write_text('{"steps_comp')
    with pytest.raises(DamagedCheckpoint, match=rf"{named}/metadata.json is damaged: .*--fresh"):
        find_resume_point(tmp_path, "key", "key:a", named)


def test_damaged_metadata_elsewhere_is_skipped_with_a_notice(tmp_path: pathlib.Path) -> None:
    good = write_checkpoint(tmp_path, 10, "key:a")
    other = write_checkpoint(tmp_path, 20, "key:a")
    (tmp_path / other / "metadata.json").write_text("")
    point = find_resume_point(tmp_path, "key", "key:a", good)
    assert point.checkpoint == good
    assert f"skipped checkpoint {other}" in point.notices[0]


def collector(storage: pathlib.Path, latest: int) -> tuple[CheckpointIO, Any]:
    ctx = core.local_init(checkpoint_storage=storage, info=ClusterInfo())
    plan = RunPlan(max_length=Length("batches", 1), save_trial_latest=latest, save_trial_best=0)
    return CheckpointIO(ctx, None, {}, plan, "key:a"), ctx  # type: ignore[arg-type]


def test_a_checkpoint_deleted_by_hand_meanwhile_is_not_an_error(tmp_path: pathlib.Path) -> None:
    ids = [write_checkpoint(tmp_path, steps, "key:a") for steps in (10, 20, 30)]
    io, ctx = collector(tmp_path, latest=3)
    with ctx:
        assert io.collect_garbage() == []
        shutil.rmtree(tmp_path / ids[0])  # the user frees some disk
        io._plan.save_trial_latest = 1
        assert io.collect_garbage() == ids[:2]
    assert [r.uuid for r in scan_checkpoints(tmp_path)[0]] == [ids[2]]


def test_only_this_runs_leftovers_of_a_killed_process_are_removed(tmp_path: pathlib.Path) -> None:
    mine, theirs = (f".{uuid.uuid4()}.1a2b3c4d.deleting" for _ in range(2))
    for name, run_id in ((mine, "key:a"), (theirs, "other:b")):
        (tmp_path / name).mkdir()
        metadata = {"steps_completed": 3, "run_id": run_id}
        (tmp_path / name / "metadata.json").write_text(json.dumps(metadata))
    unknown = tmp_path / f".{uuid.uuid4()}.partial"
    unknown.mkdir()
    io, ctx = collector(tmp_path, latest=1)
    with ctx:
        io.collect_garbage()
    assert sorted(p.name for p in tmp_path.glob(".*")) == sorted([theirs, unknown.name])
