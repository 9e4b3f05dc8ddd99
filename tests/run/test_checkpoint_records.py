"""What a run records about its checkpoints: the final one carries the final validation, and a
damaged checkpoint is the user's to fix (exit 2, no restarts spent), never a trial crash."""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.run.helpers import Run, run_trial

pytestmark = pytest.mark.slow


def metadata(run: Run) -> dict:
    path = pathlib.Path(run.summary["latest_checkpoint_path"]) / "metadata.json"
    return json.loads(path.read_text())


def validations(run: Run) -> list[int]:
    lines = pathlib.Path(run.summary["metrics_path"]).read_text().splitlines()
    return [r["steps_completed"] for r in map(json.loads, lines) if r["group"] == "validation"]


def test_a_last_batch_that_is_also_a_checkpoint_batch_is_validated_before_its_checkpoint(
    tmp_path: pathlib.Path,
) -> None:
    # 35 batches: the checkpoint period (7) and the end fall on the same batch.
    first = run_trial(tmp_path, "--max-length", "35")
    assert first.returncode == 0, first.stderr
    assert validations(first) == [10, 20, 30, 35]
    assert metadata(first)["steps_completed"] == 35
    assert metadata(first)["validation_metric"] == first.summary["final_validation"]["val_loss"]
    again = run_trial(tmp_path, "--max-length", "35")
    assert again.returncode == 0, again.stderr
    assert validations(again) == [10, 20, 30, 35], "a finished run is not validated again"
    assert again.summary["best_validation"] == first.summary["best_validation"]
    assert again.summary["final_validation"] == first.summary["final_validation"]
    assert "best validation:   -" not in again.stderr


def preempted_once(storage: pathlib.Path) -> Run:
    first = run_trial(storage, env={"SHIM_TEST_PREEMPT_AT": "9"})
    assert first.returncode == 3, first.stderr
    return first


def record(storage: pathlib.Path) -> dict:
    (path,) = storage.glob("runs/*/trial.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda text: text[: len(text) // 2], "it is not readable JSON"),
        (lambda text: json.dumps({"framework": "torch"}), "'steps_completed' is None"),
    ],
    ids=["truncated", "without-steps_completed"],
)
def test_damaged_metadata_exits_2_naming_the_file_and_spends_no_restart(
    tmp_path: pathlib.Path, damage, problem: str
) -> None:
    first = preempted_once(tmp_path)
    path = pathlib.Path(first.summary["latest_checkpoint_path"]) / "metadata.json"
    path.write_text(damage(path.read_text()))
    rerun = run_trial(tmp_path)
    assert rerun.returncode == 2, rerun.stderr
    assert f"{path} is damaged: {problem}" in rerun.stderr
    assert "delete the checkpoint folder to resume from the previous checkpoint" in rerun.stderr
    assert "restart 1 of" not in rerun.stderr
    assert record(tmp_path)["restarts"] == 0


def test_metadata_and_state_from_different_saves_are_refused(tmp_path: pathlib.Path) -> None:
    first = preempted_once(tmp_path)
    folder = pathlib.Path(first.summary["latest_checkpoint_path"])
    content = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**content, "steps_completed": 7}))
    rerun = run_trial(tmp_path)
    assert rerun.returncode == 2, rerun.stderr
    assert "holds the state after batch 9 but" in rerun.stderr
    assert "says 7: the checkpoint's files come from different saves" in rerun.stderr


def test_a_trial_whose_model_changed_since_its_checkpoint_exits_2_naming_the_checkpoint(
    tmp_path: pathlib.Path,
) -> None:
    first = preempted_once(tmp_path)
    state_file = pathlib.Path(first.summary["latest_checkpoint_path"]) / "state_dict.pth"
    rerun = run_trial(tmp_path, "--hparam", "hidden=32")
    assert rerun.returncode == 2, rerun.stderr
    assert f"{state_file}: model 0 does not fit the trial's (RuntimeError: " in rerun.stderr
    assert "start over with --fresh" in rerun.stderr
    assert record(tmp_path)["restarts"] == 0
